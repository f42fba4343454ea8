"""What Tart prints while it pulls an image (``tart clone`` of an uncached image, ``tart pull``).

Tart writes one line per step on stdout::

    pulling ghcr.io/org/image:tag...        (tart pull only)
    pulling manifest...
    pulling disk (25.3 GB compressed)...
    0%
    ESC[1A CR ESC[J 1%                      (the terminal form; plain "1%" when CI is set)
    ...
    ESC[1A CR ESC[J 100%
    pulling NVRAM...

or, when the image is in the cache already, ``<digest ref> image is already cached and linked!``
(or ``... image is already cached! creating a symlink...``) and no percentages.

``ProgressParser`` is fed the bytes as they arrive, in chunks of any size (a line, even an escape
sequence, may be split across chunks), and answers with typed events. It is pure: no I/O, no
clock, no threads; one parser per Tart process, used by one thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MAX_LINE = 4096  # bytes of one line kept; the rest of a longer line is dropped
MAX_MESSAGE = 1000  # characters of an unknown line kept as the last message

Phase = Literal["pulling", "cached"]
Step = Literal["image", "manifest", "disk", "nvram", "cached"]


@dataclass(frozen=True)
class PhaseChanged:
    """Tart started a step: ``pulling`` (the image, its manifest, disk or NVRAM) or ``cached``
    (nothing to download). ``compressed_gb`` is the disk's size as Tart printed it (decimal GB,
    one decimal), on the ``disk`` step only."""

    phase: Phase
    step: Step
    compressed_gb: float | None = None


@dataclass(frozen=True)
class ProgressChanged:
    """The disk download reached ``percent`` (0-100)."""

    percent: int


@dataclass(frozen=True)
class Message:
    """A line that is none of the above (a warning, a retry notice, an error): ``text`` is the
    line without control characters, cut to MAX_MESSAGE characters."""

    text: str


ProgressEvent = PhaseChanged | ProgressChanged | Message

_PERCENT = re.compile(r"(\d{1,6})%")
_DISK = re.compile(r"pulling disk \((\d{1,9}(?:\.\d{1,9})?) GB compressed\)\.\.\.")
_IMAGE = re.compile(r"pulling (\S+)\.\.\.")
_CACHED_SUFFIXES = (" image is already cached and linked!",
                    " image is already cached! creating a symlink...")
# ESC [ parameters intermediates final (CSI), or ESC and one more character (other sequences)
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TERMINATORS = re.compile(rb"[\r\n]")


def classify(line: str) -> ProgressEvent | None:
    """The event one line of Tart's output stands for (None for a blank line).

    ``line`` has no CR or LF; escape sequences and other control characters are removed here.
    """
    text = _CONTROL.sub("", _ESCAPE.sub("", line)).strip()
    if not text:
        return None
    if match := _PERCENT.fullmatch(text):
        return ProgressChanged(min(100, int(match.group(1))))
    if text == "pulling manifest...":
        return PhaseChanged("pulling", "manifest")
    if text == "pulling NVRAM...":
        return PhaseChanged("pulling", "nvram")
    if match := _DISK.fullmatch(text):
        return PhaseChanged("pulling", "disk", float(match.group(1)))
    if _IMAGE.fullmatch(text):
        return PhaseChanged("pulling", "image")
    if text.endswith(_CACHED_SUFFIXES):
        return PhaseChanged("cached", "cached")
    return Message(text[:MAX_MESSAGE])


class ProgressParser:
    """Incremental: ``feed`` each chunk of Tart's output, ``close`` at its end.

    Percentages only go up within one disk download: a lower one (a stray or repeated line) is
    dropped, one above 100 (Tart counts re-sent bytes of a retried layer) is read as 100. When
    Tart starts the disk download again (a new ``pulling disk`` line: it retries the whole pull
    after a network error), the count starts again from that download's first percentage.
    """

    def __init__(self) -> None:
        self._pending = b""  # the start of a line whose end has not arrived yet
        self.phase: Phase | None = None
        self.percent: int | None = None
        self.compressed_gb: float | None = None
        self.last_message: str | None = None

    def feed(self, chunk: bytes) -> list[ProgressEvent]:
        """The events of every line ``chunk`` completes (CR or LF ends a line)."""
        events: list[ProgressEvent] = []
        data = self._pending + chunk
        start = 0
        for match in _TERMINATORS.finditer(data):
            self._line(data[start:match.start()], events)
            start = match.end()
        self._pending = data[start:start + MAX_LINE]
        return events

    def close(self) -> list[ProgressEvent]:
        """The event of a last line without a line end (the process ended mid-line)."""
        events: list[ProgressEvent] = []
        self._line(self._pending, events)
        self._pending = b""
        return events

    def _line(self, raw: bytes, events: list[ProgressEvent]) -> None:
        event = classify(raw[:MAX_LINE].decode("utf-8", errors="replace"))
        if event is not None and self._apply(event):
            events.append(event)

    def _apply(self, event: ProgressEvent) -> bool:
        """Update the parser's state; False for an event that changes nothing."""
        if isinstance(event, ProgressChanged):
            if self.percent is not None and event.percent <= self.percent:
                return False
            self.percent = event.percent
        elif isinstance(event, PhaseChanged):
            if event.step == "disk":
                self.percent = None  # a new download: its percentages start afresh
                self.compressed_gb = event.compressed_gb
            self.phase = event.phase
        else:
            self.last_message = event.text
        return True
