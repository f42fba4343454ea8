"""``vm-operator exec -t NAME -- COMMAND…``: the command on a terminal in the guest, live, over
``GET /vms/{name}/exec`` (a WebSocket of JSON text messages): this terminal's keys go to it as
they are typed (raw mode while it runs, restored after, whatever happens), its output comes as
it is printed, a window resize follows, and its exit code is this command's. When stdin is not
a terminal it is carried as it is read, its end sent as the command's end of input.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import termios
import threading
import tty
from collections.abc import Iterator
from typing import Any

from vm_operator.client.http import Client
from vm_operator.client.websocket import WebSocket

READ_SIZE = 64 * 1024
NO_EXIT = 255  # the WebSocket ended without an exit message (as ssh says a lost connection)


def stdin_message(data: bytes, eof: bool = False) -> str:
    return json.dumps({"type": "stdin", "data": base64.b64encode(data).decode(), "eof": eof})


def resize_message(rows: int, cols: int) -> str:
    return json.dumps({"type": "resize", "rows": rows, "cols": cols})


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[bool]:
    """``fd`` in raw mode while the block runs (when it is a terminal), restored after;
    whether it is a terminal."""
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 24, 80
    return max(size.lines, 1), max(size.columns, 1)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _upstream(ws: WebSocket, stdin: int) -> None:
    """This stdin to the command until its end (then the command's end of input)."""
    try:
        while data := os.read(stdin, READ_SIZE):
            ws.send_text(stdin_message(data))
        ws.send_text(stdin_message(b"", eof=True))
    except OSError:
        pass


def _exit_code(ws: WebSocket, stdout: int, stderr: int) -> int | None:
    """Write the output messages as they come; the exit message's code (None: none came)."""
    while (payload := ws.recv()) is not None:
        try:
            message: Any = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(message, dict):
            continue
        kind = message.get("type")
        if kind in ("stdout", "stderr") and isinstance(message.get("data"), str):
            _write_all(stdout if kind == "stdout" else stderr,
                       base64.b64decode(message["data"]))
        elif kind == "exit" and isinstance(message.get("code"), int):
            return int(message["code"])
    return None


def exec_on_terminal(client: Client, name: str, words: list[str], stdin: int = 0,
                     stdout: int = 1, stderr: int = 2) -> int:
    """Run ``words`` on a terminal in ``name``'s guest; its exit code (NO_EXIT when the
    WebSocket ended without one)."""
    rows, cols = _size(stdin if os.isatty(stdin) else stdout)
    ws = client.open_exec(name, {"command": json.dumps(words), "interactive": True,
                                 "tty": True, "rows": rows, "cols": cols})
    resized = None
    try:
        with raw_terminal(stdin) as terminal:
            if terminal and threading.current_thread() is threading.main_thread():
                def on_resize(_signum: int, _frame: object) -> None:
                    with contextlib.suppress(OSError):
                        ws.send_text(resize_message(*_size(stdin)))

                resized = signal.signal(signal.SIGWINCH, on_resize)
            threading.Thread(target=_upstream, args=(ws, stdin), name="exec-stdin",
                             daemon=True).start()
            code = _exit_code(ws, stdout, stderr)
    finally:
        if resized is not None:
            signal.signal(signal.SIGWINCH, resized)
        ws.close()
        ws.shutdown()
    return NO_EXIT if code is None else code
