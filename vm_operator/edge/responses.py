"""Response values: what a handler returns instead of writing to the socket."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"


@dataclass(frozen=True)
class Response:
    """An HTTP response as plain data; the server shell serialises it in one write."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    close: bool = False

    def with_headers(self, *extra: tuple[str, str]) -> Response:
        if not extra:
            return self
        return Response(self.status, self.body, self.content_type, self.headers + extra, self.close)


# One encoder for every response: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(data: object) -> bytes:
    """Compact JSON with a final newline, so that curl's output never runs into the prompt."""
    return (_ENCODER.encode(data) + "\n").encode("utf-8")


def json_response(status: int, data: object, *headers: tuple[str, str]) -> Response:
    return Response(status, encode_json(data), JSON, headers)


def text_response(status: int, text: bytes) -> Response:
    return Response(status, text, TEXT)
