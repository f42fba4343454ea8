"""A fair lock with a bounded queue: the per-VM write ordering."""

from __future__ import annotations

import threading


class FifoLock:
    """A lock that serves waiters in arrival order, with a bounded queue.

    ``threading.Lock`` is not fair: under load one client's stop could wait behind an
    endless stream of later starts. Writes to a VM queue up first come, first served,
    and past ``max_waiting`` a new one is turned away at once instead of waiting minutes.
    """

    def __init__(self, max_waiting: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0
        self._max_waiting = max_waiting

    def acquire(self) -> bool:
        """Wait for our turn; False (without waiting) when the queue is full."""
        with self._cond:
            if self._next_ticket - self._serving > self._max_waiting:
                return False
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()
            return True

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """How many callers are queued behind the holder (what the bound counts)."""
        with self._cond:
            return max(0, self._next_ticket - self._serving - 1)
