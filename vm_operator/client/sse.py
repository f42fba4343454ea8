"""Server-Sent Events, read line by line: a pure, incremental parser (the WHATWG rules the
client needs) that turns the lines of ``GET /events`` into messages.

A message is the ``event``, ``data`` and ``id`` fields up to a blank line. ``data`` lines are
joined with ``\\n``; a line starting with ``:`` is a comment (the server's heartbeat); a
field without a colon is a field with an empty value; one space after the colon is dropped;
unknown fields are ignored. ``retry`` sets the reconnection delay. A message without data
is not dispatched, but its ``id`` still becomes the stream's last event id (what a
reconnection sends as ``Last-Event-ID``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    event: str  # "message" when the server named none
    data: str
    id: str | None  # the last event id when this message was dispatched


class SseParser:
    """Feed it one line at a time (with or without its line end); ``feed`` returns the
    message a blank line completes, else None."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []
        self._seen_data = False

    def feed(self, line: str) -> Message | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._seen_data = True
        elif name == "id" and "\0" not in value:  # an id holding NUL is ignored
            self.last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Message | None:
        event, data, seen = self._event, "\n".join(self._data), self._seen_data
        self._event, self._data, self._seen_data = "", [], False
        if not seen:
            return None
        return Message(event or "message", data, self.last_id)
