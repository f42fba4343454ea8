"""A core part's own thread: ``start`` runs its ``_loop`` on a daemon thread, ``close`` ends it.

The loop ends when ``_closed`` is set; ``_wake`` wakes it from its wait early (a change to act
on, or ``close``).
"""

from __future__ import annotations

import threading


class Worker:
    """The thread of a part that works in the background (the reconciler, the config applier)."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        raise NotImplementedError
