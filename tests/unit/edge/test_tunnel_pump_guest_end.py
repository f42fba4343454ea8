"""A WebSocket tunnel whose guest end is closed under it (a VM stop ends its ``ssh -W``) while the
client still sends: the pump ends quietly — a normal close frame to the client, the guest's end
closed and reaped, ``finish`` called once — whether the write fails with a ValueError (a closed
pipe file), a BrokenPipeError or another OSError; nothing is raised and no traceback logged."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vm_operator.edge.connections import Connections
from vm_operator.edge.tunnels import Pump
from vm_operator.tart.tunnel import ProcessPipe, open_process
from vm_operator.websocket import BINARY, CLOSE, NORMAL, close_code, frame, read_head

MASK = b"\x01\x02\x03\x04"


class GuestEnd:
    """A port tunnel's guest end, as ``core.tunnels.Tunnel`` is: a pipe, and ``finish``."""

    def __init__(self, pipe: ProcessPipe) -> None:
        self.pipe, self.finished = pipe, 0

    def recv(self, size: int) -> bytes:
        return self.pipe.recv(size)

    def sendall(self, data: bytes) -> None:
        self.pipe.sendall(data)

    def shutdown_write(self) -> None:
        self.pipe.shutdown_write()

    def close(self) -> None:
        self.pipe.close()

    def finish(self, client: str, to_guest: int, from_guest: int) -> None:
        self.finished += 1
        self.close()


def closed_stdin(pipe: ProcessPipe) -> None:
    pipe.shutdown_write()  # its file closed under the pump: a write is a ValueError


def exited(pipe: ProcessPipe) -> None:
    os.kill(pipe.proc.pid, 9)  # the reader gone: a write is a BrokenPipeError
    os.waitid(os.P_PID, pipe.proc.pid, os.WEXITED | os.WNOWAIT)


class FailingWrite(GuestEnd):
    def sendall(self, data: bytes) -> None:
        raise ConnectionResetError(104, "Connection reset by peer")


@pytest.fixture
def hooked_errors(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What reaches threading's excepthook (a traceback in the operator's log)."""
    seen: list[str] = []
    monkeypatch.setattr(threading, "excepthook",
                        lambda args: seen.append(f"{args.exc_type.__name__}: {args.exc_value}"))
    return seen


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def client_frames(client: socket.socket) -> list[tuple[int, bytes]]:
    """Every frame the server sent, until it closed the connection."""
    reader = client.makefile("rb")
    frames = []
    while (head := read_head(reader.read1, masked=False)) is not None:
        frames.append((head.opcode, reader.read(head.length)))
        if head.opcode == CLOSE:
            break
    return frames


@pytest.mark.parametrize(("end", "breaks"), [
    (GuestEnd, closed_stdin),
    (GuestEnd, exited),
    (FailingWrite, lambda pipe: None),
], ids=["value-error", "broken-pipe", "os-error"])
def test_a_write_to_a_closed_guest_end_ends_the_pump_quietly(
        pair: tuple[socket.socket, socket.socket], hooked_errors: list[str],
        end: type[GuestEnd], breaks: Callable[[ProcessPipe], Any]) -> None:
    server, client = pair
    pipe = open_process(["sleep", "60"], dict(os.environ))
    guest = end(pipe)
    breaks(pipe)
    connections = Connections(timeout=30)
    pump = Pump(server, server.makefile("rb"), guest, connections, "127.0.0.1")
    raised: list[BaseException] = []

    def run() -> None:
        try:
            pump.run()
        except BaseException as exc:  # noqa: BLE001 - what must not happen, recorded
            raised.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    client.sendall(frame(BINARY, b"after the stop", MASK))
    frames = client_frames(client)
    client.sendall(frame(CLOSE, b"\x03\xe8", MASK))  # the client answers the close
    runner.join(30)
    assert not runner.is_alive()
    assert raised == []
    assert hooked_errors == []
    assert frames and frames[-1][0] == CLOSE
    assert close_code(frames[-1][1]) == NORMAL, frames[-1][1]
    assert guest.finished == 1
    assert pipe.proc.returncode is not None  # the guest's end was closed and reaped
