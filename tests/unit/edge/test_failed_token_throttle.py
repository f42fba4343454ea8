"""Failed tokens per client address: the bound, Retry-After, other addresses, bounded memory."""

from __future__ import annotations

import pytest

from vm_operator.edge.throttle import FAILURES, WINDOW, Throttle


@pytest.mark.parametrize(("failures_at", "now", "retry_after"), [
    ([], 0.0, None),
    ([0.0] * (FAILURES - 1), 1.0, None),  # one short of the bound
    ([0.0] * FAILURES, 1.0, 59),  # at the bound: until the oldest is WINDOW old
    ([0.0] * FAILURES, 0.5, 60),  # rounded up
    ([0.0] * FAILURES, 59.5, 1),  # at least a second
    ([0.0] * FAILURES, 60.0, None),  # the oldest is a window old
    ([0.0, *[30.0] * (FAILURES - 1)], 61.0, None),  # the oldest left the window
    ([float(i) for i in range(FAILURES + 5)], 20.0, 45),  # only the newest FAILURES count
])
def test_retry_after_counts_the_failures_of_the_window(
        failures_at: list[float], now: float, retry_after: int | None) -> None:
    throttle = Throttle()
    for moment in failures_at:
        throttle.failed("10.0.0.1", moment)
    assert throttle.retry_after("10.0.0.1", now) == retry_after
    assert throttle.retry_after("10.0.0.2", now) is None  # another address


def test_the_bound_is_ten_a_minute() -> None:
    assert (FAILURES, WINDOW) == (10, 60.0)


def test_memory_is_bounded_forgetting_the_least_recent_address() -> None:
    throttle = Throttle(limit=2, window=60, max_addresses=3)
    for address in ("a", "b", "c", "d"):
        throttle.failed(address, 0.0)
        throttle.failed(address, 0.0)
    assert throttle.tracked == 3
    assert throttle.retry_after("a", 1.0) is None  # forgotten
    assert throttle.retry_after("d", 1.0) == 59


def test_an_address_whose_failures_expired_is_forgotten() -> None:
    throttle = Throttle(limit=2, window=10)
    throttle.failed("a", 0.0)
    assert throttle.retry_after("a", 11.0) is None
    assert throttle.tracked == 0
