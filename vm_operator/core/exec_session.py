"""An interactive command in a guest (``GET /vms/{name}/exec``, a WebSocket): a ``tart exec``
kept open, its traffic as JSON messages (the edge's pump carries them as text frames).

To the client: ``{"type": "stdout"|"stderr", "data": BASE64}`` as the output comes, then
``{"type": "exit", "code": N}`` once Tart has ended (then the pump closes the WebSocket). From
the client: ``{"type": "stdin", "data": BASE64, "eof": bool}`` (``eof``: the input ends after
it) and ``{"type": "resize", "rows": R, "cols": C}``. The message names are Orchard's
(``stdin``, ``stdout``, ``stderr``, ``exit``, ``resize``). A message that is none of these
ends the exec (``BadMessage``: the pump closes with 1007).

When the WebSocket ends first (the client closed it, the VM stopped, the operator drains),
Tart's process group is killed. ``vm.exec`` tells how it ended (outcome ``closed`` then).
"""

from __future__ import annotations

import base64
import binascii
import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from vm_operator.core.errors import not_running
from vm_operator.core.event_catalogue import VM_EXEC
from vm_operator.core.events import EventBus
from vm_operator.core.inventory import Inventory
from vm_operator.core.ports import TartPort
from vm_operator.tart.exec_stream import ExecStream
from vm_operator.tart.names import VmName

MAX_SIZE = 10000  # rows or columns of a terminal


class BadMessage(ValueError):
    """A client's message that is not one of ours: the WebSocket closes (1007), saying why."""


@dataclass(frozen=True)
class SessionRequest:
    """An interactive command: its words, whether it reads stdin (``-i``), whether it has a
    terminal (``-t``) and its size, and who asked (for the audit event)."""

    command: tuple[str, ...]
    interactive: bool
    tty: bool
    rows: int = 24
    cols: int = 80
    client: str = ""


def _message(kind: str, **fields: object) -> bytes:
    return json.dumps({"type": kind, **fields}, separators=(",", ":")).encode()


def _size(doc: dict[str, object], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SIZE:
        raise BadMessage(f"resize: {key} must be an integer from 1 to {MAX_SIZE}")
    return value


class ExecSession:
    """A ``TunnelEnd`` whose ``recv`` gives whole JSON messages (``messages``) and whose
    ``sendall`` takes one."""

    messages = True

    def __init__(self, stream: ExecStream, name: VmName, request: SessionRequest,
                 events: EventBus, monotonic: Callable[[], float],
                 on_end: Callable[[int | None], None]) -> None:
        self.stream, self.name, self.request = stream, name, request
        self.events, self.monotonic, self.on_end = events, monotonic, on_end
        self.started = monotonic()
        self.exit_code: int | None = None
        self._out: queue.Queue[bytes] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = self._finished = False
        readers = [threading.Thread(target=self._read, args=(fd, kind), daemon=True,
                                    name=f"exec-{kind}")
                   for fd, kind in ((stream.stdout_fd, "stdout"), (stream.stderr_fd, "stderr"))]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._reap, args=(readers,), daemon=True,
                         name="exec-reap").start()

    def _read(self, fd: int, kind: str) -> None:
        while data := self.stream.read(fd):
            self._out.put(_message(kind, data=base64.b64encode(data).decode()))

    def _reap(self, readers: list[threading.Thread]) -> None:
        for reader in readers:
            reader.join()
        code = self.stream.wait()
        with self._lock:
            if not self._closed:
                self.exit_code = code
        if self.exit_code is not None:
            self._out.put(_message("exit", code=code))
        self._out.put(b"")

    def recv(self, size: int) -> bytes:
        """The next message to the client; b"" once the command has ended (after ``exit``)."""
        return self._out.get()

    def sendall(self, data: bytes) -> None:
        """A message from the client (BadMessage: not one of ours)."""
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise BadMessage("a message must be a JSON object") from None
        if not isinstance(doc, dict):
            raise BadMessage("a message must be a JSON object")
        kind = doc.get("type")
        if kind == "resize":
            self.stream.resize(_size(doc, "rows"), _size(doc, "cols"))
            return
        if kind != "stdin":
            raise BadMessage("a message's type is stdin or resize")
        text, eof = doc.get("data", ""), doc.get("eof", False)
        if not isinstance(text, str) or not isinstance(eof, bool):
            raise BadMessage("stdin: data is a base64 string, eof a boolean")
        try:
            data = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise BadMessage("stdin: data is not base64") from None
        if not self.request.interactive:
            raise BadMessage("stdin: this exec was opened without interactive=true")
        try:
            if data:
                self.stream.write(data)
            if eof:
                self.stream.close_stdin()
        except OSError:  # the command no longer reads: its end comes through recv
            pass

    def shutdown_write(self) -> None:
        self.stream.close_stdin()

    def close(self) -> None:
        """The WebSocket ended (or the operator drains): Tart's process group is killed."""
        with self._lock:
            if self.exit_code is None:
                self._closed = True
        self.stream.kill()
        self._out.put(b"")

    def finish(self, client: str, to_guest: int, from_guest: int) -> None:
        """Over: the process killed if it still ran, ``vm.exec`` told, then ``on_end``."""
        self.close()
        with self._lock:
            if self._finished:
                return
            self._finished = True
        code = self.exit_code
        self.events.publish(VM_EXEC.about(self.name, {
            "command": self.request.command[0], "client": self.request.client or client,
            "duration_ms": round((self.monotonic() - self.started) * 1000),
            "exit_code": code, "outcome": "closed" if code is None else "exited"}))
        self.on_end(code)


def open_session(tart: TartPort, inventory: Inventory, events: EventBus,
                 monotonic: Callable[[], float], name: VmName, request: SessionRequest,
                 on_end: Callable[[int | None], None]) -> ExecSession:
    """Start the command in the running local VM ``name``; raises before anything runs when
    the VM is missing, an OCI image or not running."""
    vm = inventory.local_vm(name, "run a command in")
    if vm["state"] != "running":
        raise not_running(name, f"it is {vm['state']}; start it first")
    stream = tart.exec_stream(name, request.command, request.interactive, request.tty,
                              request.rows, request.cols)
    return ExecSession(stream, name, request, events, monotonic, on_end)
