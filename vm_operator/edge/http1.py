"""HTTP/1.1 on the wire (pure): reading a request head, version checks, writing a response.

The stdlib's header reader goes through the email parser, which costs more than everything
else this server does for a request; this one reads the lines itself, with the limits of
``http.client`` (a longer line, or more lines, is a 431).
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from vm_operator import __version__
from vm_operator.edge.responses import Response

MAX_REQUEST_LINE = 8192
MAX_HEADER_LINE = 65536  # as http.client: longer is a 431
MAX_HEADERS = 100
SERVER_HEADER = f"vm-operator/{__version__}"


class Headers(dict[str, str]):
    """A request head: case-insensitive ``get`` (first value wins), ``get_all`` for repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[str, list[str]] = {}

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def get_all(self, name: str) -> list[str] | None:
        key = name.lower()
        if key in self.repeated:
            return self.repeated[key]
        return [self[key]] if key in self else None


def read_headers(rfile: Any, headers: Headers | None = None) -> Headers | tuple[int, str]:
    """Read header lines up to the blank line; (status, reason) when they are not acceptable.

    Into ``headers`` when given: on a refusal it keeps the lines read before the fault (an
    ``Origin`` among them makes the refusal carry CORS headers).
    """
    headers = Headers() if headers is None else headers
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            return 431, f"a header line is longer than {MAX_HEADER_LINE} bytes"
        if line in (b"\r\n", b"\n", b""):
            return headers
        text = line.decode("iso-8859-1").rstrip("\r\n")
        name, colon, value = text.partition(":")
        if not colon or not TOKEN.fullmatch(name):
            return 400, f"malformed header line {text[:100]!r}"
        key, value = name.lower(), value.strip()
        if key in headers:
            headers.repeated.setdefault(key, [headers[key]]).append(value)
        else:
            headers[key] = value
    return 431, f"more than {MAX_HEADERS} header lines"


def version_problem(version: str) -> tuple[int, str] | None:
    """HTTP/1.0 and HTTP/1.1 are served; anything else is refused as the stdlib does."""
    if version in ("HTTP/1.1", "HTTP/1.0"):
        return None
    major, dot, minor = version.removeprefix("HTTP/").partition(".")
    if not version.startswith("HTTP/") or not dot or not (major + minor).isdigit() or len(version) > 20:
        return 400, f"bad request version {version[:30]!r}"
    if int(major) >= 2:
        return 505, f"HTTP version {version[5:]} is not supported"
    return 400, f"bad request version {version[:30]!r}"


TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field names
_STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus}
_FIXED_HEADERS = (
    f"Server: {SERVER_HEADER}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
)
_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header line changes once a second; format it once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, f"Date: {formatdate(now, usegmt=True)}\r\n")
    return _date_cache[1]


def serialize(response: Response, close: bool, head_only: bool = False) -> bytes:
    """Status line, headers and body as the bytes of one write."""
    status_line = _STATUS_LINES.get(response.status) or f"HTTP/1.1 {response.status} \r\n"
    head = [status_line, _FIXED_HEADERS, _http_date(), f"Content-Length: {len(response.body)}\r\n"]
    if response.content_type:
        head.append(f"Content-Type: {response.content_type}\r\n")
    head.extend(f"{key}: {value}\r\n" for key, value in response.headers)
    if close:
        head.append("Connection: close\r\n")
    head.append("\r\n")
    return "".join(head).encode("latin-1") + (b"" if head_only else response.body)


def serialize_stream_head(response: Response) -> bytes:
    """The head of a streamed response: no Content-Length, the body ends when the connection
    closes (RFC 9112, section 6.3), and no proxy should buffer it."""
    status_line = _STATUS_LINES.get(response.status) or f"HTTP/1.1 {response.status} \r\n"
    head = [status_line, _FIXED_HEADERS, _http_date(), f"Content-Type: {response.content_type}\r\n",
            "X-Accel-Buffering: no\r\n"]
    head.extend(f"{key}: {value}\r\n" for key, value in response.headers)
    head.append("Connection: close\r\n\r\n")
    return "".join(head).encode("latin-1")


def origin_of(head: bytes) -> str | None:
    """The ``Origin`` of a raw request head (or of as much of it as arrived)."""
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"origin":
            return value.strip().decode("iso-8859-1")
    return None


def closing(response: Response) -> Response:
    """The same response, and the connection closed after it."""
    return Response(response.status, response.body, response.content_type, response.headers, True)
