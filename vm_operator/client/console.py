"""Where the client's output goes, and how: the ``Console`` every command writes to."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from vm_operator.client import render


@dataclass
class Console:
    """Where output goes, and how: ``terminal`` when stdout is one, ``width`` to fit tables
    to (None: no limit), ``json`` for the server's bodies as they came."""

    out: TextIO
    err: TextIO
    terminal: bool
    width: int | None
    json: bool = False
    err_terminal: bool = False  # stderr is a terminal: progress bars are drawn there

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def lines(self, texts: Sequence[str]) -> None:
        for text in texts:
            self.line(text)

    def note(self, text: str) -> None:
        """A message for the person, not the output: on stderr."""
        self.err.write(f"vm-operator: {render.safe(text)}\n")
        self.err.flush()

    def body(self, data: bytes) -> None:
        """A body as the server sent it (``--json``)."""
        self.raw(data if data.endswith(b"\n") else data + b"\n")

    def answer(self, body: bytes, lines: Callable[[], Sequence[str]]) -> None:
        """A reply: its body as the server sent it (``--json``), else its ``lines``."""
        if self.json:
            self.body(body)
        else:
            self.lines(lines())

    def told_list(self, body: bytes, count: int, empty: str) -> bool:
        """Whether a list's reply is told already: its body as it came (``--json``), or the
        note ``empty`` when it lists nothing; False: the caller prints its table."""
        if self.json:
            self.body(body)
            return True
        if not count:
            self.note(empty)
            return True
        return False

    def raw(self, data: bytes) -> None:
        self.out.flush()
        buffer = getattr(self.out, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:  # a text stream without bytes (io.StringIO)
            self.out.write(data.decode("utf-8", "replace"))
            self.out.flush()

    def log(self, data: bytes) -> None:
        """Run log output: as is into a pipe or file; on a terminal with its control
        characters escaped (a guest's output must not drive the terminal)."""
        if not data:
            return
        if self.terminal:
            self.out.write(render.safe_log(data.decode("utf-8", "replace")))
            self.out.flush()
        else:
            self.raw(data)


def terminal_width(env: dict[str, str], out: TextIO, terminal: bool) -> int | None:
    """Columns to fit tables to: ``COLUMNS`` when set, else the terminal's, else no limit."""
    columns = env.get("COLUMNS", "")
    if re.fullmatch(r"[0-9]{1,5}", columns) and int(columns) > 0:
        return int(columns)
    if terminal:
        try:
            return os.get_terminal_size(out.fileno()).columns
        except (OSError, ValueError):
            return None
    return None


def console_for(out: TextIO = sys.stdout, err: TextIO = sys.stderr,
                env: dict[str, str] | None = None) -> Console:
    terminal = out.isatty()
    return Console(out, err, terminal, terminal_width(dict(os.environ) if env is None else env,
                                                       out, terminal), err_terminal=err.isatty())
