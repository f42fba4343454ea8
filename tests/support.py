"""Helpers shared by the suites (conftest, the SSH fixture, hardening): processes and HTTP.

Plain functions over /proc and http.client, so that a fixture module that is also run by hand
(tests/sshd_env.py) can use them without importing pytest.
"""

from __future__ import annotations

import http.client
import os
import socket
from pathlib import Path

# Where a Python that every user may run lives on Debian and friends (the test user of the SSH
# fixture, ``nobody`` in the start-up tests: the venv's may lie under a directory only root enters)
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")


def http_request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
                 body: bytes | str | None = None,
                 timeout: float = 30) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a fresh loopback connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes on a fresh loopback connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass  # the server may answer (and close) before it read everything
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _proc_entries() -> list[str]:
    return [entry for entry in os.listdir("/proc") if entry.isdigit()]


def processes_with_tart_home(home: Path | str) -> list[int]:
    """Live processes (not zombies) whose environment holds TART_HOME=home."""
    marker = f"TART_HOME={home}".encode()
    found = []
    for entry in _proc_entries():
        if int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry))
    return found


def threads_of(pid: int) -> int:
    """How many threads a process has (from /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, state) of every process whose parent is ``pid``; state ``Z`` is a zombie."""
    found = []
    for entry in _proc_entries():
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append((int(entry), fields[0]))
    return found


def memory_of(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of a process, in bytes, from /proc/PID/status: ``VmRSS`` (resident now)
    or ``VmHWM`` (the most it was ever resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} line")


def bytes_in_flight(port: int) -> dict[str, list[int]]:
    """Bytes on their way to a server on ``port``, per established IPv4 TCP socket, from
    /proc/net/tcp: ``unsent`` in its clients' sockets (sent by the client, not yet received),
    ``unread`` in the server's own (received, not yet read by the server)."""
    found: dict[str, list[int]] = {"unsent": [], "unread": []}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
        if state != "01":  # TCP_ESTABLISHED
            continue
        tx, _, rx = queues.partition(":")
        if int(local.rpartition(":")[2], 16) == port:
            found["unread"].append(int(rx, 16))
        elif int(remote.rpartition(":")[2], 16) == port:
            found["unsent"].append(int(tx, 16))
    return found
