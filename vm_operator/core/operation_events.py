"""The operations queue's changes as events: ``operation.queued``, ``.started``, ``.progress``
(at most one per whole percent or phase), ``.succeeded``, ``.failed``, ``.cancelled``.

Which event a change makes is a pure rule (``operation_event``); ``OperationEvents`` is the
queue's listener that applies it and publishes. The data is the operation exactly as
``GET /operations/{id}`` answers it: the core is given that rendering (``document``, the API's
``operation_document``: an error becomes a problem document only the edge can title).
"""

from __future__ import annotations

from collections.abc import Callable

from vm_operator.core.event_catalogue import (
    OPERATION_CANCELLED,
    OPERATION_FAILED,
    OPERATION_PROGRESS,
    OPERATION_QUEUED,
    OPERATION_STARTED,
    OPERATION_SUCCEEDED,
    EventType,
    Withheld,
)
from vm_operator.core.events import EventBus
from vm_operator.core.records import OperationDoc
from vm_operator.core.reservations import copied_vm
from vm_operator.store.operation_records import Operation, OperationEvent

# What the events of an operation last told of it: state, phase, progress, cancel asked for.
Told = tuple[str, str | None, int | None, bool]

ENDED: dict[str, EventType[OperationDoc]] = {
    "succeeded": OPERATION_SUCCEEDED, "failed": OPERATION_FAILED,
    "cancelled": OPERATION_CANCELLED}


# A create's failure as a caller that may not touch the VM it copies is told it.
SOURCE_WITHHELD = ("the create failed; why is not told to this token: Tart's words may name "
                   "the VM it copies, which the token may not touch")


def source_withheld(op: Operation, doc: OperationDoc) -> Withheld | None:
    """What of an operation's document names a VM other than its own: a create's local
    source (``image``), and its error, whose detail and Tart message may name that VM too. A
    token limited to VM patterns that may not touch the source (another's create copying a VM
    it does not see) is told ``image`` null and the error with neither: the operation is about
    the new VM, which it may touch, but its source is not the token's to see."""
    source = copied_vm(op.kind, op.image)
    if source is None:
        return None
    error = doc["error"]
    hidden = None if error is None else {
        **{key: value for key, value in error.items() if key != "tart_message"},
        "detail": SOURCE_WITHHELD}
    return Withheld(source, {"image": None, "error": hidden})


def told(op: Operation) -> Told:
    return (op.state, op.phase, op.progress, op.cancel_requested)


def operation_event(before: Told | None, op: Operation) -> EventType[OperationDoc] | None:
    """The event of the change to ``op``, after ``before`` was told of it (None: nothing yet);
    None when only what no event tells changed (its result note: the next event carries it)."""
    if op.finished:
        return ENDED[op.state]
    if op.state == "queued":
        return OPERATION_QUEUED
    if before is None or before[0] != "running":
        return OPERATION_STARTED
    if before != told(op):  # a new phase, a new whole percent, or a cancel asked for
        return OPERATION_PROGRESS
    return None


class OperationEvents:
    """The operations queue's listener: publishes each change of an operation as its event.
    The queue delivers its changes one at a time, in order."""

    def __init__(self, bus: EventBus, document: Callable[[Operation], OperationDoc]) -> None:
        self.bus = bus
        self.document = document
        self._told: dict[str, Told] = {}

    def __call__(self, change: OperationEvent) -> None:
        op = change.operation
        if change.forgotten:
            self._told.pop(op.id, None)
            return
        kind = operation_event(self._told.get(op.id), op)
        if kind is None:
            return
        if op.finished:
            self._told.pop(op.id, None)
        else:
            self._told[op.id] = told(op)
        doc = self.document(op)
        self.bus.publish(kind.about(op.vm, doc, withheld=source_withheld(op, doc)))
