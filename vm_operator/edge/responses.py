"""Response values: what a handler returns instead of writing to the socket."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from vm_operator.edge.records import quick_init

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
EVENT_STREAM = "text/event-stream; charset=utf-8"
T = TypeVar("T")


class Stream(Protocol):
    """A body written as it comes (``GET /events``): the server writes the head, then each
    chunk as ``chunks`` yields it, and calls ``close`` once, however the stream ends (the
    client went away, the operator shuts down, the source ended). ``close`` may be called
    from another thread, and makes ``chunks`` end promptly."""

    def chunks(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class TunnelEnd(Protocol):
    """What a WebSocket upgrade (``GET /vms/{name}/port-forward``) carries: a byte stream to
    the other end (``recv`` b"" at its end), and ``finish`` once the tunnel is over, with the
    client's address and the bytes each way. ``close`` may be called from another thread and
    ends a ``recv`` under way."""

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def shutdown_write(self) -> None: ...

    def close(self) -> None: ...

    def finish(self, client: str, to_guest: int, from_guest: int) -> None: ...


@quick_init
@dataclass(frozen=True)
class Response:
    """An HTTP response as plain data; the server shell serialises it in one write."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    close: bool = False
    stream: Stream | None = None  # a streamed body: no Content-Length, the connection closes
    tunnel: TunnelEnd | None = None  # a 101: the connection becomes a WebSocket carrying it
    etag: str | None = None  # the ETag its headers carry, when they carry one (conditional)

    def kept(self, key: str, make: Callable[[Response], T]) -> T:
        """``make(self)``, made once and kept beside the response (in its ``__dict__``: it is
        frozen, and Python 3.11's ``cached_property`` takes one lock shared by every
        instance): for an answer kept for reads (``conditional.Rendered``), written many
        times."""
        made: T | None = self.__dict__.get(key)
        if made is None:
            made = self.__dict__[key] = make(self)
        return made

    @property
    def header_lines(self) -> bytes:
        """Its own header lines as sent: ``Content-Length`` (none on a 304, whose length would
        be that of the answer it stands for), ``Content-Type`` and ``headers``."""
        return self.kept("header_lines", _header_lines)

    def with_headers(self, *extra: tuple[str, str]) -> Response:
        if not extra:
            return self
        return Response(self.status, self.body, self.content_type, self.headers + extra, self.close,
                        self.stream, self.tunnel, self.etag)


def _header_lines(response: Response) -> bytes:
    lines = [] if response.status == 304 else [f"Content-Length: {len(response.body)}\r\n"]
    if response.content_type:
        lines.append(f"Content-Type: {response.content_type}\r\n")
    lines.extend(f"{key}: {value}\r\n" for key, value in response.headers)
    return "".join(lines).encode("latin-1")


def upgraded(tunnel: TunnelEnd) -> Response:
    """The 101 of a WebSocket route: the connection becomes the WebSocket carrying ``tunnel``."""
    return Response(101, b"", "", tunnel=tunnel)


# One encoder for every response: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(data: object) -> bytes:
    """Compact JSON with a final newline, so that curl's output never runs into the prompt."""
    return (_ENCODER.encode(data) + "\n").encode("utf-8")


def with_first_field(encoded: bytes, name: str, value: str) -> bytes:
    """An object encoded by ``encode_json`` with the field ``name: value`` put first: one
    field that changes on every answer, joined to the bytes kept for the rest."""
    head = (_ENCODER.encode(name) + ":" + _ENCODER.encode(value)).encode("utf-8")
    return b"{" + head + (b"," if encoded[1:2] != b"}" else b"") + encoded[1:]


def json_response(status: int, data: object, *headers: tuple[str, str]) -> Response:
    return Response(status, encode_json(data), JSON, headers)


def text_response(status: int, text: bytes) -> Response:
    return Response(status, text, TEXT)
