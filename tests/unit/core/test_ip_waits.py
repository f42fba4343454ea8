"""One tart ip per VM, shared by whoever asks meanwhile, and few at once (core/ip_waits.py),
over a fake Tart whose ``tart ip`` answers when the test lets it."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from vm_operator.core.errors import IpWaitersFull
from vm_operator.core.ip_waits import IpWaiters
from vm_operator.tart.errors import TartNoIp, TartNotRunning
from vm_operator.tart.names import VmName


class FakeIp:
    """``tart ip``: each call is recorded, then blocks until ``answer`` is called."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._answers: list[tuple[threading.Event, list[str | Exception]]] = []

    def __call__(self, name: VmName, wait: int) -> str:
        gate: threading.Event = threading.Event()
        box: list[str | Exception] = []
        with self._lock:
            self.calls.append((str(name), wait))
            self._answers.append((gate, box))
        self.started.release()
        gate.wait(30)
        result = box[0]
        if isinstance(result, Exception):
            raise result
        return result

    def answer(self, index: int, result: str | Exception) -> None:
        gate, box = self._answers[index]
        box.append(result)
        gate.set()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def joined(waiters: IpWaiters, name: str, askers: int) -> None:
    """Wait until ``askers`` wait for the VM's tart ip."""
    for _ in range(1000):
        if waiters.askers(name) >= askers:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{waiters.askers(name)} of {askers} askers joined")


def started(fake: FakeIp, count: int = 1) -> None:
    for _ in range(count):
        assert fake.started.acquire(timeout=10), "tart ip was not called"


def over_fakes(limit: int | None = None) -> tuple[FakeIp, FakeClock, IpWaiters]:
    """IpWaiters over a FakeIp and a FakeClock (``limit``: its bound, else the default)."""
    fake, clock = FakeIp(), FakeClock()
    waiters = IpWaiters(fake, clock) if limit is None else IpWaiters(fake, clock, limit=limit)
    return fake, clock, waiters


def ask(pool: ThreadPoolExecutor, waiters: IpWaiters, name: str, wait: int) -> Future[str]:
    """Ask ``waiters`` for the VM's IP from a thread of ``pool``."""
    return pool.submit(waiters.ip, VmName(name), wait)


def ask_tart(pool: ThreadPoolExecutor, fake: FakeIp, waiters: IpWaiters, wait: int) -> Future[str]:
    """Ask for the IP of "vm" and wait until the ask has started a ``tart ip`` of its own."""
    asked = ask(pool, waiters, "vm", wait)
    started(fake)
    return asked


def test_fifty_askers_of_one_vm_share_one_tart_ip() -> None:
    fake, _, waiters = over_fakes()
    with ThreadPoolExecutor(50) as pool:
        first = ask_tart(pool, fake, waiters, 60)
        rest = [ask(pool, waiters, "vm", 30) for _ in range(49)]
        joined(waiters, "vm", 50)  # every asker joined before the answer
        fake.answer(0, "192.168.64.2")
        assert {f.result(10) for f in [first, *rest]} == {"192.168.64.2"}
    assert fake.calls == [("vm", 60)]
    assert waiters.live() == 0


def test_a_look_without_a_wait_is_not_answered_by_a_waiter_that_waits() -> None:
    fake, _, waiters = over_fakes()
    with ThreadPoolExecutor(4) as pool:
        waiting = ask_tart(pool, fake, waiters, 60)
        now = ask_tart(pool, fake, waiters, 0)
        assert fake.calls == [("vm", 60), ("vm", 0)]
        fake.answer(1, "10.0.0.7")
        assert now.result(10) == "10.0.0.7"
        fake.answer(0, "10.0.0.7")
        assert waiting.result(10) == "10.0.0.7"


def test_past_the_bound_a_new_waiter_is_refused_but_joining_is_not() -> None:
    fake, _, waiters = over_fakes(limit=2)
    with ThreadPoolExecutor(4) as pool:
        a = ask(pool, waiters, "a", 60)
        b = ask(pool, waiters, "b", 60)
        started(fake, 2)
        with pytest.raises(IpWaitersFull) as refused:
            waiters.ip(VmName("c"), 60)
        assert refused.value.retry_after > 0 and "2 tart ip" in refused.value.detail
        joining = ask(pool, waiters, "a", 60)
        joined(waiters, "a", 2)
        for index in range(2):
            fake.answer(index, f"10.0.0.{index + 1}")
        assert (a.result(10), b.result(10), joining.result(10)) == ("10.0.0.1", "10.0.0.2",
                                                                    "10.0.0.1")
    assert waiters.live() == 0 and fake.calls == [("a", 60), ("b", 60)]


def test_an_asker_with_time_left_starts_the_next_waiter_for_what_it_has_left() -> None:
    fake, clock, waiters = over_fakes()
    with ThreadPoolExecutor(4) as pool:
        short = ask_tart(pool, fake, waiters, 10)
        long = ask(pool, waiters, "vm", 100)
        joined(waiters, "vm", 2)
        clock.now += 10
        fake.answer(0, TartNoIp("no IP address found, is your VM running?", 1))
        with pytest.raises(TartNoIp):
            short.result(10)
        started(fake)
        assert fake.calls == [("vm", 10), ("vm", 90)]
        fake.answer(1, "10.0.0.9")
        assert long.result(10) == "10.0.0.9"


def test_other_failures_reach_every_asker_and_a_joiner_whose_wait_ends_first_gets_no_ip() -> None:
    fake, _, waiters = over_fakes()
    with ThreadPoolExecutor(4) as pool:
        first = ask_tart(pool, fake, waiters, 60)
        with pytest.raises(TartNoIp):
            waiters.ip(VmName("vm"), 1)  # joins; its second runs out before the waiter's 60
        joining = ask(pool, waiters, "vm", 60)
        joined(waiters, "vm", 3)  # the one that gave up is still counted: it did join
        fake.answer(0, TartNotRunning('VM "vm" is not running', 2))
        for future in (first, joining):
            with pytest.raises(TartNotRunning):
                future.result(10)
    assert len(fake.calls) == 1
