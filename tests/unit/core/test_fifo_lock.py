"""FifoLock, the per-VM write queue: first come first served, and a bound that turns the next
caller away at once instead of queueing it."""

import threading
import time
from collections.abc import Callable

import pytest

from vm_operator.core.fifo import FifoLock


def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a state of the lock (not for time to pass): the next thread starts after it."""
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, f"not reached: {what}"
        time.sleep(0.001)


def try_acquire_elsewhere(lock: FifoLock) -> list[bool]:
    """acquire() from another thread; [] if it is still waiting after 5 s (it queued)."""
    result: list[bool] = []
    caller = threading.Thread(target=lambda: result.append(lock.acquire()), daemon=True)
    caller.start()
    caller.join(5)
    return result


@pytest.mark.parametrize("bound", [0, 1, 3, 16])
def test_waiters_are_served_in_arrival_order_and_the_queue_is_bounded(bound: int) -> None:
    lock = FifoLock(bound)
    assert lock.acquire()  # the test holds the lock
    served: list[int] = []
    outcomes: list[bool] = []

    def waiter(number: int) -> None:
        got = lock.acquire()
        outcomes.append(got)
        if got:
            served.append(number)  # under the lock, so the order is the order of service
            lock.release()

    waiters = []
    for number in range(bound):
        waiter_thread = threading.Thread(target=waiter, args=(number,), daemon=True)
        waiter_thread.start()
        waiters.append(waiter_thread)
        until(lambda n=number: lock.waiting == n + 1, f"waiter {number} queued")

    assert try_acquire_elsewhere(lock) == [False]  # full: turned away, not queued
    assert lock.waiting == bound and served == []
    lock.release()
    for waiter_thread in waiters:
        waiter_thread.join(5)
    assert served == list(range(bound)) and outcomes == [True] * bound
    assert lock.waiting == 0
    assert try_acquire_elsewhere(lock) == [True]  # a refusal took no place in the queue
    lock.release()


def test_a_free_lock_is_taken_at_once_and_released() -> None:
    lock = FifoLock(0)
    for _ in range(3):
        assert lock.acquire()
        assert lock.waiting == 0
        lock.release()
