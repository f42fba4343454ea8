"""The operations queue: FIFO, one at a time among operations on one image, bounded,
cancellable, observable (what runs side by side: tests/unit/core/test_operation_scheduling.py).

The jobs are fakes driven by threading.Event: a test decides when each one proceeds, and waits
for states (Event.wait, OperationQueue.wait), never for time to pass.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from vm_operator.core import errors
from vm_operator.core.operations import Job, NameBusy, OperationContext, OperationQueue
from vm_operator.store.operation_records import (
    Ending,
    Operation,
    OperationError,
    OperationEvent,
    OperationFailed,
    new_operation_id,
)

WAIT = 10.0  # seconds: only reached when something is broken


class FakeClock:
    """ISO 8601 timestamps, one second apart, one per call."""

    def __init__(self) -> None:
        self.ticks = 0

    def now(self) -> str:
        self.ticks += 1
        return f"2025-01-01T00:{self.ticks // 60:02d}:{self.ticks % 60:02d}Z"


class FakeWork:
    """A job that runs until the test releases it (or a cancel hook does)."""

    running_now: ClassVar[int] = 0  # jobs inside run() at this moment, across all FakeWork
    most_at_once: ClassVar[int] = 0
    order: ClassVar[list[str]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str, fail: OperationError | None = None,
                 kill_on_cancel: bool = True) -> None:
        self.name = name
        self.fail = fail
        self.kill_on_cancel = kill_on_cancel
        self.started = threading.Event()
        self.release = threading.Event()
        self.cleanups: list[tuple[Ending, str, Operation | None]] = []
        self.hook_calls = 0
        self.ctx: OperationContext | None = None
        self.queue: OperationQueue | None = None

    def run(self, ctx: OperationContext) -> None:
        self.ctx = ctx
        with FakeWork.lock:
            FakeWork.order.append(self.name)
            FakeWork.running_now += 1
            FakeWork.most_at_once = max(FakeWork.most_at_once, FakeWork.running_now)
        try:
            if self.kill_on_cancel:
                ctx.on_cancel(self.kill)
            self.started.set()
            assert self.release.wait(WAIT), f"{self.name} never released"
            ctx.on_cancel(None)
            if ctx.cancelled:
                raise OperationFailed(OperationError("tart-failed", "killed", None, -9))
            if self.fail is not None:
                raise OperationFailed(self.fail)
        finally:
            with FakeWork.lock:
                FakeWork.running_now -= 1

    def kill(self) -> None:
        """The cancel hook: stands for killing Tart's process group."""
        self.hook_calls += 1
        self.release.set()

    def cleanup(self, ctx: OperationContext, ending: Ending) -> None:
        assert self.queue is not None
        # what the world sees while the cleanup runs: still running, the name still held
        self.cleanups.append((ending, self.queue.get(ctx.id).state,
                              self.queue.holder(self.name)))

    def job(self, queue: OperationQueue) -> Job:
        self.queue = queue
        return Job(self.run, self.cleanup)


@pytest.fixture(autouse=True)
def _reset_fake_work() -> None:
    FakeWork.running_now = FakeWork.most_at_once = 0
    FakeWork.order = []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> Iterator[OperationQueue]:
    ops = OperationQueue(clock.now, max_queued=8, history=50)
    ops.start()
    yield ops
    ops.close(WAIT)


IMAGE = "ghcr.io/example/image:latest"  # one image for all: they run one at a time


def submit(queue: OperationQueue, work: FakeWork) -> Operation:
    return queue.submit("create", work.job(queue), vm=work.name, image=IMAGE)


def finish(queue: OperationQueue, work: FakeWork, op: Operation) -> Operation:
    work.release.set()
    done = queue.wait(op.id, WAIT)
    assert done.finished, f"{work.name} did not finish"
    return done


