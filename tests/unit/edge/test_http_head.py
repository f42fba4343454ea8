"""The lean request-head reader that replaces the email parser on the hot path: as strict as
RFC 9112 (SP alone separates, SP and HTAB alone are trimmed, ASCII digits alone are numbers),
within a bound on the whole head."""

import io

import pytest

from vm_operator.edge.http1 import (
    MAX_HEAD,
    MAX_HEADERS,
    MAX_REQUEST_LINE,
    RequestLine,
    read_headers,
    request_line,
    version_problem,
)
from vm_operator.edge.params import whole_number


def test_headers_are_case_insensitive_and_keep_repeats() -> None:
    head = b"Host: a\r\nX-Thing:  spaced value \r\nhost: b\r\nEmpty:\r\n\r\nbody"
    headers = read_headers(io.BytesIO(head))
    assert not isinstance(headers, tuple)
    assert headers.get("HOST") == "a" and headers.get_all("Host") == ["a", "b"]
    assert headers.get("x-thing") == "spaced value"
    assert headers.get("empty") == ""
    assert headers.get("missing") is None and headers.get_all("missing") is None


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"X: " + b"a" * 70000 + b"\r\n\r\n", 431),
        # Many lines, each short, that add up to more than the head may hold.
        (b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(40)) + b"\r\n", 431),
        (b"X: " + b"a" * (MAX_HEAD - 6) + b"\r\n\r\n", 431),  # one byte over, its end included
        # Control characters are not field values (RFC 9110 section 5.5), whitespace or not.
        (b"Content-Length: 5\x0b\r\n\r\n", 400),
        (b"Content-Length: \x0c5\r\n\r\n", 400),
        (b"X: a\rb\r\n\r\n", 400),
        (b"X: a\x00b\r\n\r\n", 400),
        (b"X: a\r\r\n\r\n", 400),
        (b"X: a\x7f\r\n\r\n", 400),
        (b"".join(b"X-%d: y\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n", 431),
        (b"no colon here\r\n\r\n", 400),
        (b": empty name\r\n\r\n", 400),
        (b"Bad Name: x\r\n\r\n", 400),
        (b"Host : x\r\n\r\n", 400),
        (b"Host: a\r\n folded continuation\r\n\r\n", 400),
    ],
)
def test_unacceptable_heads(head: bytes, status: int) -> None:
    result = read_headers(io.BytesIO(head))
    assert isinstance(result, tuple) and result[0] == status


def test_the_head_may_fill_its_bound_exactly() -> None:
    head = b"X: " + b"a" * (MAX_HEAD - 7) + b"\r\n\r\n"
    assert len(head) == MAX_HEAD
    headers = read_headers(io.BytesIO(head))
    assert not isinstance(headers, tuple) and len(headers.get("x")) == MAX_HEAD - 7


def test_the_request_line_counts_against_the_head() -> None:
    head = b"X: " + b"a" * 1000 + b"\r\n\r\n"
    assert not isinstance(read_headers(io.BytesIO(head), budget=len(head)), tuple)
    assert read_headers(io.BytesIO(head), budget=len(head) - 1)[0] == 431


def test_no_more_than_the_bound_is_read() -> None:
    stream = io.BytesIO(b"X: " + b"a" * (10 * MAX_HEAD) + b"\r\n\r\n")
    assert read_headers(stream)[0] == 431
    assert stream.tell() <= MAX_HEAD + 1


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"X:  \t a b \t ", "a b"),  # only SP and HTAB are optional whitespace
        (b"X: \xa05", "\xa05"),  # NO-BREAK SPACE is obs-text, kept: it is not whitespace here
        (b"X: 5\x85", "5\x85"),  # nor is NEL, which str.strip would take away
        (b"X: \xa0", "\xa0"),
        (b"X: caf\xe9", "caf\xe9"),
    ],
)
def test_only_sp_and_htab_are_trimmed(line: bytes, value: str) -> None:
    headers = read_headers(io.BytesIO(line + b"\r\n\r\n"))
    assert not isinstance(headers, tuple) and headers.get("x") == value


