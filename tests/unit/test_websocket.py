"""The pure WebSocket framing (RFC 6455) shared by the server's tunnels and the client's."""

from __future__ import annotations

import io
import struct

import pytest

from vm_operator.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PROTOCOL_ERROR,
    TEXT,
    FrameError,
    Head,
    accept_key,
    apply_mask,
    close_code,
    close_payload,
    frame,
    frame_head,
    read_head,
    read_payload,
    valid_key,
)

MASK = b"\x37\xfa\x21\x3d"


def test_the_accept_key_of_the_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(("key", "valid"), [
    ("dGhlIHNhbXBsZSBub25jZQ==", True),
    ("dGhlIHNhbXBsZQ==", False),  # 10 bytes
    ("not base64!", False),
    ("", False),
    (None, False),
])
def test_a_key_is_sixteen_bytes_of_base64(key: str | None, valid: bool) -> None:
    assert valid_key(key) is valid


@pytest.mark.parametrize(("opcode", "length", "mask", "head"), [
    (BINARY, 0, None, b"\x82\x00"),
    (BINARY, 125, None, b"\x82\x7d"),
    (BINARY, 126, None, b"\x82\x7e\x00\x7e"),
    (BINARY, 65535, None, b"\x82\x7e\xff\xff"),
    (BINARY, 65536, None, b"\x82\x7f" + struct.pack("!Q", 65536)),
    (TEXT, 5, MASK, b"\x81\x85" + MASK),
    (CLOSE, 2, None, b"\x88\x02"),
])
def test_frame_heads(opcode: int, length: int, mask: bytes | None, head: bytes) -> None:
    assert frame_head(opcode, length, mask=mask) == head


def test_the_rfc_masked_hello() -> None:
    # RFC 6455 section 5.7: a masked text "Hello"
    assert frame(TEXT, b"Hello", MASK) == bytes.fromhex("818537fa213d7f9f4d5158")


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 7])
def test_masking_from_any_offset_is_its_own_inverse(offset: int) -> None:
    data = bytes(range(256)) * 3
    masked = apply_mask(data, MASK, offset)
    assert masked != data and apply_mask(masked, MASK, offset) == data
    # a payload unmasked in pieces is the payload unmasked whole
    whole = apply_mask(data, MASK)
    assert apply_mask(data[:5], MASK) + apply_mask(data[5:], MASK, 5) == whole


@pytest.mark.parametrize(("payload", "piece"), [
    (b"", 10), (b"x", 10), (b"abc" * 100, 7), (bytes(70000), 65536), (bytes(200), 200)])
def test_a_masked_frame_reads_back_in_pieces(payload: bytes, piece: int) -> None:
    stream = io.BytesIO(frame(BINARY, payload, MASK))
    head = read_head(stream.read, masked=True)
    assert head == Head(True, BINARY, len(payload), MASK)
    pieces = read_payload(stream.read, head, piece)
    assert b"".join(pieces) == payload and all(len(p) <= piece for p in pieces)


@pytest.mark.parametrize(("data", "masked", "why"), [
    (frame(BINARY, b"hi"), True, "must mask"),  # a client's frame unmasked
    (frame(BINARY, b"hi", MASK), False, "must not mask"),  # a server's frame masked
    (b"\xc2\x00", False, "reserved"),  # RSV1 without an extension
    (b"\x83\x00", False, "opcode"),  # 0x3 is reserved
    (b"\x09\x00", False, "control"),  # a fragmented ping
    (b"\x89\x7e\x00\x7e", False, "control"),  # a ping of 126 bytes
    (b"\x82\x7f" + struct.pack("!Q", 1 << 63), False, "64-bit"),
    (b"\x82\x7e\x00", False, "ended"),  # cut inside the length
])
def test_broken_frames_are_protocol_errors(data: bytes, masked: bool, why: str) -> None:
    with pytest.raises(FrameError, match=why) as caught:
        read_head(io.BytesIO(data).read, masked=masked)
    assert caught.value.code == PROTOCOL_ERROR


def test_the_end_of_the_stream_between_frames_is_no_frame() -> None:
    assert read_head(io.BytesIO(b"").read, masked=True) is None


def test_a_payload_cut_short_is_an_error() -> None:
    stream = io.BytesIO(frame(BINARY, b"0123456789")[:-3])
    head = read_head(stream.read, masked=False)
    assert head is not None
    with pytest.raises(FrameError):
        read_payload(stream.read, head)


@pytest.mark.parametrize(("code", "reason"), [(1000, ""), (1001, "going away"), (1011, "x" * 200)])
def test_close_payloads(code: int, reason: str) -> None:
    payload = close_payload(code, reason)
    assert close_code(payload) == code and len(payload) <= 125
    assert close_code(b"") is None


def test_continuation_and_ping_heads_parse() -> None:
    data = frame_head(BINARY, 1, fin=False) + b"a" + frame(PING, b"p") + frame(CONTINUATION, b"b")
    stream = io.BytesIO(data)
    first = read_head(stream.read, masked=False)
    assert first is not None and (first.fin, first.opcode) == (False, BINARY)
    assert read_payload(stream.read, first) == [b"a"]
    ping = read_head(stream.read, masked=False)
    assert ping is not None and ping.opcode == PING and read_payload(stream.read, ping) == [b"p"]
    last = read_head(stream.read, masked=False)
    assert last is not None and (last.fin, last.opcode) == (True, CONTINUATION)
