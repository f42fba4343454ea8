"""The server's open connections: the deadline each one owes, the streams being written, and
draining at shutdown.

A connection owes a request head (and any body) within the timeout, or is idle between
requests; while an answer is written, its client must read it within the timeout too. One
watchdog thread cuts every connection past its deadline, so a slow client never holds a
worker. Draining stops new requests, cuts the idle connections, ends the streams (a stream
never ends by itself) and waits for the requests in flight.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Protocol


class Closable(Protocol):
    """What draining ends: a stream (``responses.Stream``) or a tunnel's pump."""

    def close(self) -> None: ...


class Connections:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.draining = False
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        # connection -> (deadline, idle): waiting for a request head (idle) or writing an answer
        self._deadlines: dict[socket.socket, tuple[float, bool]] = {}
        self._streams: dict[socket.socket, Closable] = {}  # streams and tunnels being carried

    def start(self) -> None:
        """Start the watchdog (once the server is bound)."""
        threading.Thread(target=self._watchdog, name="header-watchdog", daemon=True).start()

    def opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.add(conn)

    def closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.discard(conn)
            self._deadlines.pop(conn, None)

    def awaiting_head(self, conn: socket.socket) -> None:
        """The connection now owes us a request head (and any body), within ``timeout``."""
        self._set_deadline(conn, idle=True)
        if self.draining:
            cut(conn)

    def writing(self, conn: socket.socket) -> None:
        """An answer is being written: a client that does not read it is cut off in time too."""
        self._set_deadline(conn, idle=False)

    def _set_deadline(self, conn: socket.socket, idle: bool) -> None:
        # one dict operation, atomic under the GIL: a worker takes no lock for its deadlines
        # (three a request); the watchdog and drain read a copy
        self._deadlines[conn] = (time.monotonic() + self.timeout, idle)

    def clear_deadline(self, conn: socket.socket) -> None:
        self._deadlines.pop(conn, None)

    def _watchdog(self) -> None:
        """Cut connections past their deadline, so a slow client never holds a worker.

        One thread instead of socket timeouts: a timeout makes every recv and send a
        poll() plus the call, which costs more than this whole loop.
        """
        while True:
            time.sleep(0.25)
            now = time.monotonic()
            late = [(c, owed) for c, owed in self._deadlines.copy().items() if owed[0] <= now]
            for conn, owed in late:
                # past its deadline when looked at: cut, unless its worker set a new one since
                if self._deadlines.get(conn) is owed:
                    self._deadlines.pop(conn, None)
                    cut(conn)

    def streaming(self, conn: socket.socket, stream: Closable) -> bool:
        """A streamed response begins on ``conn``; False when the server is draining."""
        with self._lock:
            if self.draining:
                return False
            self._streams[conn] = stream
            return True

    def stream_ended(self, conn: socket.socket) -> None:
        with self._lock:
            self._streams.pop(conn, None)

    def stop(self) -> None:
        """Draining begins: no new request, no new stream."""
        with self._lock:
            self.draining = True

    def drain(self, grace: float) -> int:
        """Close idle connections and end the streams, let in-flight requests finish.

        Returns how many connections were still busy when ``grace`` ran out.
        """
        deadline = time.monotonic() + grace
        while True:
            idle = [conn for conn, (_, waiting) in self._deadlines.copy().items() if waiting]
            with self._lock:
                streams = list(self._streams.items())
                busy = len(self._open)
            for conn in idle:
                cut(conn)
            for conn, stream in streams:  # a stream never ends by itself: end it
                stream.close()
                cut(conn)
            if busy == 0 or time.monotonic() >= deadline:
                return busy
            time.sleep(0.02)


def cut(conn: socket.socket) -> None:
    """End the connection both ways: its worker's next read or write fails at once."""
    try:  # the socket's own shutdown: a TLS socket's would stop encrypting first
        socket.socket.shutdown(conn, socket.SHUT_RDWR)
    except OSError:
        pass
