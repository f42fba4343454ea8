"""The lean request-head reader that replaces the email parser on the hot path."""

import io

import pytest

from vm_operator.edge.http1 import MAX_HEADERS, read_headers, version_problem


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


def test_end_of_stream_ends_the_head() -> None:
    headers = read_headers(io.BytesIO(b"Host: a\r\n"))
    assert not isinstance(headers, tuple) and headers.get("host") == "a"


@pytest.mark.parametrize(
    ("version", "status"),
    [("HTTP/1.1", None), ("HTTP/1.0", None), ("HTTP/2.0", 505), ("HTTP/9.9", 505),
     ("HTTP/1", 400), ("FTP/1.0", 400), ("HTTP/x.y", 400), ("HTTP/1.1.1", 400), ("http/1.1", 400)],
)
def test_versions(version: str, status: int | None) -> None:
    problem = version_problem(version)
    assert (problem[0] if problem else None) == status
