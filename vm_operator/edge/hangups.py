"""Noticing at once that the client of a streamed response (``GET /events``) went away.

A stream's thread sleeps until the next event or heartbeat, and a write to a socket whose
client has closed it often succeeds (the kernel takes it; only the next one fails): without
this, a closed stream was noticed up to two heartbeats later, and held its slot, its thread and
its subscription (the watcher listing Tart once a second) until then.

One thread waits, for all the streams at once, for their sockets to become readable. A
stream's client sends nothing after its request, so a readable socket is the end of the
client: end of file (it closed the connection, or shut down its side), or an error (a reset).
Bytes a client sends anyway are read and dropped, up to ``MAX_IGNORED`` bytes per connection;
past that the stream ends too (the connection is answered with the stream only, and closed).
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

MAX_IGNORED = 64 * 1024  # bytes a stream's client may send after its request


@dataclass(eq=False)
class _Watched:
    on_hangup: Callable[[], None]
    ignored: int = 0


class Hangups:
    """``watch(conn, on_hangup)``: call ``on_hangup`` (once, from this class's thread) as soon
    as the client of ``conn`` is gone; ``forget(conn)`` before ``conn`` is closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None

    def watch(self, conn: socket.socket, on_hangup: Callable[[], None]) -> None:
        with self._lock:
            self._selector.register(conn, selectors.EVENT_READ, _Watched(on_hangup))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stream-hangups",
                                                daemon=True)
                self._thread.start()
        self._wake()  # a selector that does not see registrations made while it waits does now

    def forget(self, conn: socket.socket) -> None:
        with self._lock:
            try:
                self._selector.unregister(conn)
            except (KeyError, ValueError, OSError):
                pass  # never watched, told already, or closed

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # its buffer is full: the thread is awake already

    def _run(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_r:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except OSError:
                        pass
                    continue
                self._check(key)

    def _check(self, key: selectors.SelectorKey) -> None:
        conn = key.fileobj
        assert isinstance(conn, socket.socket)
        watched: _Watched = key.data
        with self._lock:
            if self._selector.get_map().get(key.fd) is not key:
                return  # forgotten meanwhile (its number may be another connection's now)
            gone = _gone(conn, watched)
            if gone:
                self._selector.unregister(conn)
        if gone:
            watched.on_hangup()


def _gone(conn: socket.socket, watched: _Watched) -> bool:
    """Whether the readable ``conn`` is the end of its client (bytes it sent are dropped)."""
    try:
        # the socket's own recv (a TLS socket's takes no flags): its client's bytes are
        # dropped unread either way, and end of file is end of file
        data = socket.socket.recv(conn, 4096, socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False  # nothing to read after all
    except OSError:
        return True  # reset, or cut off
    if not data:
        return True  # end of file
    watched.ignored += len(data)
    return watched.ignored > MAX_IGNORED