def test_fifo_one_at_a_time(queue: OperationQueue) -> None:
    works = [FakeWork(f"vm-{n}") for n in range(5)]
    ops = [submit(queue, work) for work in works]
    assert all(op.state == "queued" for op in ops)
    for index, (work, op) in enumerate(zip(works, ops, strict=True)):
        assert work.started.wait(WAIT)
        assert queue.get(op.id).state == "running"
        assert [o.id for o in queue.active()] == [o.id for o in ops[index:]]
        assert queue.stats().running == 1 and queue.stats().queued == len(ops) - index - 1
        assert not any(w.started.is_set() for w in works[index + 1:])
        assert finish(queue, work, op).state == "succeeded"
    assert FakeWork.order == [w.name for w in works]
    assert FakeWork.most_at_once == 1
    assert [op.id for op in queue.list_operations()] == [op.id for op in ops]


def test_a_submit_past_the_bound_is_refused_with_a_retry_hint(clock: FakeClock) -> None:
    queue = OperationQueue(clock.now, max_queued=2, retry_after=45)
    queue.start()
    works = [FakeWork(f"vm-{n}") for n in range(4)]
    first = submit(queue, works[0])
    assert works[0].started.wait(WAIT)
    submit(queue, works[1])
    submit(queue, works[2])
    with pytest.raises(errors.OperationsFull) as refused:
        submit(queue, works[3])
    assert (refused.value.retry_after, refused.value.limit) == (45, 2)
    assert queue.holder("vm-3") is None and len(queue.list_operations()) == 3  # no trace
    finish(queue, works[0], first)
    assert works[1].started.wait(WAIT)
    fourth = submit(queue, works[3])  # a place is free again
    assert fourth.state == "queued"
    for work in works[1:]:
        work.release.set()
    assert queue.wait(fourth.id, WAIT).state == "succeeded"
    queue.close(WAIT)


def test_cancel_a_queued_operation(queue: OperationQueue) -> None:
    running, waiting, after = FakeWork("a"), FakeWork("b"), FakeWork("c")
    first, second, third = submit(queue, running), submit(queue, waiting), submit(queue, after)
    assert running.started.wait(WAIT)
    cancelled = queue.cancel(second.id)
    assert cancelled.state == "cancelled" and cancelled.finished_at is not None
    assert cancelled.cancel_requested and cancelled.started_at is None
    assert queue.holder("b") is None  # the name is free at once
    assert [op.id for op in queue.active()] == [first.id, third.id]
    finish(queue, running, first)
    assert finish(queue, after, third).state == "succeeded"
    assert not waiting.started.is_set() and waiting.cleanups == []  # never ran, nothing to undo
    assert FakeWork.order == ["a", "c"]


def test_cancel_a_running_operation_kills_cleans_up_then_says_cancelled(
        queue: OperationQueue) -> None:
    work = FakeWork("pulling")
    op = submit(queue, work)
    assert work.started.wait(WAIT)
    answer = queue.cancel(op.id)
    assert answer.state == "running" and answer.cancel_requested
    assert work.hook_calls == 1  # called by cancel() itself: Tart is killed at once
    done = queue.wait(op.id, WAIT)
    assert done.state == "cancelled" and done.error is None and done.finished_at is not None
    # the cleanup ran before the operation said cancelled and before the name was free
    assert [(ending, state) for ending, state, _ in work.cleanups] == [("cancelled", "running")]
    assert work.cleanups[0][2] is not None and work.cleanups[0][2].id == op.id
    assert queue.holder("pulling") is None


def test_cancelling_twice_kills_once(queue: OperationQueue) -> None:
    work = FakeWork("vm")
    hook_entered, hook_may_end = threading.Event(), threading.Event()

    def slow_kill() -> None:  # the kill is under way while the second cancel comes
        work.hook_calls += 1
        hook_entered.set()
        assert hook_may_end.wait(WAIT)
        work.release.set()

    work.kill = slow_kill  # type: ignore[method-assign]
    op = submit(queue, work)
    assert work.started.wait(WAIT)
    canceller = threading.Thread(target=queue.cancel, args=(op.id,))
    canceller.start()
    assert hook_entered.wait(WAIT)
    second = queue.cancel(op.id)  # returns at once: it neither waits for nor repeats the kill
    assert second.cancel_requested and second.state == "running"
    hook_may_end.set()
    canceller.join(WAIT)
    assert queue.wait(op.id, WAIT).state == "cancelled"
    assert work.hook_calls == 1


