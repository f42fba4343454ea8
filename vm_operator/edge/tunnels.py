"""WebSocket tunnels (RFC 6455): the handshake a route declared ``upgrade=True`` checks before
its handler runs, the 101's headers, and the pump that carries a tunnel once the connection is
upgraded.

The pump runs on the connection's own worker thread (client to guest) and one more (guest to
client): binary messages carry the stream both ways (a tunnel with ``messages``, an exec's,
takes and gives whole JSON messages as text frames instead), a ping gets its pong, and the tunnel ends
when either side closes (a close frame, end of file, an error). The connection is counted like
a stream (``Connections.streaming``): draining at shutdown ends it with a close frame (1001).
A client that stops reading is cut off by the write deadline, as a stream's.
"""

from __future__ import annotations

import socket
import threading
from io import BufferedIOBase

from vm_operator.edge.connections import Connections, cut
from vm_operator.edge.errors import ApiError
from vm_operator.edge.problems.client_errors import BAD_HEADER, UPGRADE_REQUIRED
from vm_operator.edge.responses import Response, TunnelEnd
from vm_operator.edge.security import Headers
from vm_operator.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    GOING_AWAY,
    INTERNAL,
    INVALID_DATA,
    NORMAL,
    PING,
    PONG,
    TEXT,
    TOO_BIG,
    UNSUPPORTED_DATA,
    VERSION,
    FrameError,
    accept_key,
    close_code,
    close_payload,
    frame,
    frame_head,
    payload_pieces,
    read_head,
    valid_key,
)

MAX_MESSAGE = 1 << 20  # bytes of one client message to a message tunnel (an exec's JSON)
GUEST_READ = 64 * 1024  # bytes read from the guest at once (one binary message each)
CLOSE_WAIT = 5.0  # seconds a client has to answer our close frame before it is cut off


def _has_token(value: str | None, token: str) -> bool:
    return value is not None and token in (part.strip().lower() for part in value.split(","))


def handshake_check(method: str, headers: Headers) -> None:
    """Refuse (426, or 400 for a bad key) a request that is not a WebSocket opening
    handshake (RFC 6455, section 4.2.1: a GET), before anything is opened for it."""
    if method != "GET" or not (_has_token(headers.get("Upgrade"), "websocket")
            and _has_token(headers.get("Connection"), "upgrade")):
        raise ApiError(UPGRADE_REQUIRED, "this route is a WebSocket: send 'Upgrade: websocket' "
                       "and 'Connection: Upgrade'",
                       (("Upgrade", "websocket"), ("Sec-WebSocket-Version", VERSION)))
    if (headers.get("Sec-WebSocket-Version") or "").strip() != VERSION:
        raise ApiError(UPGRADE_REQUIRED, f"only WebSocket version {VERSION} is spoken",
                       (("Upgrade", "websocket"), ("Sec-WebSocket-Version", VERSION)))
    if not valid_key(headers.get("Sec-WebSocket-Key")):
        raise ApiError(BAD_HEADER, "Sec-WebSocket-Key must be 16 bytes, base64-encoded")


