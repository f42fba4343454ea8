"""Time, as the core sees it: a monotonic clock for deadlines and freshness, and the wall
clock for the timestamps of records and logs. A Protocol, so that tests can fake both."""

from __future__ import annotations

import time
from typing import Protocol

_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def utc_now() -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``: every timestamp of the API and its logs.
    The text of the second is made once a second."""
    global _second
    now = time.time()
    whole, text = _second
    if whole != int(now):
        whole = int(now)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)
    return f"{text}.{int(now % 1 * 1000):03d}Z"


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines, cache freshness)."""
        ...

    def utc_now(self) -> str:
        """The wall clock as an API timestamp (``utc_now``)."""
        ...


class SystemClock:
    """The real clocks."""

    monotonic = staticmethod(time.monotonic)
    utc_now = staticmethod(utc_now)
