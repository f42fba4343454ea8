"""The event bus: order, resume with Last-Event-ID, reset past the history, slow readers
dropped, per-VM history bounded."""

from __future__ import annotations

import threading

import pytest

from vm_operator.core.event_catalogue import OPERATION_PROGRESS, VM_STATE
from vm_operator.core.events import EventBus


def bus(**kw: int) -> EventBus:
    kw.setdefault("first_id", 1)
    return EventBus(lambda: "2026-01-01T00:00:00.000Z", **kw)


def test_events_get_increasing_ids_and_reach_subscribers_in_order() -> None:
    b = bus()
    sub = b.subscribe()
    for i in range(3):
        b.publish(VM_STATE.about("a", {"to": str(i)}))
    got = [sub.get(0.1) for _ in range(3)]
    assert [e.id for e in got if e] == [1, 2, 3]
    assert [e.data["to"] for e in got if e] == ["0", "1", "2"]
    assert sub.get(0.01) is None


def test_a_subscription_filtered_by_vm_sees_only_that_vm() -> None:
    b = bus()
    sub = b.subscribe(vm="b")
    b.publish(VM_STATE.about("a", {}))
    b.publish(VM_STATE.about("b", {}))
    b.publish(OPERATION_PROGRESS.about(None, {}))
    event = sub.get(0.1)
    assert event is not None and event.vm == "b"
    assert sub.get(0.01) is None


def test_resuming_after_an_id_gives_the_missed_events() -> None:
    b = bus()
    for _ in range(5):
        b.publish(VM_STATE.about("a", {}))
    sub = b.subscribe(after=2)
    assert [e.id for e in sub.backlog] == [3, 4, 5] and not sub.reset
    assert b.subscribe(after=5).backlog == []


def test_resuming_past_the_history_says_reset() -> None:
    b = bus(history=3)
    for _ in range(6):
        b.publish(VM_STATE.about("a", {}))
    assert b.subscribe(after=1).reset  # events 2 and 3 are gone
    kept = b.subscribe(after=3)  # 4, 5, 6 are all still held
    assert not kept.reset and [e.id for e in kept.backlog] == [4, 5, 6]


def test_a_reader_that_falls_behind_is_dropped_and_publishing_never_blocks() -> None:
    b = bus(queue_limit=2)
    slow = b.subscribe()
    for _ in range(10):
        b.publish(VM_STATE.about("a", {}))
    assert slow.dropped and slow.get(0.01) is None
    assert b.watchers() == 0
    assert b.counts() == (10, 1)


def test_get_wakes_when_an_event_is_published() -> None:
    b = bus()
    sub = b.subscribe()
    threading.Timer(0.05, lambda: b.publish(VM_STATE.about("a", {}))).start()
    event = sub.get(5.0)
    assert event is not None and event.id == 1


def test_watcher_listeners_hear_each_subscription_begin_and_end() -> None:
    b = bus()
    counts: list[int] = []
    b.on_watchers(counts.append)
    one, two = b.subscribe(), b.subscribe()
    one.close()
    two.close()
    assert counts == [1, 2, 1, 0]


def test_per_vm_history_is_bounded_per_vm_and_in_vms() -> None:
    b = bus(per_vm_history=2, max_vms=2)
    for vm in ("a", "a", "a", "b", "c"):
        b.publish(VM_STATE.about(vm, {}))
    assert b.history("a") == []  # forgotten: the VM heard of least recently
    assert [e.id for e in b.history("b")] == [4]
    b2 = bus(per_vm_history=2)
    for _ in range(3):
        b2.publish(VM_STATE.about("a", {}))
    assert [e.id for e in b2.history("a")] == [2, 3]


def test_a_later_process_numbers_its_events_above_every_id_of_an_earlier_one() -> None:
    earlier = EventBus(lambda: "t")
    issued = [earlier.publish(VM_STATE.about("a", {})).id for _ in range(1000)]
    later = EventBus(lambda: "t")
    first = later.publish(VM_STATE.about("a", {})).id
    assert issued == list(range(issued[0], issued[0] + 1000))
    assert first > issued[-1]
    assert first < 2**53  # exact as a JavaScript number


@pytest.mark.parametrize("after, resets, backlog", [
    (99, True, []),  # an earlier process's id (below this one's first)
    (5, True, []),
    (0, True, []),
    (100, False, [101, 102, 103]),  # the id just below the first: "nothing yet"
    (101, False, [102, 103]),
    (103, False, []),  # the newest: nothing missed
    (104, True, []),  # never issued (yet): a later process's, or made up
    (10**15, True, []),
])
def test_an_id_this_bus_never_issued_resets(after: int, resets: bool, backlog: list[int]) -> None:
    b = bus(first_id=101)
    for _ in range(3):
        b.publish(VM_STATE.about("a", {}))
    sub = b.subscribe(after=after)
    assert (sub.reset, [e.id for e in sub.backlog], sub.last_id) == (resets, backlog, 103)


def test_before_any_event_the_reset_names_the_id_below_the_first() -> None:
    b = bus(first_id=101)
    sub = b.subscribe(after=7)
    assert sub.reset and sub.last_id == 100
    again = b.subscribe(after=sub.last_id)  # resuming from what the reset said
    assert not again.reset and again.backlog == []
