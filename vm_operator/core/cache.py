"""A single-flight, freshness-bounded read cache for Tart's answers.

A real ``tart list`` costs tens of milliseconds; spawning one per request, many at
a time, is what made the original design slow. Here at most one fetch runs at a
time per key, concurrent readers share its result, and no reader ever gets an
answer older than it asked for: callers pass ``not_before`` (a ``time.monotonic``
value), and only a fetch that *started* at or after it will do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def refresh_age(ttl: float, fetch_seconds: float) -> float:
    """How old a value kept for ``ttl`` seconds gets before a read refreshes it ahead: when
    about twice its last fetch's time (``fetch_seconds``) is left of the TTL, never less than
    a quarter of it and never more than half. Steady reads then never wait for the fetch, and
    a quick one runs about once per three quarters of the TTL, not once per half of it."""
    lead = min(max(2 * fetch_seconds, ttl / 4), ttl / 2)
    return ttl - lead


@dataclass(frozen=True)
class _Outcome(Generic[T]):
    started: float
    value: T | None
    error: Exception | None
    ended: float = float("-inf")


class FreshCache(Generic[T]):
    """One value, refreshed by ``fetch`` whenever a reader needs a newer one."""

    def __init__(self, fetch: Callable[[], T], clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._clock = clock
        self._cond = threading.Condition()
        self._last: _Outcome[T] | None = None
        self._flight_started: float | None = None
        self._flights = 0

    def get(self, not_before: float, refresh_after: float | None = None) -> T:
        """Return a value fetched no earlier than ``not_before``, fetching it if need be.

        A good-enough value fetched before ``refresh_after`` is returned at once and refreshed
        in the background (still one fetch at a time), so steady traffic never waits for Tart;
        but not before it has been kept as long as its fetch took: a burst of requests (a
        dashboard's, once a second) that outlasts a slow fetch takes the value that has just
        arrived, and costs one fetch, not two.
        """
        return self.get_stamped(not_before, refresh_after)[1]

    def get_stamped(self, not_before: float,
                    refresh_after: float | None = None) -> tuple[float, T]:
        """``get``, with the time its fetch started (what a value can be older than)."""
        # a value good enough, and not due for a refresh or being refreshed: no lock taken
        last = self._last
        if (last is not None and last.error is None and last.started >= not_before
                and (refresh_after is None or last.started >= refresh_after
                     or self._flight_started is not None)):
            return last.started, last.value  # type: ignore[return-value]
        with self._cond:
            while True:
                last = self._last
                if last is not None and last.error is None and last.started >= not_before:
                    if (refresh_after is not None and last.started < refresh_after
                            and self._clock() - last.ended >= last.ended - last.started
                            and self._flight_started is None):
                        started = self._flight_started = self._clock()
                        threading.Thread(target=self._complete, args=(started,),
                                         name="cache-refresh", daemon=True).start()
                    return last.started, last.value  # type: ignore[return-value]
                if self._flight_started is None:
                    break
                if self._flight_started >= not_before:
                    return self._join_flight()
                self._cond.wait()  # an older fetch is running: let it end, then fetch anew
            started = self._flight_started = self._clock()
        outcome = self._complete(started)
        return outcome.started, _unwrap(outcome)

    def _complete(self, started: float) -> _Outcome[T]:
        try:
            outcome: _Outcome[T] = _Outcome(started, self._fetch(), None, self._clock())
        except Exception as exc:  # noqa: BLE001 - shared with the readers that joined this fetch
            outcome = _Outcome(started, None, exc, self._clock())
        with self._cond:
            self._last = outcome
            self._flight_started = None
            self._flights += 1
            self._cond.notify_all()
        return outcome

    def _join_flight(self) -> tuple[float, T]:
        """Wait for the fetch in flight (caller holds the lock) and share its outcome."""
        flight = self._flights
        while self._flights == flight:
            self._cond.wait()
        assert self._last is not None
        return self._last.started, _unwrap(self._last)

    @property
    def fetch_seconds(self) -> float:
        """How long the last fetch took (0 before the first has ended)."""
        last = self._last
        return last.ended - last.started if last is not None else 0.0

    def peek(self) -> T | None:
        """The last good value, however old: for metrics, never for answers."""
        last = self._last
        return last.value if last is not None and last.error is None else None


def _unwrap(outcome: _Outcome[T]) -> T:
    if outcome.error is not None:
        # Several readers raise the same object: drop the old traceback so it cannot grow.
        raise outcome.error.with_traceback(None)
    return outcome.value  # type: ignore[return-value]


def cache_for(caches: dict[str, FreshCache[T]], key: str, fetch: Callable[[], T],
              clock: Callable[[], float]) -> FreshCache[T]:
    """The cache of ``key`` in ``caches``, made (over ``fetch``) when first asked for; the caller
    holds the lock that guards ``caches``."""
    cache = caches.get(key)
    if cache is None:
        cache = caches[key] = FreshCache(fetch, clock)
    return cache


class Derived(Generic[T]):
    """Values made from others (``sources``) by a pure function, kept with what they were
    made from: a read whose sources equal the kept ones gets the kept value, the very object,
    which is neither built again nor, by ``edge/conditional.Rendered``, compared field by field
    again (a tuple compares its items by identity first). Sources are values that are replaced
    whole, never changed in place (the caches' listings and records, frozen records); so is
    what is made. Past ``limit`` keys everything kept is dropped. No lock: one dict lookup
    or store, atomic; two readers that both make a value make equal ones."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._kept: dict[str, tuple[tuple[Any, ...], T]] = {}

    def get(self, key: str, make: Callable[..., T], *sources: Any) -> T:
        """``make(*sources)``, or the value kept for ``key`` when it was made from equal
        sources."""
        kept = self._kept.get(key)
        if kept is not None and kept[0] == sources:
            return kept[1]
        value = make(*sources)
        if len(self._kept) >= self.limit:
            self._kept.clear()
        self._kept[key] = (sources, value)
        return value
