"""The watcher's diff (pure, table-driven) and its cost: what the bus is told of a listing,
and that nobody watching means no listing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from vm_operator.core.events import EventBus, Subscription
from vm_operator.core.watch import EXISTS, ListingPoller, VmStates, vm_changes
from vm_operator.tart.records import Vm


def vm(name: str, state: str = "stopped", source: str = "local") -> Vm:
    return {"name": name, "source": source, "state": state, "status": state,
            "running": state == "running", "disk_gb": 50, "size_gb": 20, "accessed": None}


STARTED = 100.0  # when the listing's tart list began
NOBODY_HOLDS: set[str] = set()

CASES = [
    # (what the bus last told, when it told each, held, listed, the changes)
    ({"a": "stopped"}, {}, NOBODY_HOLDS, [vm("a", "running")], [("a", "stopped", "running")]),
    ({"a": "running"}, {}, NOBODY_HOLDS, [vm("a", "running")], []),
    ({}, {}, NOBODY_HOLDS, [vm("new")], [("new", None, "stopped")]),
    ({"gone": "stopped"}, {}, NOBODY_HOLDS, [], [("gone", "stopped", None)]),
    # told after the listing began: the listing is older than what the bus said
    ({"a": "running"}, {"a": 100.5}, NOBODY_HOLDS, [vm("a", "stopped")], []),
    ({}, {"deleted": 100.5}, NOBODY_HOLDS, [vm("deleted")], []),
    # told before it began: the listing is news
    ({"a": "running"}, {"a": 99.0}, NOBODY_HOLDS, [vm("a", "stopped")],
     [("a", "running", "stopped")]),
    # a change of the operator holds it: it tells what it did itself
    ({"a": "stopped"}, {}, {"a"}, [vm("a", "running")], []),
    ({"a": "stopped"}, {}, {"a"}, [], []),
    ({}, {}, {"new"}, [vm("new")], []),
    # created through the bus, its state not told yet: learnt, not told
    ({"a": EXISTS}, {}, NOBODY_HOLDS, [vm("a", "running")], []),
    # OCI images are no VMs of the stream
    ({}, {}, NOBODY_HOLDS, [vm("ghcr.io/x/y:1", source="oci")], []),
]


@pytest.mark.parametrize(("known", "heard", "held", "listed", "expected"), CASES)
def test_a_listing_shows_what_changed_since_the_bus_last_told(
        known: dict[str, str], heard: dict[str, float], held: set[str], listed: list[Vm],
        expected: list[tuple[str, str | None, str | None]]) -> None:
    assert vm_changes(listed, known, heard, STARTED, held.__contains__) == expected


class Lister:
    """A tart list that counts its calls; ``vms`` is what it lists."""

    def __init__(self, *vms: Vm) -> None:
        self.vms = list(vms)
        self.calls = 0
        self.now = 0.0

    def __call__(self, max_age: float) -> tuple[float, list[Vm]]:
        self.calls += 1
        self.now += 1.0
        return self.now, list(self.vms)


def bus_and_watcher(lister: Lister) -> tuple[EventBus, VmStates, ListingPoller]:
    bus = EventBus(lambda: "2026-01-01T00:00:00Z")
    # what the bus hears, it hears after the newest listing began: as on a real clock, where
    # a listing is told once it has ended
    states = VmStates(bus, lambda: lister.now + 0.1)
    watcher = ListingPoller(states, lister, lambda name: False, interval=60)
    return bus, states, watcher


def test_nobody_watching_lists_nothing_and_the_first_watcher_learns_the_states() -> None:
    lister = Lister(vm("a"))
    bus, states, watcher = bus_and_watcher(lister)
    assert lister.calls == 0 and watcher.looks == 0
    sub = bus.subscribe()
    try:
        assert lister.calls == 1  # before the subscriber hears anything: learnt, not told
        assert states.known("a") == "stopped"
        assert sub.get(0) is None
        lister.vms = [vm("a", "running")]
        watcher.look()
        event = sub.get(0)
        assert event is not None and event.type == "vm.state"
        assert dict(event.data) == {"from": "stopped", "to": "running", "cause": "outside",
                                    "exit_code": None}
        assert states.known("a") == "running"  # heard from the bus
        watcher.look()
        assert sub.get(0) is None  # told once
    finally:
        sub.close()
        watcher.stop()


@contextmanager
def watching(lister: Lister) -> Iterator[tuple[VmStates, ListingPoller, Subscription]]:
    """A watcher over ``lister`` and one subscription (which made it learn the states)."""
    bus, states, watcher = bus_and_watcher(lister)
    sub = bus.subscribe()
    try:
        yield states, watcher, sub
    finally:
        sub.close()
        watcher.stop()


def test_what_the_operator_told_itself_is_not_told_again() -> None:
    lister = Lister(vm("a"))
    with watching(lister) as (states, watcher, sub):
        states.changed("a", "stopped", "running")  # an API start, told with cause api
        lister.vms = [vm("a", "running")]
        watcher.look()
        told = [sub.get(0), sub.get(0)]
        assert [e.data["cause"] for e in told if e is not None] == ["api"]


def told_states(sub: Subscription) -> list[tuple[str | None, object, object]]:
    """The vm.state events a subscription holds now, as (vm, from, to)."""
    found = []
    while (event := sub.get(0)) is not None:
        if event.type == "vm.state":
            found.append((event.vm, event.data["from"], event.data["to"]))
    return found


def test_a_state_a_read_was_answered_with_is_told_though_gone_by_the_next_look() -> None:
    with watching(Lister(vm("a"))) as (_, watcher, sub):  # learnt "stopped" at 1.0
        watcher.fetched(1.5, [vm("a", "running")])  # a request's listing: a brief run
        watcher.look()  # its own, at 2.0: stopped again (told running at 2.1, after it began)
        assert told_states(sub) == [("a", "stopped", "running"), ("a", "running", "stopped")]


def test_a_listing_older_than_one_looked_at_is_passed_over() -> None:
    lister = Lister(vm("a"))
    with watching(lister) as (_, watcher, sub):  # learnt at 1.0
        watcher.fetched(2.5, [vm("a", "running")])
        watcher.look()  # its own began at 2.0, before the fetched one: that one is the news
        assert told_states(sub) == [("a", "stopped", "running")]
        watcher.fetched(2.2, [vm("a", "stopped")])  # older than what was looked at
        lister.vms = [vm("a", "running")]
        watcher.look()
        assert told_states(sub) == []


def test_nothing_fetched_is_kept_while_nobody_watches() -> None:
    lister = Lister(vm("a"))
    bus, _, watcher = bus_and_watcher(lister)
    sub = bus.subscribe()  # learns "stopped" at 1.0
    sub.close()
    bus.watchers()  # the closed subscription is gone
    watcher.fetched(1.5, [vm("a", "running")])  # nobody watches: not kept
    sub = bus.subscribe()
    try:
        watcher.look()  # 2.0: stopped, as learnt
        assert told_states(sub) == []
    finally:
        sub.close()
        watcher.stop()


def test_what_was_fetched_before_the_last_watcher_left_is_not_told_to_the_next() -> None:
    lister = Lister(vm("a"))
    bus, _, watcher = bus_and_watcher(lister)
    sub = bus.subscribe()  # learns "stopped" at 1.0
    watcher.fetched(1.5, [vm("a", "running")])  # seen while watched, not looked at yet
    sub.close()  # the last watcher left
    sub = bus.subscribe()  # hours later, say
    try:
        watcher.look()  # 2.0: stopped, as the bus last told
        assert told_states(sub) == []
    finally:
        sub.close()
        watcher.stop()
