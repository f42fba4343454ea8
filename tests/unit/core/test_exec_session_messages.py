"""An interactive exec's messages (core/exec_session.py), in process over a fake ``tart exec``:
what each client message does to the process, the refusals of messages that are not ours, and
what the client is sent (output, then the exit code, then the end)."""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, cast

import pytest

from vm_operator.core.events import EventBus
from vm_operator.core.exec_session import BadMessage, ExecSession, SessionRequest
from vm_operator.tart.exec_stream import ExecStream
from vm_operator.tart.names import VmName


class FakeStream:
    """A tart exec that printed ``output`` on stdout and exited with ``code``."""

    stdout_fd, stderr_fd = 1, 2

    def __init__(self, output: bytes = b"", code: int = 0) -> None:
        self.pending = {1: [output] if output else [], 2: []}
        self.code, self.done = code, threading.Event()
        self.calls: list[tuple[str, Any]] = []

    def read(self, fd: int) -> bytes:
        return self.pending[fd].pop(0) if self.pending[fd] else b""

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close_stdin(self) -> None:
        self.calls.append(("close_stdin", None))

    def resize(self, rows: int, cols: int) -> None:
        self.calls.append(("resize", (rows, cols)))

    def kill(self) -> None:
        self.calls.append(("kill", None))

    def wait(self) -> int:
        self.done.wait()
        return self.code


def session(stream: FakeStream, interactive: bool = True) -> ExecSession:
    return ExecSession(cast(ExecStream, stream), VmName("vm"),
                       SessionRequest(("cat",), interactive, False), EventBus(lambda: "now"),
                       lambda: 0.0, lambda code: None)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(("message", "calls"), [
    ({"type": "stdin", "data": b64(b"hi")}, [("write", b"hi")]),
    ({"type": "stdin", "data": b64(b"hi"), "eof": True}, [("write", b"hi"), ("close_stdin", None)]),
    ({"type": "stdin", "data": "", "eof": True}, [("close_stdin", None)]),
    ({"type": "resize", "rows": 40, "cols": 120}, [("resize", (40, 120))]),
])
def test_each_client_message_does_its_one_thing(message: dict[str, Any],
                                                calls: list[tuple[str, Any]]) -> None:
    stream = FakeStream()
    session(stream).sendall(json.dumps(message).encode())
    assert stream.calls == calls
    stream.done.set()


@pytest.mark.parametrize("raw", [
    b"not json", b"[1, 2]", b'{"type": "signal"}', b'{"data": "aGk="}',
    b'{"type": "stdin", "data": "not base64!"}', b'{"type": "stdin", "data": 5}',
    b'{"type": "stdin", "data": "", "eof": "yes"}',
    b'{"type": "resize", "rows": 0, "cols": 80}', b'{"type": "resize", "rows": 24}',
    b'{"type": "resize", "rows": true, "cols": 80}',
])
def test_a_message_that_is_not_ours_is_refused(raw: bytes) -> None:
    stream = FakeStream()
    with pytest.raises(BadMessage):
        session(stream).sendall(raw)
    assert stream.calls == []
    stream.done.set()


def test_stdin_is_refused_when_the_exec_is_not_interactive() -> None:
    stream = FakeStream()
    with pytest.raises(BadMessage):
        session(stream, interactive=False).sendall(
            json.dumps({"type": "stdin", "data": b64(b"x")}).encode())
    stream.done.set()


def test_the_client_gets_the_output_then_the_exit_code_then_the_end() -> None:
    stream = FakeStream(b"out", code=3)
    ended = session(stream)
    stream.done.set()
    assert json.loads(ended.recv(0)) == {"type": "stdout", "data": b64(b"out")}
    assert json.loads(ended.recv(0)) == {"type": "exit", "code": 3}
    assert ended.recv(0) == b""
