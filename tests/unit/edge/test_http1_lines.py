"""The request line and header lines are read in one match when they are as clients send them;
any other line is read step by step. Both ways give the same answer for every line: what is
read, or the same refusal."""

from __future__ import annotations

import pytest

from vm_operator.edge import http1
from vm_operator.edge.http1 import Field, RequestLine, header_field, request_line

REQUEST_LINES = [
    b"GET / HTTP/1.1\r\n",
    b"GET /vms HTTP/1.1\n",
    b"HEAD /vms/a?state=running HTTP/1.0\r\n",
    b"PATCH /vms/%61 HTTP/1.1\r\n",
    b"M-SEARCH * HTTP/1.1\r\n",
    b"GET / HTTP/1.1",  # the end of the stream came before the line's end
    b"GET  / HTTP/1.1\r\n",
    b"GET / HTTP/1.1 \r\n",
    b"GET\t/ HTTP/1.1\r\n",
    b"GET / HTTP/2.0\r\n",
    b"GET / HTTP/1.2\r\n",
    b"GET / http/1.1\r\n",
    b"GET / HTTP/1.1\r\r\n",
    b"G@T / HTTP/1.1\r\n",
    b"GET /\xe9 HTTP/1.1\r\n",
    b"GET /a\x7fb HTTP/1.1\r\n",
    b"GET / HTTP/\xd9\xa1.1\r\n",
    b"\r\n",
    b"GET\r\n",
]

HEADER_LINES = [
    b"Host: 127.0.0.1:8082\r\n",
    b"host:x\n",
    b"If-None-Match: \"abc\", W/\"def\"\r\n",
    b"X-Empty:\r\n",
    b"X-Blank: \t \r\n",
    b"X-Padded: \t a b \t\r\n",
    b"X-Colons: a:b:c\r\n",
    b"X-Latin: caf\xe9\r\n",
    b"X-Tab:\ta\tb\r\n",
    b"X-No-End: a",
    b"Bad Name: a\r\n",
    b"Name : a\r\n",
    b": a\r\n",
    b"NoColon\r\n",
    b"X-Ctl: a\x01b\r\n",
    b"X-Cr: a\rb\r\n",
    b"X-Del: a\x7f\r\n",
    b"X-Nul: \x00\r\n",
    b"X-Trailing-Cr: a\r\r\n",
]


@pytest.mark.parametrize("line", REQUEST_LINES)
def test_a_request_line_reads_alike_both_ways(line: bytes) -> None:
    assert request_line(line) == http1._request_line_long(line)


@pytest.mark.parametrize("line", HEADER_LINES)
def test_a_header_line_reads_alike_both_ways(line: bytes) -> None:
    assert header_field(line) == http1._header_field_long(line)


def test_the_lines_clients_send_are_read_in_one_match() -> None:
    assert http1._REQUEST_LINE.fullmatch("GET /vms/a?x=1 HTTP/1.1\r\n") is not None
    assert http1._FIELD_LINE.fullmatch("If-None-Match: \"a\"\r\n") is not None
    assert request_line(b"GET /vms HTTP/1.1\r\n") == RequestLine("GET", "/vms", "HTTP/1.1")
    assert header_field(b"X-Padded: \t a b \t\r\n") == Field("X-Padded", "a b")


@pytest.mark.parametrize("line", [
    b"X: " + b" " * 30000 + b"\x01\r\n",
    b"X: a" + b" \t" * 15000 + b"\x01\r\n",
    b"X:" + b"a " * 15000 + b"\x00\n",
])
def test_a_long_refused_header_line_is_refused(line: bytes) -> None:
    assert header_field(line) == (400, "the value of header 'X' holds a control character")
