"""The queue that runs long-running operations (create, delete, pull, prune).

Operations run side by side where Tart allows, each on a thread of its own: which waiting ones
may start is the pure rule of ``scheduling.startable`` (one operation per VM name and per image,
a prune apart from the operations that use images, at most ``MAX_PULLS`` downloads and
``MAX_RUNNING`` operations at once, first come first served among those that conflict). The
others wait (``queued``), and past a bound a new one is refused at once (``OperationsFull``,
with a retry-after hint).

An operation is a ``Job``: ``run(ctx)`` does the work and reports through its ``OperationContext``
(phase, progress, a result note, the hook that kills Tart on cancellation); ``cleanup(ctx,
ending)`` runs after ``run`` when the operation failed or was cancelled, before the operation is
marked finished, so a cancelled create has removed what it made by the time it says
``cancelled``. ``run`` fails by raising ``OperationFailed`` with a typed ``OperationError``.

Every change gives listeners an ``OperationEvent`` (the new immutable ``Operation`` snapshot), in
the order the changes happened, and never while a lock of the queue is held: a listener may call
the queue back.

VM names: an operation on a VM holds its name from ``submit`` until it has finished, and
``reserve`` holds one for work done outside the queue, so two creates of one name cannot both be
accepted. The caller reserves, THEN checks that the VM does not exist, then hands the reservation
to ``submit``: that way no create of the name can finish between the check and the submit
(and a create holds the local VM it copies: ``reservations``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace

from vm_operator.core.errors import (
    OperationFinished,
    OperationMissing,
    OperationsClosed,
    OperationsFull,
)
from vm_operator.core.jobs import CancelHook, Entry, Job, OperationContext, attempt, call_hook
from vm_operator.core.reservations import NameBusy, Reservation, copied_vm, refuse_if_held
from vm_operator.core.scheduling import MAX_PULLS, MAX_RUNNING, QueueStats, claim_of, startable
from vm_operator.store.operation_records import Ending, Operation, OperationEvent, new_operation_id
from vm_operator.vocabulary import OperationKind, OperationState

__all__ = ["CancelHook", "Job", "Listener", "NameBusy", "OperationContext", "OperationQueue",
           "QueueStats", "Reservation"]

log = logging.getLogger(__name__)

Listener = Callable[[OperationEvent], None]


class OperationQueue:
    """Side by side where nothing conflicts (``scheduling.startable``, at most ``max_running``
    at once, ``max_pulls`` of them downloading), FIFO among conflicting ones, at most
    ``max_queued`` waiting, the last ``history`` finished ones kept (plus all queued and
    running ones). ``start()`` it.

    ``now`` gives the timestamps (ISO 8601 strings); ``restored`` are finished operations from
    the store (those past the history bound are forgotten at once, with events).
    """

    def __init__(self, now: Callable[[], str], *, max_queued: int = 16, history: int = 200,
                 retry_after: int = 30, new_id: Callable[[], str] = new_operation_id,
                 restored: Iterable[Operation] = (), max_running: int = MAX_RUNNING,
                 max_pulls: int = MAX_PULLS) -> None:
        if min(max_queued, retry_after, max_running, max_pulls) < 1 or history < 0:
            raise ValueError("max_queued, retry_after, max_running and max_pulls must be "
                             "positive, history not negative")
        self._max_running = max_running
        self._max_pulls = max_pulls
        self._now = now
        self._new_id = new_id
        self._max_queued = max_queued
        self._history = history
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # an operation was queued or finished
        self._entries: dict[str, Entry] = {}
        self._queued: deque[Entry] = deque()
        self._running: dict[str, Entry] = {}  # by id, in the order they started
        self._finished: deque[str] = deque()  # ids, oldest first
        self._names: dict[str, str | Reservation] = {}  # VM name -> operation id or reservation
        self._listeners: list[Listener] = []
        self._pending: deque[OperationEvent] = deque()  # events not yet delivered, in order
        self._delivering = False
        self._closed = False
        self._started = False
        self._threads: set[threading.Thread] = set()  # one per running operation, until it ends
        self._seq = 0
        self._active: tuple[Operation, ...] | None = ()  # active's answer; None: make it anew
        for op in sorted(restored, key=lambda op: op.seq):
            if not op.finished or op.id in self._entries:
                raise ValueError(f"operation {op.id} cannot be restored: {op.state} or a duplicate")
            self._entries[op.id] = Entry(op, None)
            self._seq = max(self._seq, op.seq + 1)
            self._finished.append(op.id)
        self._forget_overflow()

    # -- submitting and cancelling --------------------------------------------------------

    def reserve(self, name: str) -> Reservation:
        """Hold a VM name, or raise NameBusy if an operation or reservation holds it."""
        with self._lock:
            self._refuse_if_held(name)
            reservation = Reservation(self, name)
            self._names[name] = reservation
            return reservation

    def submit(self, kind: OperationKind, job: Job, *, vm: str | None = None,
               image: str | None = None, reservation: Reservation | None = None,
               pulls: bool = False) -> Operation:
        """Queue an operation; it holds ``vm`` until it has finished (taking over
        ``reservation``, which must hold ``vm``); ``image``: the image (or local VM) it works
        on; ``pulls``: it may download an image. Raises NameBusy, OperationsFull,
        OperationsClosed."""
        with self._lock:
            if self._closed:
                raise OperationsClosed("the operator is shutting down")
            if reservation is not None:
                if vm != reservation.name or self._names.get(vm) is not reservation:
                    raise ValueError(f"the reservation does not hold the VM name {vm!r}")
            elif vm is not None:
                self._refuse_if_held(vm)
            self._refuse_if_held(copied_vm(kind, image), copies=False)  # a VM it would copy
            if len(self._queued) >= self._max_queued:
                raise OperationsFull(self._max_queued, self._retry_after)
            op_id = self._new_id()
            while op_id in self._entries:
                op_id = self._new_id()
            entry = Entry(Operation(op_id, kind, "queued", self._now(), self._seq, vm=vm,
                                     image=image), job, claim_of(kind, vm, image, pulls))
            self._seq += 1
            self._entries[op_id] = entry
            self._queued.append(entry)
            self._active = None
            if vm is not None:
                self._names[vm] = op_id
            self._pending.append(OperationEvent(entry.op))
            self._changed.notify_all()
            snapshot = entry.op
            self._schedule()
        self._deliver()
        return snapshot

    def cancel(self, op_id: str) -> Operation:
        """A queued operation is cancelled at once. A running one gets its cancel token set and
        its cancel hook called; it ends ``cancelled`` once its cleanup has run. A repeated
        cancel returns at once. Raises OperationMissing, OperationFinished."""
        with self._lock:
            entry = self._entries.get(op_id)
            if entry is None or entry.forgotten:
                raise OperationMissing(op_id)
            if entry.op.finished or entry.ended:
                raise OperationFinished(op_id, entry.op.state)
            running = entry.op.state == "running"
            first = not entry.token.is_set()
            if running and first:
                entry.token.set()
                self._set(entry, replace(entry.op, cancel_requested=True))
            elif not running:
                self._queued.remove(entry)
                self._retire(entry, replace(entry.op, state="cancelled", cancel_requested=True,
                                            finished_at=self._now()))
                self._schedule()  # a later one it held back may go now
            snapshot = entry.op
        self._deliver()
        if running and first:
            with entry.hook_lock:
                hook, entry.hook = entry.hook, None
                if hook is not None:
                    call_hook(entry, hook)
        return snapshot

    def forget(self, op_id: str) -> None:
        """Forget an operation that is no longer queued: from now on ``get``, ``list_operations``
        and ``cancel`` know it no more. A finished one goes at once (a forgotten event: the
        store deletes its record); a running one (a cancelled one still cleaning up) keeps its
        VM name and its record until it ends, then goes the same way. Raises
        OperationMissing, and ValueError for a queued one (cancel it first)."""
        with self._lock:
            entry = self._entries.get(op_id)
            if entry is None or entry.forgotten:
                raise OperationMissing(op_id)
            if entry.op.state == "queued":
                raise ValueError(f"operation {op_id} is queued: cancel it before forgetting it")
            entry.forgotten = True
            if entry.op.finished:
                self._finished.remove(op_id)
                self._drop(entry)
        self._deliver()

    # -- reading ----------------------------------------------------------------------------

    def get(self, op_id: str) -> Operation:
        with self._lock:
            entry = self._entries.get(op_id)
            if entry is None or entry.forgotten:
                raise OperationMissing(op_id)
            return entry.op

    def list_operations(self) -> list[Operation]:
        """Running, queued and the kept finished ones, in the order they were submitted."""
        with self._lock:
            return sorted((entry.op for entry in self._entries.values() if not entry.forgotten),
                          key=lambda op: op.seq)

    def active(self) -> tuple[Operation, ...]:
        """The running operations in the order they started, then the queued ones in the
        order they arrived: made once per change (``_set``, ``submit``; every list and detail
        asks what is being created) and read without the lock."""
        active = self._active
        if active is None:
            with self._lock:
                active = self._active = (*(entry.op for entry in self._running.values()),
                                         *(entry.op for entry in self._queued))
        return active

    def holder(self, name: str) -> Operation | None:
        """The queued or running operation that holds this VM name."""
        with self._lock:
            holder = self._names.get(name)
            return self._entries[holder].op if isinstance(holder, str) else None

    def stats(self) -> QueueStats:
        with self._lock:
            return QueueStats(len(self._running), len(self._queued), self._max_queued)

    def wait(self, op_id: str, timeout: float | None = None) -> Operation:
        """The operation once finished, or as it is when ``timeout`` seconds have passed."""
        with self._changed:
            entry = self._entries.get(op_id)
            if entry is None:
                raise OperationMissing(op_id)
            self._changed.wait_for(lambda: entry.op.finished, timeout)
            return entry.op

    def add_listener(self, listener: Listener) -> None:
        """Called with every event from now on (and those not delivered yet), never while a lock
        of the queue is held, in the order of the changes, from the thread that made the change
        (or one delivering earlier events); an exception it raises is logged and dropped."""
        with self._lock:
            self._listeners.append(listener)
        self._deliver()

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    # -- the threads -----------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._started = True
            self._schedule()
        self._deliver()

    def close(self, timeout: float | None = None) -> None:
        """Take no more operations and start no more; the running ones finish and deliver their
        events (waited for up to ``timeout`` seconds), queued ones stay queued (the store turns them into "interrupted
        by a restart" at the next start)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            self._changed.wait_for(lambda: not self._threads, timeout)

    def _schedule(self) -> None:
        """Start what the rule lets start now, each on a thread of its own (the caller holds
        the lock and delivers the events after)."""
        if not self._started or self._closed or not self._queued:
            return
        waiting = list(self._queued)
        chosen = startable([entry.claim for entry in self._running.values()],
                           [entry.claim for entry in waiting],
                           max_running=self._max_running, max_pulls=self._max_pulls)
        for index in chosen:
            entry = waiting[index]
            self._queued.remove(entry)
            self._running[entry.op.id] = entry
            self._set(entry, replace(entry.op, state="running", started_at=self._now()))
            thread = threading.Thread(target=self._run, args=(entry,),
                                      name=f"operation-{entry.op.id}", daemon=True)
            self._threads.add(thread)
            thread.start()

    def _run(self, entry: Entry) -> None:
        try:
            self._deliver()  # its running event (and any before it)
            self._execute(entry)
        finally:
            with self._changed:
                self._threads.discard(threading.current_thread())
                self._changed.notify_all()

    def _execute(self, entry: Entry) -> None:
        job = entry.job
        assert job is not None
        ctx = OperationContext(self, entry)
        error = attempt(entry, lambda: job.run(ctx))
        with entry.hook_lock, self._lock:
            entry.hook = None  # the job's processes are gone: never kill by a stale hook
            entry.ended = True  # from now on: no cancel, no new hook
            ending: Ending | None = ("cancelled" if entry.token.is_set()
                                     else "failed" if error is not None else None)
        cleanup_error = None
        if ending is not None and job.cleanup is not None:
            cleanup = job.cleanup
            cleanup_error = attempt(entry, lambda: cleanup(ctx, ending))
        with self._lock:
            op = entry.op
            result = op.result
            if cleanup_error is not None:
                failure = f"cleanup failed: {cleanup_error.detail}"
                result = failure if result is None else f"{result}; {failure}"
            state: OperationState = "succeeded" if ending is None else ending
            del self._running[op.id]
            self._retire(entry, replace(op, state=state, finished_at=self._now(), result=result,
                                        error=error if state == "failed" else None))
            self._schedule()
        self._deliver()

    # -- bookkeeping (the caller holds self._lock, except in _modify and _deliver) ---------

    def _modify(self, entry: Entry, change: Callable[[Operation], Operation]) -> None:
        """A job's update: applied while its operation runs, dropped after."""
        with self._lock:
            if entry.op.state != "running":
                return
            new = change(entry.op)
            if new == entry.op:
                return
            self._set(entry, new)
        self._deliver()

    def _set(self, entry: Entry, op: Operation) -> None:
        entry.op = op
        self._active = None
        self._pending.append(OperationEvent(op))

    def _retire(self, entry: Entry, op: Operation) -> None:
        """``op`` is the finished snapshot: release its name, keep it in the history."""
        self._set(entry, op)
        if op.vm is not None and self._names.get(op.vm) == op.id:
            del self._names[op.vm]
        if entry.forgotten:  # deleted while it ran: it goes now that it has ended
            self._drop(entry)
        else:
            self._finished.append(op.id)
            self._forget_overflow()
        self._changed.notify_all()

    def _forget_overflow(self) -> None:
        while len(self._finished) > self._history:
            self._drop(self._entries[self._finished.popleft()])

    def _drop(self, entry: Entry) -> None:
        """A finished operation leaves: its forgotten event tells the store and the listeners."""
        del self._entries[entry.op.id]
        self._pending.append(OperationEvent(entry.op, forgotten=True))

    def _refuse_if_held(self, name: str | None, copies: bool = True) -> None:
        active = (entry.op for entry in (*self._running.values(), *self._queued))
        refuse_if_held(name, self._names, active if copies else ())

    def _release(self, reservation: Reservation) -> None:
        with self._lock:
            if self._names.get(reservation.name) is reservation:
                del self._names[reservation.name]

    def _deliver(self) -> None:
        """Hand the pending events to the listeners, in order, without holding the lock. One
        thread delivers at a time; others leave their events to it."""
        with self._lock:
            if self._delivering:
                return
            self._delivering = True
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        self._delivering = False  # in the same hold as the check: none stranded
                        return
                    event = self._pending.popleft()
                    listeners = list(self._listeners)
                for listener in listeners:
                    try:
                        listener(event)
                    except Exception:  # one listener must not stop the others
                        log.exception("operation %s: a listener failed", event.operation.id)
        except BaseException:
            with self._lock:
                self._delivering = False
            raise
