"""A TCP connection to a guest's port, made from where Tart runs: what a tunnel carries.

The core opens no sockets: a transport's ``connect`` gives it a ``GuestPipe``. Locally it is
a socket connected here (``SocketPipe``); over SSH it is ``ssh -W IP:PORT`` through the shared
multiplexed connection (``ProcessPipe``: its stdin and stdout are the stream; the Mac makes
the connection, no new login per tunnel). The address and port are checked
(``probe.checked_target``) before anything uses them.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO, Protocol

from vm_operator.sockets import close_both_ways
from vm_operator.tart.errors import GuestRefused
from vm_operator.tart.probe import checked_target
from vm_operator.tart.streaming import ProcessGroup

CONNECT_TIMEOUT = 5.0  # seconds a guest may take to accept a tunnel's connection


class GuestPipe(Protocol):
    """A byte stream to a guest's port. ``recv`` returns b"" at its end; ``close`` may be
    called from another thread, any number of times, and ends a ``recv`` under way."""

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def shutdown_write(self) -> None: ...

    def close(self) -> None: ...


class SocketPipe:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def shutdown_write(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        close_both_ways(self.sock)


def refused(ip: str, port: int, why: str) -> GuestRefused:
    return GuestRefused(f"the guest at {ip} did not accept a connection on port {port}: {why}")


def open_socket(ip: str, port: int, timeout: float = CONNECT_TIMEOUT) -> SocketPipe:
    """A connection to ip:port made here; GuestRefused when the guest does not accept it."""
    address, port = checked_target(ip, port)
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as exc:
        raise refused(address, port, exc.strerror or str(exc)) from None
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return SocketPipe(sock)


class ProcessPipe:
    """The stdin and stdout of a process (``ssh -W``) as the stream; ``close`` kills its
    process group and reaps it (``ProcessGroup``: never a signal to a group once reaped, whose
    id may be another's by then)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._group = ProcessGroup(proc)
        assert proc.stdin is not None and proc.stdout is not None
        self._in: IO[bytes] = proc.stdin
        self._out = proc.stdout

    def recv(self, size: int) -> bytes:
        try:
            return os.read(self._out.fileno(), size)
        except (OSError, ValueError):
            return b""

    def sendall(self, data: bytes) -> None:
        self._in.write(data)
        self._in.flush()

    def shutdown_write(self) -> None:
        try:
            self._in.close()
        except OSError:
            pass

    def close(self) -> None:
        self._group.kill_and_reap()
        for stream in (self._in, self._out):
            try:
                stream.close()
            except OSError:
                pass


def open_process(argv: Sequence[str], env: Mapping[str, str]) -> ProcessPipe:
    """Start ``argv`` (an ``ssh -W``) with pipes for its stdin and stdout, in its own
    process group (``close`` kills it); its stderr is dropped."""
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=dict(env), bufsize=0,
                                start_new_session=True)
    except OSError as exc:
        raise GuestRefused(f"cannot run {argv[0]!r} for the tunnel: {exc.strerror or exc}") from None
    return ProcessPipe(proc)
