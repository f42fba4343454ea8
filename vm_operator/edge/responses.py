"""Response values: what a handler returns instead of writing to the socket."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vm_operator.edge.problems import BASE, PROBLEMS

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
PROBLEM_BASE = BASE  # a problem's type is PROBLEM_BASE + slug: a page the operator serves


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


def encode_json(data: Any) -> bytes:
    """Compact JSON with a final newline, so that curl's output never runs into the prompt."""
    return (_ENCODER.encode(data) + "\n").encode("utf-8")


def json_response(status: int, data: Any, *headers: tuple[str, str]) -> Response:
    return Response(status, encode_json(data), JSON, headers)


def text_response(status: int, text: bytes) -> Response:
    return Response(status, text, TEXT)


def problem(
    status: int, slug: str, title: str, detail: str, *headers: tuple[str, str], **extra: Any
) -> Response:
    """An RFC 9457 problem document; ``slug`` names the kind of problem for clients to match on.

    Its ``type`` is ``/problems/{slug}`` (a page the operator serves) and its ``title`` the
    catalogue's (vm_operator/problems.py), so one type always has one title; ``title`` is
    used only for a slug the catalogue lacks, which a unit test keeps from happening.
    """
    known = PROBLEMS.get(slug)
    doc = {
        "type": known.uri if known is not None else "about:blank",
        "title": known.title if known is not None else title,
        "status": status,
        "detail": detail,
    }
    doc.update(extra)
    return Response(status, encode_json(doc), PROBLEM_JSON, headers)
