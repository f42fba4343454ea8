"""WebSocket framing (RFC 6455), pure: the handshake's accept key, frame heads, masking, and
an incremental frame reader over any ``read(n)``. Shared by the server's tunnels
(``edge/tunnels.py``) and the client's (``client/websocket.py``); it imports nothing.

A client masks every frame it sends and the server never masks its own (section 5.1); a
control frame (close, ping, pong) carries at most 125 bytes and is never fragmented
(section 5.5). A data frame's payload is handed over in pieces as it is read, never held
whole, so a frame of any length costs a bounded amount of memory.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
VERSION = "13"

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CONTROL = frozenset({CLOSE, PING, PONG})
DATA = frozenset({CONTINUATION, TEXT, BINARY})

# Close codes (section 7.4.1)
NORMAL, GOING_AWAY, PROTOCOL_ERROR, UNSUPPORTED_DATA = 1000, 1001, 1002, 1003
INVALID_DATA, TOO_BIG, INTERNAL = 1007, 1009, 1011

PIECE = 64 * 1024  # a data frame's payload is read and handed on in pieces of at most this


class FrameError(ValueError):
    """The peer broke the protocol: the connection is closed with ``code``."""

    def __init__(self, message: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (section 4.2.2)."""
    digest = hashlib.sha1((key.strip() + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_key(key: str | None) -> bool:
    """A ``Sec-WebSocket-Key`` is 16 bytes, base64-encoded (section 4.1)."""
    if key is None:
        return False
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except ValueError:
        return False


def apply_mask(data: bytes, mask: bytes, offset: int = 0) -> bytes:
    """``data`` XOR the 4-byte ``mask``, starting at byte ``offset`` of the payload (masking
    and unmasking are the same). One big-integer XOR: fast without a C extension."""
    if not data:
        return data
    shift = offset % 4
    key = (mask[shift:] + mask[:shift]) * (len(data) // 4 + 1)
    size = len(data)
    return (int.from_bytes(data, "big") ^ int.from_bytes(key[:size], "big")).to_bytes(size, "big")


def frame_head(opcode: int, length: int, fin: bool = True, mask: bytes | None = None) -> bytes:
    """The head of a frame: FIN and opcode, the payload length (7, 16 or 64 bits), the mask."""
    first = (0x80 if fin else 0) | opcode
    masked = 0x80 if mask is not None else 0
    if length < 126:
        head = struct.pack("!BB", first, masked | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, masked | 126, length)
    else:
        head = struct.pack("!BBQ", first, masked | 127, length)
    return head + (mask or b"")


def frame(opcode: int, payload: bytes = b"", mask: bytes | None = None) -> bytes:
    """A whole frame; ``mask`` (4 bytes) for a client's, None for a server's."""
    body = apply_mask(payload, mask) if mask is not None else payload
    return frame_head(opcode, len(payload), True, mask) + body


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode("utf-8")[:123]


def close_code(payload: bytes) -> int | None:
    """The status code of a close frame's payload (None: it has none)."""
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


@dataclass(frozen=True)
class Head:
    fin: bool
    opcode: int
    length: int
    mask: bytes | None


Read = Callable[[int], bytes]


def read_exactly(read: Read, size: int) -> bytes | None:
    """``size`` bytes, or None at end of stream (a partial read at the end is an error)."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        chunk = read(size - got)
        if not chunk:
            if got:
                raise FrameError("the connection ended inside a frame")
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def read_head(read: Read, masked: bool) -> Head | None:
    """The next frame's head, checked: ``masked`` says whether the peer must mask (a server
    reads a client's frames) or must not. None at a clean end of stream."""
    two = read_exactly(read, 2)
    if two is None:
        return None
    first, second = two
    if first & 0x70:
        raise FrameError("reserved bits set, and no extension was agreed")
    fin, opcode, has_mask, length = bool(first & 0x80), first & 0x0F, bool(second & 0x80), second & 0x7F
    if opcode not in CONTROL | DATA:
        raise FrameError(f"unknown opcode {opcode:#x}")
    if has_mask != masked:
        raise FrameError("a client must mask its frames" if masked else
                         "a server must not mask its frames")
    if opcode in CONTROL and (not fin or length > 125):
        raise FrameError("a control frame is at most 125 bytes and never fragmented")
    if length >= 126:
        extra = read_exactly(read, 2 if length == 126 else 8)
        if extra is None:
            raise FrameError("the connection ended inside a frame")
        length = struct.unpack("!H" if len(extra) == 2 else "!Q", extra)[0]
        if length >> 63:
            raise FrameError("the most significant bit of a 64-bit length must be 0")
    mask = read_exactly(read, 4) if has_mask else None
    if has_mask and mask is None:
        raise FrameError("the connection ended inside a frame")
    return Head(fin, opcode, length, mask)


def read_payload(read: Read, head: Head, piece: int = PIECE) -> list[bytes]:
    """A frame's payload, unmasked, in pieces of at most ``piece`` bytes (read as it comes;
    a caller that hands each piece on holds at most one)."""
    return list(payload_pieces(read, head, piece))


def payload_pieces(read: Read, head: Head, piece: int = PIECE) -> PieceIter:
    return PieceIter(read, head, piece)


class PieceIter:
    """Iterates over a frame's payload, unmasked, ``piece`` bytes at a time at most."""

    def __init__(self, read: Read, head: Head, piece: int) -> None:
        self._read, self._head, self._piece, self._done = read, head, piece, 0

    def __iter__(self) -> PieceIter:
        return self

    def __next__(self) -> bytes:
        left = self._head.length - self._done
        if left <= 0:
            raise StopIteration
        chunk = read_exactly(self._read, min(left, self._piece))
        if chunk is None:
            raise FrameError("the connection ended inside a frame")
        mask = self._head.mask
        data = apply_mask(chunk, mask, self._done) if mask is not None else chunk
        self._done += len(chunk)
        return data