def test_end_of_stream_ends_the_head() -> None:
    headers = read_headers(io.BytesIO(b"Host: a\r\n"))
    assert not isinstance(headers, tuple) and headers.get("host") == "a"


@pytest.mark.parametrize(
    ("version", "status"),
    [("HTTP/1.1", None), ("HTTP/1.0", None), ("HTTP/2.0", 505), ("HTTP/9.9", 505),
     ("HTTP/1", 400), ("FTP/1.0", 400), ("HTTP/x.y", 400), ("HTTP/1.1.1", 400), ("http/1.1", 400),
     # str.isdigit takes these, int() then fails: they are not the ASCII DIGIT of RFC 9112
     ("HTTP/\u00b2.0", 400), ("HTTP/1.\u00b9", 400), ("HTTP/\u00b3.\u00b3", 400),
     ("HTTP/\u0661.\u0661", 400), ("HTTP/" + "1" * 5000 + ".0", 400), ("HTTP/10.0", 400),
     ("HTTP/1.1\r", 400), ("HTTP/1.1 ", 400), ("HTTP/+1.1", 400)],
)
def test_versions(version: str, status: int | None) -> None:
    problem = version_problem(version)
    assert (problem[0] if problem else None) == status


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"GET /health HTTP/1.1\r\n", RequestLine("GET", "/health", "HTTP/1.1")),
        (b"GET /health HTTP/1.1\n", RequestLine("GET", "/health", "HTTP/1.1")),  # a bare LF
        (b"PATCH /vms/a?x=%20 HTTP/1.0\r\n", RequestLine("PATCH", "/vms/a?x=%20", "HTTP/1.0")),
        # Only SP separates the words (RFC 9112 section 3): nothing a proxy may read otherwise.
        (b"GET\xa0/health\xa0HTTP/1.1\r\n", 400),
        (b"GET\t/health\tHTTP/1.1\r\n", 400),
        (b"GET\x0b/health HTTP/1.1\r\n", 400),
        (b"GET /health\x0cHTTP/1.1 HTTP/1.1\r\n", 400),
        (b"GET  /health HTTP/1.1\r\n", 400),
        (b" GET /health HTTP/1.1\r\n", 400),
        (b"GET /health HTTP/1.1 \r\n", 400),
        (b"GET /health HTTP/1.1\r\r\n", 400),
        (b"GET /he\x85alth HTTP/1.1\r\n", 400),
        (b"GET /caf\xe9 HTTP/1.1\r\n", 400),
        (b"GET /health\r\n", 400),
        (b"\r\n", 400),
        (b"G(E)T /health HTTP/1.1\r\n", 400),
        (b"GET /health HTTP/\xb2.0\r\n", 400),
        (b"GET /health HTTP/2.0\r\n", 505),
        (b"GET /" + b"a" * MAX_REQUEST_LINE + b" HTTP/1.1\r\n", 414),
    ],
)
def test_request_lines(line: bytes, expected: RequestLine | int) -> None:
    parsed = request_line(line)
    if isinstance(expected, RequestLine):
        assert parsed == expected
    else:
        assert not isinstance(parsed, RequestLine) and parsed[0] == expected


@pytest.mark.parametrize(
    ("text", "digits", "value"),
    [
        ("0", 6, 0), ("65536", 6, 65536), ("007", 3, 7), ("9" * 18, 18, 10**18 - 1),
        ("9" * 19, 18, None), ("1" * 5000, 18, None), ("", 6, None),
        ("\u00b2", 6, None), ("\u00b9", 6, None), ("\u00b3", 6, None),  # isdigit() says yes
        ("\u0663", 6, None), ("\uff15", 6, None),  # ARABIC-INDIC THREE, FULLWIDTH FIVE: int() too
        ("+5", 6, None), ("-5", 6, None), (" 5", 6, None), ("5 ", 6, None), ("5\n", 6, None),
        ("1_000", 6, None), ("0x10", 6, None), ("5.0", 6, None), ("5e3", 6, None),
    ],
)
def test_whole_numbers_are_ascii_digits_of_bounded_length(text: str, digits: int,
                                                           value: int | None) -> None:
    assert whole_number(text, digits) == value