def test_a_hook_registered_after_the_cancel_is_called_at_once(queue: OperationQueue) -> None:
    work = FakeWork("late", kill_on_cancel=False)  # registers no hook before it is released
    hooks: list[str] = []

    def run(ctx: OperationContext) -> None:
        work.started.set()
        assert ctx.wait_cancelled(WAIT)
        ctx.on_cancel(lambda: hooks.append("killed"))  # e.g. Tart launched just now
        assert hooks == ["killed"]
        ctx.raise_if_cancelled()

    op = queue.submit("pull", Job(run), image="ghcr.io/org/image:latest")
    assert work.started.wait(WAIT)
    queue.cancel(op.id)
    assert queue.wait(op.id, WAIT).state == "cancelled"
    assert hooks == ["killed"]


def test_dropping_the_hook_waits_for_a_kill_in_progress(queue: OperationQueue) -> None:
    hook_entered, hook_may_end, hook_ended = threading.Event(), threading.Event(), threading.Event()
    hooked, dropped = threading.Event(), threading.Event()

    def kill() -> None:
        hook_entered.set()
        assert hook_may_end.wait(WAIT)
        hook_ended.set()

    def run(ctx: OperationContext) -> None:
        ctx.on_cancel(kill)
        hooked.set()
        assert hook_entered.wait(WAIT)
        ctx.on_cancel(None)  # must not return while kill() runs: the process is not reaped yet
        assert hook_ended.is_set()
        dropped.set()

    op = queue.submit("pull", Job(run), image="img")
    assert hooked.wait(WAIT)
    canceller = threading.Thread(target=queue.cancel, args=(op.id,))
    canceller.start()
    assert hook_entered.wait(WAIT)
    assert not dropped.wait(0.2)  # on_cancel(None) is blocked behind the running hook
    hook_may_end.set()
    canceller.join(WAIT)
    assert queue.wait(op.id, WAIT).state == "cancelled"
    assert dropped.is_set()


def test_a_failure_is_recorded_and_cleaned_up(queue: OperationQueue) -> None:
    error = OperationError("tart-failed", "tart clone failed",
                           'the specified VM "base" does not exist', 2)
    work = FakeWork("broken", fail=error)
    op = submit(queue, work)
    done = finish(queue, work, op)
    assert done.state == "failed" and done.error == error
    assert [(ending, state) for ending, state, _ in work.cleanups] == [("failed", "running")]
    assert done.to_json()["error"] == {"kind": "tart-failed", "detail": "tart clone failed",
                                       "tart_message": 'the specified VM "base" does not exist',
                                       "exit_code": 2}
    assert queue.holder("broken") is None


def test_an_unexpected_exception_fails_the_operation_without_leaking_it(
        queue: OperationQueue) -> None:
    def run(ctx: OperationContext) -> None:
        raise RuntimeError("secret=hunter2")

    done = queue.wait(queue.submit("prune", Job(run)).id, WAIT)
    assert done.state == "failed" and done.error is not None
    assert done.error.kind == "internal-error" and "hunter2" not in done.error.detail
    # the worker survives: the next operation runs
    assert queue.wait(queue.submit("prune", Job(lambda ctx: None)).id, WAIT).state == "succeeded"


def test_a_failed_start_keeps_the_vm_and_says_so(queue: OperationQueue) -> None:
    def run(ctx: OperationContext) -> None:
        ctx.set_phase("starting")
        ctx.note("created VM kept, stopped: start failed")
        raise OperationFailed(OperationError("start-failed", "the VM did not start"))

    def cleanup(ctx: OperationContext, ending: Ending) -> None:
        raise OperationFailed(OperationError("tart-failed", "tart stop failed"))

    done = queue.wait(queue.submit("create", Job(run, cleanup), vm="web").id, WAIT)
    assert (done.state, done.phase) == ("failed", "starting")
    assert done.error is not None and done.error.kind == "start-failed"
    assert done.result == ("created VM kept, stopped: start failed; "
                           "cleanup failed: tart stop failed")


