"""What people see: safe text, aligned tables that fit the terminal, a progress bar.

Pure functions over strings (plus ``Progress``, which writes to the stream it is given), so
the tests can drive them with any width and any value. Everything printed is ASCII-safe
apart from the server's own text, and every string that comes from the server goes through
``safe`` first: a VM name holding ESC [2J cannot clear the screen or move the cursor.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

ELLIPSIS = "..."
GAP = "  "  # between table columns
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# control, format (bidi overrides, zero-width), surrogate, private use, unassigned, line and
# paragraph separators: nothing that prints as itself
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe(text: str) -> str:
    """``text`` with every character that does not print as itself escaped (``\\x1b``)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNSAFE else c for c in text)


def safe_log(text: str) -> str:
    """Log text for a terminal: line breaks (``\\n``, ``\\r\\n``) and tabs kept, any other
    control character escaped, so a guest's output cannot drive the terminal."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join("\t".join(safe(part) for part in line.split("\t")) for line in lines)


def width_of(text: str) -> int:
    """Terminal columns ``text`` takes: wide East Asian characters take two, combining
    marks none."""
    if text.isascii():
        return len(text)
    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def cut(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` columns, ending in ``...`` when cut."""
    if width_of(text) <= width:
        return text
    if width <= len(ELLIPSIS):
        return ELLIPSIS[:max(0, width)]
    room = width - len(ELLIPSIS)
    kept, used = [], 0
    for char in text:
        used += width_of(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept) + ELLIPSIS


@dataclass(frozen=True)
class Column:
    """A table column. ``right`` aligns numbers. When the table is wider than the terminal,
    ``shrink`` columns are cut, down to ``min_width``; when that is not enough, columns with a
    ``drop`` rank are left out first (highest rank first)."""

    title: str
    right: bool = False
    drop: int = 0
    shrink: bool = False
    min_width: int = 20


def table(columns: Sequence[Column], rows: Sequence[Sequence[str]],
          width: int | None = None) -> list[str]:
    """Aligned lines (title line first) of ``rows``, fitted to ``width`` columns if given.

    Cells are made ``safe`` here, so a hostile value cannot move the cursor or break the
    alignment. A table that cannot be fitted even so is printed whole (the terminal wraps it).
    """
    cells = [[safe(cell) for cell in row] for row in rows]
    shown = list(range(len(columns)))
    widths = [max([width_of(columns[i].title)] + [width_of(row[i]) for row in cells])
              for i in shown]

    def total() -> int:
        return sum(widths[i] for i in shown) + len(GAP) * (len(shown) - 1)

    if width is not None:
        def floor(i: int) -> int:
            return max(columns[i].min_width, width_of(columns[i].title))

        def narrowest() -> int:  # the width with every shrink column at its floor
            return sum(min(widths[i], floor(i)) if columns[i].shrink else widths[i]
                       for i in shown) + len(GAP) * (len(shown) - 1)

        for i in sorted((i for i in shown if columns[i].drop), key=lambda i: -columns[i].drop):
            if narrowest() <= width:
                break
            shown.remove(i)
        for i in shown:
            if columns[i].shrink and total() > width:
                widths[i] = max(min(widths[i], floor(i)), widths[i] - (total() - width))
    lines = [_line([columns[i].title for i in shown], [columns[i] for i in shown],
                   [widths[i] for i in shown])]
    for row in cells:
        lines.append(_line([row[i] for i in shown], [columns[i] for i in shown],
                           [widths[i] for i in shown]))
    return lines


def _line(values: Sequence[str], columns: Sequence[Column], widths: Sequence[int]) -> str:
    parts = []
    for value, column, width in zip(values, columns, widths):
        value = cut(value, width)
        pad = " " * (width - width_of(value))
        parts.append(pad + value if column.right else value + pad)
    return GAP.join(parts).rstrip()


def pairs(items: Sequence[tuple[str, str]]) -> list[str]:
    """``key:  value`` lines, the values aligned; both made ``safe``."""
    keys = [safe(key) + ":" for key, _ in items]
    room = max((width_of(key) for key in keys), default=0)
    return [(key + " " * (room - width_of(key)) + GAP + safe(value)).rstrip()
            for key, (_, value) in zip(keys, items)]


# --- progress -------------------------------------------------------------------------------

BAR_MAX = 40
BAR_MIN = 10


def bar_line(percent: int, label: str, width: int) -> str:
    """One frame of the terminal bar: ``label [#####-----]  42%`` in at most ``width`` columns
    (the label is cut first, then the bar narrows down to BAR_MIN)."""
    tail = f" {percent:3d}%"
    bar = max(BAR_MIN, min(BAR_MAX, width - len(tail) - 2 - (width_of(label) + 1 if label else 0)))
    room = width - len(tail) - bar - 2
    filled = bar * percent // 100
    head = ""
    if label and room > 1:
        head = cut(safe(label), room - 1) + " "
    return f"{head}[{'#' * filled}{'-' * (bar - filled)}]{tail}"


class Progress:
    """Progress of a long call (a pull, a create) as a percentage.

    On a terminal: one line, redrawn in place (``\\r``) whenever what it shows changes, ended
    by ``finish``. Elsewhere (a pipe, a CI log): a plain ``NN%`` line (``label: NN%``) each time
    the whole percentage changes, and nothing else, so a log holds at most 101 lines.
    """

    def __init__(self, stream: TextIO, terminal: bool, width: int = 80, label: str = "") -> None:
        self.stream = stream
        self.terminal = terminal
        self.width = max(width, 1)
        self.label = label
        self.shown: int | None = None  # the percentage last written
        self._drawn = 0  # columns of the frame on screen

    def update(self, percent: float) -> None:
        """Show ``percent`` (clamped to 0..100, rounded down: 99.9 is not yet 100)."""
        if math.isnan(percent):
            return
        value = int(min(100.0, max(0.0, percent)))
        if value == self.shown:
            return
        self.shown = value
        if self.terminal:
            frame = bar_line(value, self.label, self.width)
            pad = " " * max(0, self._drawn - width_of(frame))  # wipe a longer earlier frame
            self.stream.write("\r" + frame + pad)
            self._drawn = width_of(frame)
        else:
            self.stream.write(f"{safe(self.label)}: {value}%\n" if self.label else f"{value}%\n")
        self.stream.flush()

    def finish(self, done: bool = True) -> None:
        """Show 100 % when ``done``, and end the terminal line."""
        if done:
            self.update(100)
        if self.terminal and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0
