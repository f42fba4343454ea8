"""Failed authentication, throttled per client address.

Past ``limit`` failures (401s) from one address within ``window`` seconds, every request of
that address that needs a token is answered 429 with ``Retry-After`` until the oldest of those
failures is ``window`` seconds old; other addresses are not affected. At most ``max_addresses``
addresses are remembered (the least recently failing is forgotten first), so memory is bounded
whatever the number of clients. The arithmetic is pure over the times it is given.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque

FAILURES = 10  # failures allowed per address within WINDOW
WINDOW = 60.0  # seconds
MAX_ADDRESSES = 4096


class Throttle:
    def __init__(self, limit: int = FAILURES, window: float = WINDOW,
                 max_addresses: int = MAX_ADDRESSES) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str, now: float) -> int | None:
        """Seconds until ``address`` may try again (at least 1), or None: it may now."""
        with self._lock:
            times = self._failures.get(address)
            if times is None:
                return None
            while times and now - times[0] >= self.window:
                times.popleft()
            if not times:
                del self._failures[address]
                return None
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(self.window - (now - times[0])))

    def failed(self, address: str, now: float) -> None:
        """One more failure of ``address``: the newest ``limit`` are kept."""
        with self._lock:
            times = self._failures.pop(address, None)
            if times is None:
                times = deque(maxlen=self.limit)
            times.append(now)
            self._failures[address] = times  # the most recent last
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)

    @property
    def tracked(self) -> int:
        with self._lock:
            return len(self._failures)
