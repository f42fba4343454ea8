"""The one home of the helpers the suites share: waiting, ports, processes, HTTP, the client.

Plain functions over /proc, sockets and http.client, so that a fixture module that is also run
by hand (tests/sshd_env.py) can use them without pytest (``wait_for`` imports it only to fail).
Helpers that act on one operator are methods of conftest's ``Operator`` (``op.problem``,
``op.ok``, ``op.detail``, ``op.tart_state``, ...). tests/unit/test_test_names.py fails when a
test module defines one of these helpers again.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from websockets.sync.client import ClientConnection

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]
WAIT_DEADLINE = 30.0  # wait_for's default deadline (seconds)

# Where a Python that every user may run lives on Debian and friends (the test user of the SSH
# fixture, ``nobody`` in the start-up tests: the venv's may lie under a directory only root enters)
SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")


def wait_for(predicate: Callable[[], T], timeout: float = WAIT_DEADLINE, interval: float = 0.02,
             message: str | Callable[[], str] = "") -> T:
    """Poll ``predicate`` until it returns something truthy (returned), or fail at the deadline.

    The deadline only bounds a condition that never comes (a poll ends as soon as it holds), so
    it is no speed requirement: on a loaded 2-core CI machine one Tart call (an interpreter
    start) takes seconds, and a 5 s default failed conditions that were merely slow. A test of
    a promised delay passes its own, and speed goals live in scripts/bench.py. A callable
    ``message`` is asked at the deadline: what the failure found, not what there was before."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            import pytest  # only here: sshd_env.py runs by hand without it
            told = message() if callable(message) else message
            pytest.fail(f"condition not reached within {timeout:g} s: {told or predicate}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bound, then released: nothing listens on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_utc_timestamp(value: Any) -> None:
    """An RFC 3339 timestamp in UTC, as the API writes them."""
    assert isinstance(value, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", value), value
    assert datetime.fromisoformat(value).utcoffset() == timedelta(0)


def startup_refusal(env: dict[str, str], argv: list[str] | None = None) -> str:
    """The one-line message ``load_config`` stops start-up with (the test fails if it starts)."""
    from vm_operator.config import load_config  # the package only where a test needs it

    try:
        load_config(argv or [], env)
    except SystemExit as stop:
        message = stop.code
    else:
        raise AssertionError(f"start-up went on with {env} {argv or []}")
    assert isinstance(message, str), message
    assert message.startswith("vm-operator: ") and "\n" not in message, message
    return message


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


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    """Read from ``sock`` until what came holds ``marker``; the peer closing first fails."""
    head = b""
    while marker not in head:
        more = sock.recv(4096)
        assert more, head
        head += more
    return head


def round_trip(ws: ClientConnection, payload: bytes, chunk: int = 32 * 1024,
               timeout: float = 30) -> bytes:
    """Send ``payload`` in binary messages of ``chunk`` bytes while reading what comes back (each
    message within ``timeout`` seconds), until it all has."""
    def send() -> None:
        for start in range(0, len(payload), chunk):
            ws.send(payload[start:start + chunk])

    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    while len(got) < len(payload):
        message = ws.recv(timeout=timeout)
        assert isinstance(message, bytes)
        got += message
    sender.join()
    return bytes(got)


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


def kill_tart_processes(*homes: Path | str) -> None:
    """SIGKILL every process that carries one of these TART_HOMEs (simulated VMs, hung Tart
    calls) until none is left: a teardown's last word, and "the Mac reboots" in a test."""
    for _ in range(50):
        pids = [pid for home in homes for pid in processes_with_tart_home(home)]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)


def guest_processes(guest: Path) -> list[int]:
    """Live processes (not zombies) working in a simulated guest's directory on the host: the
    guest's commands."""
    found = []
    for entry in _proc_entries():
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if cwd == str(guest) and stat[stat.rindex(")") + 2] != "Z":
            found.append(int(entry))
    return found


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess the test ends itself; killed and reaped should the test fail before."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def interrupted(proc: subprocess.Popen[bytes], timeout: float = 20) -> bytes:
    """Ctrl-C a subprocess: its stderr once it ended."""
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=timeout)[1]


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


# --- stand-ins for the operator's web server ------------------------------------------------------


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in's request handler that keeps the test's output clean."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class StandIn:
    """A loopback web server in a thread, standing in for the operator or another web server:
    ``handler`` answers (it reads its test's state through a closure); ``done`` releases the
    handlers that hold a stream open; ``close`` stops it."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.done = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


# --- the command-line client as a process ------------------------------------------------------

CLIENT = [sys.executable, "-m", "vm_operator.client"]
CLIENT_TOKEN = "client-test-token-0123456789"


def client_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without the client's settings, terminal width or
    proxies, plus ``extra``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("VM_OPERATOR_", "TART_"))
           and key.lower() not in ("columns", "http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env


def run_client(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
               stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """``python -m vm_operator.client ARGS``: its exit code and captured output (``stdin``
    its standard input; none: /dev/null)."""
    return subprocess.run([*CLIENT, *args], cwd=REPO_ROOT, env=env or client_env(),
                          stdin=subprocess.DEVNULL if stdin is None else None, input=stdin,
                          capture_output=True, timeout=timeout, check=False)


def cli(op: Any, *args: str, env: dict[str, str] | None = None, timeout: float = 60,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The client against an operator: ``vm-operator --url OP ARGS`` (the URL first: ARGS
    may end in ``-- COMMAND…``)."""
    return run_client("--url", op.url, *args, env=env, timeout=timeout, stdin=stdin)


def api(op: Any, method: str, path: str) -> Any:
    """A request the test expects to succeed (any 2xx): its JSON body."""
    status, body = op.json(method, path)
    assert status < 300, (status, body)
    return body


def succeeded(result: subprocess.CompletedProcess[bytes]) -> str:
    """The stdout of a client run that exited 0 (else fail, showing both streams)."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout.decode()


def columns_of(header: str) -> dict[str, tuple[int, int]]:
    """Each title of a table's header line: (start, end) columns."""
    found, at = {}, 0
    for title in header.split():
        start = header.index(title, at)
        found[title] = (start, start + len(title))
        at = start + len(title)
    return found


# --- named tokens, made by `vm-operator token new` itself, as a user would ---------------------


@dataclass(frozen=True)
class NewToken:
    name: str
    token: str  # what the client sends
    entry: str  # the [[token]] entry to paste

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def token_new(name: str, *options: str) -> NewToken:
    """``vm-operator token new NAME OPTIONS``: the token (its first line) and the entry."""
    done = subprocess.run([sys.executable, "-m", "vm_operator", "token", "new", name, *options],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=True)
    token, _, rest = done.stdout.partition("\n")
    return NewToken(name, token, rest)


def tokens_file(path: Path, *tokens: NewToken) -> Path:
    path.write_text("".join(token.entry for token in tokens))
    return path