def handshake_headers(headers: Headers) -> tuple[tuple[str, str], ...]:
    return (("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(headers.get("Sec-WebSocket-Key") or "")))


def upgrade_head(response: Response) -> bytes:
    """The 101's head: no body, no Content-Length (RFC 9110, section 15.2)."""
    lines = ["HTTP/1.1 101 Switching Protocols\r\n"]
    lines.extend(f"{key}: {value}\r\n" for key, value in response.headers)
    return ("".join(lines) + "\r\n").encode("latin-1")


class GuestGone(Exception):
    """The guest's end of a tunnel can take no more (closed by a VM stop, or broken)."""


class Pump:
    """Carries one tunnel over an upgraded connection until either side ends it."""

    def __init__(self, conn: socket.socket, rfile: BufferedIOBase, tunnel: TunnelEnd,
                 connections: Connections, client: str) -> None:
        self.conn, self.rfile, self.tunnel = conn, rfile, tunnel
        self.connections, self.client = connections, client
        self.to_guest = self.from_guest = 0
        self._send_lock = threading.Lock()
        self._close_sent = False
        self._client_done = threading.Event()
        # an exec's tunnel speaks whole JSON messages (text frames); a port's, a byte stream
        self.messages = bool(getattr(tunnel, "messages", False))

    def run(self) -> None:
        """Carry the tunnel (on the connection's worker thread); returns once it is over."""
        conn = self.conn
        try:
            if not self.connections.streaming(conn, self):  # the server drains already
                self._send_close(GOING_AWAY, "the operator is shutting down")
                return
            guest = threading.Thread(target=self._from_guest, name="tunnel-guest", daemon=True)
            guest.start()
            try:
                self._from_client()
            finally:
                self._client_done.set()
                self.tunnel.close()
                guest.join()
        finally:
            self._client_done.set()
            self.connections.stream_ended(conn)
            self.connections.clear_deadline(conn)
            self.tunnel.finish(self.client, self.to_guest, self.from_guest)

    def close(self) -> None:
        """The operator shuts down (from the draining thread): a close frame, the guest's end."""
        self._send_close(GOING_AWAY, "the operator is shutting down")
        self.tunnel.close()

    def _send(self, data: bytes) -> bool:
        with self._send_lock:
            if self._close_sent:
                return False
            try:
                self.connections.writing(self.conn)
                self.conn.sendall(data)
            except OSError:
                self._close_sent = True  # nothing more can go out
                return False
            finally:
                self.connections.clear_deadline(self.conn)
        return True

    def _send_close(self, code: int, reason: str) -> None:
        if not self._send_lock.acquire(timeout=1.0):  # a write is stuck: the cut ends it
            return
        try:
            if self._close_sent:
                return
            self._close_sent = True
            self.connections.writing(self.conn)
            self.conn.sendall(frame(CLOSE, close_payload(code, reason)))
        except OSError:
            pass
        finally:
            self.connections.clear_deadline(self.conn)
            self._send_lock.release()

    def _from_guest(self) -> None:
        """Guest to client: each read a binary message; at the guest's end, a close frame,
        and the client's answer awaited a bounded time."""
        code, reason = NORMAL, "the guest closed the connection"
        try:
            while True:
                data = self.tunnel.recv(GUEST_READ)
                if not data:
                    break
                opcode = TEXT if self.messages else BINARY
                if not self._send(frame_head(opcode, len(data)) + data):
                    return
                self.from_guest += len(data)
        except OSError:
            code, reason = INTERNAL, "the connection to the guest failed"
        if self._client_done.is_set():
            return
        self._send_close(code, reason)
        if not self._client_done.wait(CLOSE_WAIT):
            cut(self.conn)

    def _to_guest(self, data: bytes) -> None:
        """Write to the guest's end; GuestGone when it is closed or broken: a closed pipe's
        file says so with a ValueError (a message tunnel's ValueError is its refusal of a
        message, not this), a socket or pipe with an OSError (BrokenPipeError among them)."""
        try:
            self.tunnel.sendall(data)
        except OSError:
            raise GuestGone() from None
        except ValueError:
            if self.messages:
                raise
            raise GuestGone() from None

    def _from_client(self) -> None:
        """Client to guest, until a close frame, the end of the connection or a bad frame."""
        read = self.rfile.read1
        in_message = False
        message = bytearray()
        try:
            while True:
                head = read_head(read, masked=True)
                if head is None:
                    return
                if head.opcode in (BINARY, CONTINUATION, TEXT) and self.messages:
                    if (head.opcode == CONTINUATION) != in_message:
                        raise FrameError("a continuation frame without a message, or a new "
                                         "message inside one")
                    in_message = not head.fin
                    message += b"".join(payload_pieces(read, head))
                    if len(message) > MAX_MESSAGE:
                        raise FrameError(f"a message is at most {MAX_MESSAGE} bytes", TOO_BIG)
                    if not in_message:
                        self.to_guest += len(message)
                        self._to_guest(bytes(message))
                        message.clear()
                    continue
                if head.opcode in (BINARY, CONTINUATION, TEXT):
                    if head.opcode == TEXT:
                        raise FrameError("the tunnel carries binary messages only",
                                         UNSUPPORTED_DATA)
                    if (head.opcode == CONTINUATION) != in_message:
                        raise FrameError("a continuation frame without a message, or a new "
                                         "message inside one")
                    in_message = not head.fin
                    for piece in payload_pieces(read, head):
                        self._to_guest(piece)
                        self.to_guest += len(piece)
                    continue
                payload = b"".join(payload_pieces(read, head))
                if head.opcode == PING:
                    self._send(frame(PONG, payload))
                elif head.opcode == CLOSE:
                    code = close_code(payload) or NORMAL
                    self._send_close(code if code in (NORMAL, GOING_AWAY) else NORMAL, "")
                    return
        except GuestGone:  # a VM stop closed it under us: end both sides, as its end does
            self.tunnel.close()
            self._send_close(NORMAL, "the guest closed the connection")
        except FrameError as exc:
            self._send_close(exc.code, str(exc))
        except ValueError as exc:  # a message tunnel refused a message
            self._send_close(INVALID_DATA, str(exc)[:100])
        except OSError:  # the client went away, or the guest's end failed
            self._send_close(INTERNAL, "the connection to the guest failed")
