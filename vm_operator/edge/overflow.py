"""Connections past the cap: answered 503 promptly, by one thread of their own."""

from __future__ import annotations

import selectors
import socket
import sys
import threading
import time
import traceback

from vm_operator.edge.errors import ApiError
from vm_operator.edge.http1 import MAX_REQUEST_LINE, origin_of, serialize
from vm_operator.edge.problems.server_errors import OVERLOADED
from vm_operator.edge.security import Access, cors_headers

OVERFLOW_WAIT = 0.5  # seconds a connection past the cap has to send its head before its 503
OVERFLOW_PENDING = 64  # connections past the cap that wait for their head; beyond, 503 at once
_OVERLOADED = ApiError(OVERLOADED,
                       "too many connections; retry shortly (VM_OPERATOR_MAX_CONNECTIONS)",
                       (("Retry-After", "1"),)).response()


class Overflow:
    """Connections past the cap, answered 503 by one thread of their own.

    Each gets ``OVERFLOW_WAIT`` seconds to send its request head, read without blocking
    anyone: the answer then carries the CORS headers of an allowed ``Origin``, and the
    connection is not reset by a close with its request unread. Past ``OVERFLOW_PENDING``
    waiting (or when draining), the 503 goes out at once without CORS headers.
    """

    def __init__(self, access: Access) -> None:
        self.access = access
        self._lock = threading.Lock()
        self._incoming: list[socket.socket] = []
        self._waiting: dict[socket.socket, tuple[float, bytearray]] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._selector.register(self._wake_in, selectors.EVENT_READ)
        threading.Thread(target=self._loop, name="overflow", daemon=True).start()

    def add(self, conn: socket.socket) -> None:
        with self._lock:
            full = len(self._incoming) + len(self._waiting) >= OVERFLOW_PENDING
            if not full:
                self._incoming.append(conn)
        if full:
            self.refuse(conn)
            return
        try:
            self._wake_out.send(b"\0")
        except OSError:  # the wake-up pipe is full: the loop is awake anyway
            pass

    def refuse(self, conn: socket.socket, head: bytes = b"") -> None:
        """Answer 503 (with CORS headers when ``head`` names an allowed origin) and close."""
        origin = origin_of(head)
        response = _OVERLOADED
        if origin is not None:
            response = response.with_headers(*cors_headers(self.access, {"Origin": origin}))
        try:
            conn.setblocking(False)
            conn.send(serialize(response, close=True))  # a few hundred bytes: never blocks
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conn.close()

    def _loop(self) -> None:
        while True:
            try:
                self._turn()
            except Exception:  # noqa: BLE001 - a bug: log it, keep answering
                traceback.print_exc(file=sys.stderr)
                time.sleep(0.1)

    def _turn(self) -> None:
        now = time.monotonic()
        deadlines = [deadline for deadline, _ in self._waiting.values()]
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self._wake_in:
                self._take_incoming()
            else:
                self._read(key.fileobj)  # type: ignore[arg-type]
        now = time.monotonic()
        for conn in [c for c, (deadline, _) in self._waiting.items() if deadline <= now]:
            self._finish(conn)

    def _take_incoming(self) -> None:
        try:
            while self._wake_in.recv(4096):
                pass
        except OSError:
            pass
        with self._lock:
            incoming, self._incoming = self._incoming, []
        for conn in incoming:
            try:
                conn.setblocking(False)
                self._selector.register(conn, selectors.EVENT_READ)
            except (OSError, ValueError):  # gone already
                conn.close()
                continue
            self._waiting[conn] = (time.monotonic() + OVERFLOW_WAIT, bytearray())

    def _read(self, conn: socket.socket) -> None:
        head = self._waiting[conn][1]
        try:
            data = conn.recv(MAX_REQUEST_LINE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        head += data
        if not data or b"\r\n\r\n" in head or len(head) >= 2 * MAX_REQUEST_LINE:
            self._finish(conn)

    def _finish(self, conn: socket.socket) -> None:
        _, head = self._waiting.pop(conn)
        self._selector.unregister(conn)
        self.refuse(conn, bytes(head))