def test_too_late_to_cancel(queue: OperationQueue) -> None:
    in_cleanup, cleanup_may_end = threading.Event(), threading.Event()

    def run(ctx: OperationContext) -> None:
        raise OperationFailed(OperationError("tart-failed", "no"))

    def cleanup(ctx: OperationContext, ending: Ending) -> None:
        in_cleanup.set()
        assert cleanup_may_end.wait(WAIT)

    op = queue.submit("delete", Job(run, cleanup), vm="gone")
    assert in_cleanup.wait(WAIT)
    with pytest.raises(errors.OperationFinished):  # its work has ended: the outcome is decided
        queue.cancel(op.id)
    cleanup_may_end.set()
    assert queue.wait(op.id, WAIT).state == "failed"
    with pytest.raises(errors.OperationFinished):
        queue.cancel(op.id)
    with pytest.raises(errors.OperationMissing):
        queue.cancel("no-such-operation")


def test_concurrent_submits_of_one_name_accept_exactly_one(clock: FakeClock) -> None:
    queue = OperationQueue(clock.now, max_queued=64)  # not started: everything stays queued
    barrier = threading.Barrier(32)
    accepted: list[Operation] = []
    refused: list[NameBusy] = []

    def create() -> None:
        barrier.wait(WAIT)
        try:
            accepted.append(queue.submit("create", Job(lambda ctx: None), vm="same"))
        except NameBusy as exc:
            refused.append(exc)

    threads = [threading.Thread(target=create) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len(accepted) == 1 and len(refused) == 31
    assert {exc.operation_id for exc in refused} == {accepted[0].id}
    assert queue.holder("same") == accepted[0]


def test_reservations(queue: OperationQueue) -> None:
    with queue.reserve("x") as reservation:
        with pytest.raises(NameBusy) as busy:
            queue.submit("create", Job(lambda ctx: None), vm="x")
        assert busy.value.operation_id is None
        with pytest.raises(NameBusy):
            queue.reserve("x")
    with queue.reserve("x"):  # released by the with block
        pass
    gate = threading.Event()

    def waits(ctx: OperationContext) -> None:
        assert gate.wait(WAIT)

    with queue.reserve("x") as reservation:
        with pytest.raises(ValueError, match="does not hold"):
            queue.submit("create", Job(lambda ctx: None), vm="y", reservation=reservation)
        op = queue.submit("create", Job(waits), vm="x", reservation=reservation)
    assert queue.holder("x") == queue.get(op.id)  # leaving the block did not free the name
    reservation.release()
    with pytest.raises(NameBusy) as busy:
        queue.reserve("x")
    assert busy.value.operation_id == op.id
    gate.set()
    assert queue.wait(op.id, WAIT).state == "succeeded"
    queue.reserve("x").release()  # free once the operation finished


def test_history_is_bounded_and_forgetting_is_an_event(clock: FakeClock) -> None:
    queue = OperationQueue(clock.now, history=3)
    events: list[OperationEvent] = []
    queue.add_listener(events.append)
    queue.start()
    ops = [queue.submit("pull", Job(lambda ctx: None), image=IMAGE) for _ in range(5)]
    queue.wait(ops[-1].id, WAIT)  # FIFO on one image: the others have finished before it
    queue.close(WAIT)
    assert [op.id for op in queue.list_operations()] == [op.id for op in ops[2:]]
    with pytest.raises(errors.OperationMissing):
        queue.get(ops[0].id)
    forgotten = [event.operation.id for event in events if event.forgotten]
    assert forgotten == [ops[0].id, ops[1].id]


def test_every_change_is_an_event_in_order(queue: OperationQueue) -> None:
    events: list[OperationEvent] = []
    queue.add_listener(events.append)
    gate = threading.Event()

    def run(ctx: OperationContext) -> None:
        ctx.set_phase("pulling")
        ctx.set_progress(0)
        ctx.set_progress(0)  # no change, no event
        ctx.set_progress(57)
        ctx.set_progress(250)  # clamped
        ctx.set_phase("cloning")
        ctx.set_progress(None)
        ctx.note("cloned")
        assert gate.wait(WAIT)

    op = queue.submit("create", Job(run), vm="vm", image="ghcr.io/org/img:1")
    gate.set()
    queue.wait(op.id, WAIT)
    queue.close(WAIT)  # the worker has delivered every event
    seen = [(e.operation.state, e.operation.phase, e.operation.progress, e.operation.result)
            for e in events]
    assert seen == [
        ("queued", None, None, None), ("running", None, None, None),
        ("running", "pulling", None, None), ("running", "pulling", 0, None),
        ("running", "pulling", 57, None), ("running", "pulling", 100, None),
        ("running", "cloning", 100, None), ("running", "cloning", None, None),
        ("running", "cloning", None, "cloned"), ("succeeded", "cloning", None, "cloned"),
    ]
    assert all(e.operation.id == op.id and not e.forgotten for e in events)


def test_updates_after_the_end_are_dropped(queue: OperationQueue) -> None:
    contexts: list[OperationContext] = []
    op = queue.submit("pull", Job(contexts.append), image="img")
    done = queue.wait(op.id, WAIT)
    queue.close(WAIT)  # the worker has delivered every event
    events: list[OperationEvent] = []
    queue.add_listener(events.append)
    contexts[0].set_progress(99)  # e.g. a reader thread that lagged behind
    contexts[0].set_phase("late")
    assert queue.get(op.id) == done and events == []


def test_listeners_run_without_the_queue_locked(queue: OperationQueue) -> None:
    """A listener may call the queue back, from its own thread or another one."""
    answered: list[int] = []
    nested: list[Operation] = []
    submitted = threading.Event()

    def listener(event: OperationEvent) -> None:
        reader = threading.Thread(target=lambda: answered.append(len(queue.list_operations())))
        reader.start()
        reader.join(WAIT)
        assert not reader.is_alive(), "the listener was called with the queue locked"
        if event.operation.image == "first" and event.operation.state == "succeeded":
            nested.append(queue.submit("pull", Job(lambda ctx: None), image="second"))
            submitted.set()

    def broken(event: OperationEvent) -> None:
        raise RuntimeError("a broken listener")

    queue.add_listener(broken)
    queue.add_listener(listener)
    queue.submit("pull", Job(lambda ctx: None), image="first")
    assert submitted.wait(WAIT)  # listeners are called after the change, not within it
    assert queue.wait(nested[0].id, WAIT).state == "succeeded"
    queue.close(WAIT)  # the worker has delivered every event
    assert len(answered) == 6  # queued, running, succeeded of each: the broken one stopped none


def test_restored_operations(clock: FakeClock) -> None:
    old = [Operation(f"op{n}", "pull", "succeeded", "2024-12-31T00:00:00Z", seq=n,
                     image="img", finished_at="2024-12-31T00:01:00Z") for n in range(4)]
    queue = OperationQueue(clock.now, history=3, restored=reversed(old))
    events: list[OperationEvent] = []
    queue.add_listener(events.append)  # hears what the bound forgot of the restored ones
    assert [(e.operation.id, e.forgotten) for e in events] == [("op0", True)]
    assert queue.list_operations() == old[1:]
    new = queue.submit("pull", Job(lambda ctx: None), image="img")
    assert new.seq == 4
    running = Operation("r", "create", "running", "2024-12-31T00:00:00Z", seq=9)
    with pytest.raises(ValueError, match="cannot be restored"):
        OperationQueue(clock.now, restored=[running])


def test_close_takes_no_more_and_leaves_the_queued(clock: FakeClock) -> None:
    queue = OperationQueue(clock.now)
    queue.start()
    running, waiting = FakeWork("a"), FakeWork("b")
    first, second = submit(queue, running), submit(queue, waiting)
    assert running.started.wait(WAIT)
    closer = threading.Thread(target=queue.close, args=(WAIT,))
    closer.start()
    running.release.set()  # the running one finishes
    closer.join(WAIT)
    assert not closer.is_alive()
    assert queue.get(first.id).state == "succeeded"
    assert queue.get(second.id).state == "queued" and not waiting.started.is_set()
    with pytest.raises(errors.OperationsClosed):
        queue.submit("prune", Job(lambda ctx: None))


def test_operation_json() -> None:
    op = Operation("abc", "create", "failed", "t0", seq=1, vm="vm", image="img",
                   phase="cloning", progress=40, started_at="t1", finished_at="t2",
                   error=OperationError("tart-failed", "clone failed"), result="nothing kept")
    document = op.to_json()
    assert json.loads(json.dumps(document)) == document
    assert list(document) == ["id", "kind", "vm", "image", "state", "phase", "progress",
                              "cancel_requested", "created_at", "started_at", "finished_at",
                              "error", "result"]
    assert document["error"] == {"kind": "tart-failed", "detail": "clone failed",
                                 "tart_message": None, "exit_code": None}


def test_operation_ids_are_url_safe_distinct_and_never_read_as_an_option() -> None:
    ids = {new_operation_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{15}", op_id) for op_id in ids)


def test_forgetting_a_finished_operation_drops_it_with_an_event(queue: OperationQueue) -> None:
    events: list[OperationEvent] = []
    queue.add_listener(events.append)
    work = FakeWork("done")
    op = finish(queue, work, submit(queue, work))
    queue.forget(op.id)
    for call in (queue.get, queue.cancel, queue.forget):
        with pytest.raises(errors.OperationMissing):
            call(op.id)
    assert queue.list_operations() == []
    queue.close(WAIT)  # the worker has delivered every event
    assert [event.operation.id for event in events if event.forgotten] == [op.id]


def test_an_operation_forgotten_while_it_cleans_up_goes_when_it_ends(
        queue: OperationQueue) -> None:
    events: list[OperationEvent] = []
    queue.add_listener(events.append)
    release = threading.Event()
    started = threading.Event()

    def run(ctx: OperationContext) -> None:
        started.set()
        assert release.wait(WAIT)
        ctx.raise_if_cancelled()

    op = queue.submit("create", Job(run), vm="slow", image=IMAGE)
    waiting = queue.submit("create", Job(run), vm="queued", image=IMAGE)
    assert started.wait(WAIT)
    with pytest.raises(ValueError):  # a queued one is cancelled first
        queue.forget(waiting.id)
    queue.cancel(op.id)
    queue.forget(op.id)
    with pytest.raises(errors.OperationMissing):
        queue.get(op.id)
    assert [listed.id for listed in queue.list_operations()] == [waiting.id]
    assert queue.holder("slow") is not None  # still working: the name stays held
    assert not [event for event in events if event.forgotten]  # its record stays, for now
    release.set()
    queue.wait(waiting.id, WAIT)
    assert queue.holder("slow") is None
    queue.close(WAIT)  # the workers have delivered every event
    ends = [(event.operation.state, event.forgotten) for event in events
            if event.operation.id == op.id and event.operation.finished]
    assert ends == [("cancelled", False), ("cancelled", True)]  # its end, then it goes
    assert [listed.id for listed in queue.list_operations()] == [waiting.id]


def test_the_active_operations_read_after_a_change_show_it(queue: OperationQueue) -> None:
    """``active`` is made once per change and read without the lock: each change is seen by
    the next read (what every list and detail shows of the VMs being created)."""
    moved, go_on = threading.Event(), threading.Event()

    def run(ctx: OperationContext) -> None:
        ctx.set_progress(57)
        moved.set()
        assert go_on.wait(WAIT)

    assert queue.active() == ()
    op = queue.submit("create", Job(run), vm="vm", image=IMAGE)
    assert [o.id for o in queue.active()] == [op.id]
    assert moved.wait(WAIT)
    assert [(o.state, o.progress) for o in queue.active()] == [("running", 57)]
    waiting = queue.submit("create", Job(run), vm="other", image=IMAGE)
    assert [o.id for o in queue.active()] == [op.id, waiting.id]
    queue.cancel(waiting.id)
    assert [o.id for o in queue.active()] == [op.id]
    go_on.set()
    queue.wait(op.id, WAIT)
    assert queue.active() == ()
