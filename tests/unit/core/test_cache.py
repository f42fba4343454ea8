"""The single-flight cache: freshness bounds, one fetch at a time, shared errors."""

import queue
import threading
import time

import pytest

from vm_operator.core.cache import FreshCache


class Source:
    """A fetch that counts calls and concurrency, optionally slow or failing."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail = delay, fail
        self.calls = self.active = self.peak = 0
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
            call = self.calls
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        if self.fail:
            raise RuntimeError(f"failure {call}")
        return call


def test_reuses_a_fetch_that_started_late_enough() -> None:
    source = Source()
    cache = FreshCache(source)
    first = cache.get(time.monotonic())
    assert cache.get(float("-inf")) == first
    assert source.calls == 1


def test_refetches_when_the_value_is_older_than_asked() -> None:
    source = Source()
    cache = FreshCache(source)
    cache.get(time.monotonic())
    assert cache.get(time.monotonic()) == 2


def test_concurrent_readers_share_one_fetch() -> None:
    source = Source(delay=0.1)
    cache = FreshCache(source)
    start = time.monotonic()
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(start))) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1] * 16
    assert source.calls == 1 and source.peak == 1


def test_a_reader_never_joins_a_fetch_older_than_it_asked() -> None:
    source = Source(delay=0.2)
    cache = FreshCache(source)
    early = threading.Thread(target=cache.get, args=(time.monotonic(),))
    early.start()
    time.sleep(0.05)  # the early fetch is in flight
    asked = time.monotonic()
    assert cache.get(asked) == 2  # waited for fetch 1 to end, then fetched anew
    early.join()
    assert source.peak == 1


def test_errors_are_shared_with_joined_readers_but_not_cached() -> None:
    source = Source(delay=0.1, fail=True)
    cache = FreshCache(source)
    start = time.monotonic()
    errors: list[str] = []

    def read() -> None:
        try:
            cache.get(start)
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == ["failure 1"] * 8
    source.fail = False
    assert cache.get(start) == 2  # the error was not kept as an answer
    assert cache.peek() == 2


def test_peek_never_fetches() -> None:
    source = Source()
    cache = FreshCache(source)
    assert cache.peek() is None
    assert source.calls == 0


@pytest.mark.parametrize("readers", [2, 32])
def test_never_more_than_one_fetch_at_a_time(readers: int) -> None:
    source = Source(delay=0.01)
    cache = FreshCache(source)
    stop = time.monotonic() + 0.3

    def hammer() -> None:
        while time.monotonic() < stop:
            cache.get(time.monotonic())

    threads = [threading.Thread(target=hammer) for _ in range(readers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert source.peak == 1
    assert source.calls > 3


def test_refresh_ahead_serves_at_once_and_refreshes_in_the_background() -> None:
    source = Source(delay=0.2)
    cache = FreshCache(source)
    cache.get(time.monotonic())
    started = time.monotonic()
    # Good enough (fetched after not_before) but older than refresh_after: served at once...
    assert cache.get(float("-inf"), refresh_after=time.monotonic()) == 1
    assert time.monotonic() - started < 0.1
    # ...while exactly one background fetch runs; a reader that needs newer data joins it.
    assert cache.get(float("-inf"), refresh_after=time.monotonic()) == 1
    assert cache.get(started) == 2
    assert source.calls == 2 and source.peak == 1


# --- freshness under a fake clock: never an answer older than asked, even while a refresh runs --


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class World:
    """Tart as a fetch sees it: each fetch returns the version current when it began, and
    finishes only when ``gate`` is open; ``began`` receives that version as it begins."""

    def __init__(self) -> None:
        self.version = 0
        self.gate = threading.Event()
        self.gate.set()
        self.began: queue.Queue[int] = queue.Queue()

    def __call__(self) -> int:
        seen = self.version
        self.began.put(seen)
        assert self.gate.wait(10)
        return seen


TTL = 1.0


def plain_read(cache: FreshCache[int], clock: Clock) -> int:
    """A read within the TTL, refreshed ahead past half of it (the earliest ``refresh_age``
    gives: VmService's reads of a quick fetch wait longer, tests/unit/core/test_refresh_ahead.py)."""
    now = clock()
    return cache.get(now - TTL, refresh_after=now - TTL / 2)


def read_while_the_gate_is_shut(cache: FreshCache[int], clock: Clock, world: World) -> int:
    """Read with the fetch in flight held; open the gate only a moment later.

    A correct read that must wait for a fetch waits for the gate; a read that wrongly takes
    the old answer returns before the timer opens it. (The timer never decides the outcome
    of a correct cache, only how soon it comes.)
    """
    opener = threading.Timer(0.1, world.gate.set)
    opener.start()
    try:
        return plain_read(cache, clock)
    finally:
        opener.cancel()
        world.gate.set()


def test_one_read_just_past_the_ttl_shows_a_change() -> None:
    clock, world = Clock(), World()
    cache = FreshCache(world, clock)
    assert plain_read(cache, clock) == 0  # t=0: fetched
    clock.now = 0.2
    world.version = 1  # the world changes outside
    clock.now = 0.9
    assert plain_read(cache, clock) == 0  # within the TTL of the fetch: the old answer may do
    clock.now = 1.3  # just over the TTL since the change: one read must show it
    assert plain_read(cache, clock) == 1


def test_an_answer_past_the_ttl_is_not_served_while_a_refresh_runs() -> None:
    clock, world = Clock(), World()
    cache = FreshCache(world, clock)
    assert plain_read(cache, clock) == 0  # t=0: fetched
    assert world.began.get_nowait() == 0
    clock.now = 0.3
    world.version = 1  # the world changes outside
    clock.now = 0.6
    world.gate.clear()
    assert plain_read(cache, clock) == 0  # within the TTL: served at once; a refresh begins
    assert world.began.get(timeout=5) == 1  # ...at 0.6, after the change, and is held
    clock.now = 1.3  # the answer held (begun at 0) is now older than the TTL
    assert read_while_the_gate_is_shut(cache, clock, world) == 1  # joined the refresh


def test_a_refresh_begun_before_the_change_is_not_joined_after_the_ttl() -> None:
    clock, world = Clock(), World()
    cache = FreshCache(world, clock)
    assert plain_read(cache, clock) == 0
    assert world.began.get_nowait() == 0
    clock.now = 0.6
    world.gate.clear()
    assert plain_read(cache, clock) == 0  # a refresh begins at 0.6 and is held
    assert world.began.get(timeout=5) == 0
    clock.now = 0.7
    world.version = 1  # the world changes after the refresh began
    clock.now = 1.8  # needs a fetch begun at 0.8 or later
    assert read_while_the_gate_is_shut(cache, clock, world) == 1
    assert world.began.get_nowait() == 1  # it waited for the refresh to end, then fetched anew
