"""HTTP/1.1 on the wire (pure): reading a request head, version checks, writing a response.

The stdlib's header reader goes through the email parser, which costs more than everything
else this server does for a request; this one reads the lines itself, as strictly as RFC 9112
says (only SP separates the request line's words, only SP and HTAB are whitespace around a
field value), within bounds: the request line (414 past it), the whole head and its number of
header lines (431 past them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, NamedTuple, TypeVar

from vm_operator import __version__
from vm_operator.edge.responses import Response

MAX_REQUEST_LINE = 8192  # longer is a 414
# The whole head (request line, header lines and the empty line that ends it, line ends
# included): a larger one is a 431. It bounds what a connection holds while its head arrives:
# at most --max-connections times this, all connections together.
MAX_HEAD = 32 * 1024
MAX_HEADERS = 100
SERVER_HEADER = f"vm-operator/{__version__}"
OWS = " \t"  # RFC 9110's optional whitespace: no other character is trimmed from a value


class Headers(dict[str, str]):
    """A request head: case-insensitive ``get`` (first value wins), ``get_all`` for repeats."""

    repeated: dict[str, list[str]]  # every value of a name sent more than once, in order

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)

    def get_all(self, name: str) -> list[str] | None:
        key = name.lower()
        repeated = self.__dict__.get("repeated")
        if repeated is not None and key in repeated:
            return list(repeated[key])
        return [self[key]] if key in self else None

    def repeats(self, key: str) -> bool:
        """Whether the header ``key`` (lower case) was sent more than once."""
        return key in self.__dict__.get("repeated", ())

    def add(self, key: str, value: str) -> None:
        """One more header line; ``key`` is its name in lower case."""
        if key not in self:
            self[key] = value
            return
        if "repeated" not in self.__dict__:  # made for the rare head that repeats a name
            self.repeated = {}
        self.repeated.setdefault(key, [self[key]]).append(value)


def _text(line: bytes) -> str:
    """A line without its end: CRLF, or a bare LF (which RFC 9112 section 2.2 lets a recipient
    take). A CR anywhere else stays, to be refused by the grammar that reads the line."""
    end = 2 if line.endswith(b"\r\n") else 1 if line.endswith(b"\n") else 0
    return line[: len(line) - end].decode("iso-8859-1")


def read_headers(rfile: Any, headers: Headers | None = None,
                 budget: int = MAX_HEAD) -> Headers | tuple[int, str]:
    """Read header lines up to the blank line; (status, reason) when they are not acceptable.

    ``budget`` is what the head may still take (``MAX_HEAD`` less the request line): no line
    is read beyond it. Into ``headers`` when given: on a refusal it keeps the lines read before
    the fault (an ``Origin`` among them makes the refusal carry CORS headers).
    """
    headers = Headers() if headers is None else headers
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(budget + 1)
        budget -= len(line)
        if budget < 0:
            return 431, f"the request head is larger than {MAX_HEAD} bytes"
        if line in (b"\r\n", b"\n", b""):
            return headers
        field = header_field(line)
        if not isinstance(field, Field):
            return field
        headers.add(field.name.lower(), field.value)
    return 431, f"more than {MAX_HEADERS} header lines"


class Field(NamedTuple):
    name: str
    value: str  # without the SP and HTAB around it


def header_field(line: bytes) -> Field | tuple[int, str]:
    """One header line: its name and value, or (status, reason) when it is not one."""
    return _read(line, _FIELD_LINE, Field, _header_field_long)


L = TypeVar("L", bound=tuple[str, ...])


def _read(line: bytes, plain: re.Pattern[str], record: Callable[..., L],
          long_way: Callable[[bytes], L | tuple[int, str]]) -> L | tuple[int, str]:
    """A line as clients send it in one match (``plain``'s groups are ``record``'s fields);
    any other line the long way, which refuses it or reads it alike."""
    found = plain.fullmatch(line.decode("iso-8859-1"))
    return record(*found.groups()) if found is not None else long_way(line)


def _header_field_long(line: bytes) -> Field | tuple[int, str]:
    """``header_field`` read step by step: what tells why a line is refused."""
    text = _text(line)
    name, colon, value = text.partition(":")
    if not colon or not TOKEN.fullmatch(name):
        return 400, f"malformed header line {text[:100]!r}"
    value = value.strip(OWS)
    if not FIELD_VALUE.fullmatch(value):
        return 400, f"the value of header {name[:40]!r} holds a control character"
    return Field(name, value)


class RequestLine(NamedTuple):
    method: str
    target: str
    version: str


def request_line(line: bytes) -> RequestLine | tuple[int, str]:
    """The request line (RFC 9112 section 3): method, target and version separated by one SP
    each (no other character separates them); (status, reason) when it is not one."""
    if len(line) > MAX_REQUEST_LINE:
        return 414, f"the request line is longer than {MAX_REQUEST_LINE} bytes"
    return _read(line, _REQUEST_LINE, RequestLine, _request_line_long)


def _request_line_long(line: bytes) -> RequestLine | tuple[int, str]:
    """``request_line`` read step by step: what tells why a line is refused."""
    text = _text(line)
    words = text.split(" ")
    if len(words) != 3 or not all(words):
        return 400, f"bad request line {text[:100]!r}"
    method, target, version = words
    problem = version_problem(version)
    if problem is not None:
        return problem
    if not TOKEN.fullmatch(method):
        return 400, f"the method {method[:32]!r} is not a token (RFC 9110)"
    if not TARGET.fullmatch(target):
        return 400, ("the request target holds a character that is not visible ASCII: "
                     "percent-encode it (RFC 3986)")
    return RequestLine(method, target, version)


def version_problem(version: str) -> tuple[int, str] | None:
    """HTTP/1.0 and HTTP/1.1 are served; HTTP/2 and later get a 505, anything else a 400.
    RFC 9112 section 2.3: ``HTTP/`` DIGIT ``.`` DIGIT, ASCII digits only."""
    if version in ("HTTP/1.1", "HTTP/1.0"):
        return None
    found = VERSION.fullmatch(version)
    if found is None:
        return 400, f"bad request version {version[:30]!r}"
    if int(found["major"]) >= 2:  # one ASCII digit
        return 505, f"HTTP version {version[5:]} is not supported"
    return 400, f"bad request version {version[:30]!r}"


TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field names
VERSION = re.compile(r"HTTP/(?P<major>[0-9])\.(?P<minor>[0-9])")
# RFC 9110 section 5.5: visible ASCII, SP, HTAB and obs-text; no other control character.
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
TARGET = re.compile(r"[\x21-\x7e]+")  # a request target is visible ASCII (RFC 3986)
# What the readers above accept, as one match each (a line that is not one is read the long
# way, which refuses it or reads it alike: tests/unit/edge/test_http1_lines.py): a request line, and a header line (its value
# trimmed of SP and HTAB; possessive, so a refused line costs no backtracking).
_REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) (HTTP/1\.[01])\r?\n")
_FIELD_LINE = re.compile(
    r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*+((?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)"
    r"[ \t]*+\r?\n")
_STATUS_LINES = {status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n" for status in HTTPStatus}
_STATUS_BYTES = {status: line.encode("latin-1") for status, line in _STATUS_LINES.items()}
_FIXED_HEADERS = (
    f"Server: {SERVER_HEADER}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
)
_FIXED_BYTES = _FIXED_HEADERS.encode("latin-1")
_date_cache: tuple[int, str, bytes] = (0, "", b"")


def _http_date() -> tuple[str, bytes]:
    """The Date header line changes once a second; format it once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        line = f"Date: {formatdate(now, usegmt=True)}\r\n"
        _date_cache = (now, line, line.encode("latin-1"))
    return _date_cache[1], _date_cache[2]


def serialize(response: Response, close: bool, head_only: bool = False) -> bytes:
    """Status line, headers and body as the bytes of one write."""
    status_line = (_STATUS_BYTES.get(response.status)
                   or f"HTTP/1.1 {response.status} \r\n".encode("latin-1"))
    return b"".join((status_line, _FIXED_BYTES, _http_date()[1], response.header_lines,
                     b"Connection: close\r\n\r\n" if close else b"\r\n",
                     b"" if head_only else response.body))


def serialize_stream_head(response: Response) -> bytes:
    """The head of a streamed response: no Content-Length, the body ends when the connection
    closes (RFC 9112, section 6.3), and no proxy should buffer it."""
    status_line = _STATUS_LINES.get(response.status) or f"HTTP/1.1 {response.status} \r\n"
    head = [status_line, _FIXED_HEADERS, _http_date()[0], f"Content-Type: {response.content_type}\r\n",
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
