"""A simulated guest's services (TART_SIM_GUEST_SERVICES) let go of each connection when it
ends, not when the guest stops: the ``tart run`` process keeps no descriptor of a connection
that is over, for an echo port and for a relay alike."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import REPO_ROOT, free_port, wait_for

CMD = [sys.executable, "-S", "-m", "vm_operator.simulator"]
SEQUOIA = "ghcr.io/cirruslabs/macos-sequoia-base:latest"  # cached by the demo seed
CONNECTIONS = 20


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TART") and k != "CI"}
    return {**clean, "PYTHONPATH": str(REPO_ROOT), "TART_HOME": str(tmp_path / "tart"),
            "TART_SIM_SEED": "demo", "TART_SIM_GUEST_PORT": str(free_port())}


@pytest.fixture
def upstream() -> Iterator[int]:
    """What a relay port relays to: a listener that echoes each connection until its end."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = False

    def serve() -> None:
        while not stop:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop = True
    server.close()


def running_guest(env: dict[str, str], log: Path, services: str) -> subprocess.Popen[bytes]:
    subprocess.run([*CMD, "clone", SEQUOIA, "svc"], env=env, capture_output=True, check=True,
                   timeout=30)
    with open(log, "w") as out:
        return subprocess.Popen([*CMD, "run", "svc", "--no-graphics"],
                                env={**env, "TART_SIM_GUEST_SERVICES": services},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def served(log: Path, port: int) -> tuple[str, int] | None:
    found = re.search(rf"serves (\S+):{port} ", log.read_text())
    return (found.group(1), port) if found else None


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def one_connection(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(b"ping")
        got = b""
        while len(got) < 4:
            piece = conn.recv(4 - len(got))
            assert piece, "the service hung up before answering"
            got += piece
        assert got == b"ping"
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(1) == b""  # the service ended its side too


@pytest.mark.parametrize("kind", ["echo", "relay"])
def test_ended_connections_leave_no_descriptor_behind(env: dict[str, str], tmp_path: Path,
                                                      upstream: int, kind: str) -> None:
    port = free_port()
    log = tmp_path / "run.log"
    proc = running_guest(env, log, f"{port}=echo" if kind == "echo" else f"{port}={upstream}")
    try:
        address = wait_for(lambda: served(log, port), timeout=30)
        one_connection(address)  # the accepting thread and its first connection are set up
        before = descriptors(proc.pid)
        for _ in range(CONNECTIONS):
            one_connection(address)
        # each connection's pumps let go of it right after its end: wait for that, bounded
        wait_for(lambda: descriptors(proc.pid) <= before, timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
