"""Creating and removing VMs through the operations queue, and what a stop or a restart of
the operator does to the operations that were under way."""

from __future__ import annotations

import logging

from vm_operator.core.operation_records import AlreadyFinished, Operation, OperationNotFound
from vm_operator.core.operations import Listener, OperationQueue
from vm_operator.core.ports import TartPort
from vm_operator.tart.errors import TartVmMissing

log = logging.getLogger(__name__)

# A create interrupted in these phases (or before its first) has made no VM worth keeping;
# one interrupted while starting made it whole.
UNFINISHED_PHASES = (None, "pulling", "cloning", "configuring")


def remove_leftovers(tart: TartPort, op: Operation) -> None:
    """``OperationStore.load``'s ``on_interrupted``: an operation the operator stopped in the
    middle of. A create that had begun and not got as far as its start step leaves no VM
    behind: Tart's clone only moves a VM into place whole, so what exists under the name is
    the half-configured VM it made. Raising keeps the record as it was, to try again at the
    next start."""
    if op.kind != "create" or op.vm is None or op.started_at is None:
        return
    if op.phase not in UNFINISHED_PHASES:
        return
    try:
        tart.delete(op.vm)
    except TartVmMissing:
        return
    log.info("operation %s: deleted VM %r, whose create a restart interrupted", op.id, op.vm)


def shut_down(queue: OperationQueue, recorder: Listener, grace: float) -> None:
    """The operator is stopping: take no more operations, and kill the running one's Tart
    (a pull may take half an hour) WITHOUT recording its end, so that the restarted operator
    finds it running on disk, reports it "interrupted by a restart" and removes its
    leftovers. Queued ones stay queued on disk, and end the same way."""
    queue.close(timeout=0)
    queue.remove_listener(recorder)
    for op in queue.active():
        if op.state == "running":
            try:
                queue.cancel(op.id)
            except (AlreadyFinished, OperationNotFound):
                pass
    queue.close(timeout=grace)
