"""Ephemeral VMs: created with ``"ephemeral": true``, deleted once their run ends.

The run supervisor tells when a run of a VM has ended (its reaper, for runs launched by this
operator and runs adopted from an earlier one: a restarted operator adopts the runs it did not
see end, and learns at once of those that ended while it was down). A VM whose spec says
ephemeral is then deleted through a ``delete`` operation, once it is stopped: a suspended VM
is kept until the run that resumes it ends. At start-up every ephemeral VM whose last run
(begun after the VM was created) has ended is deleted the same way, so a delete that a restart
interrupted is done again.
"""

from __future__ import annotations

import logging
import threading

from vm_operator.core.errors import OperationsClosed, OperationsFull, OperatorError, VmNotFound
from vm_operator.core.operations import Job, NameBusy, OperationContext, OperationQueue
from vm_operator.core.parts import Parts
from vm_operator.store.operation_records import OperationError, OperationEvent, OperationFailed
from vm_operator.store.state import StateDirError
from vm_operator.tart.errors import TartError, TartVmMissing
from vm_operator.tart.names import InvalidName, VmName

log = logging.getLogger(__name__)


class EphemeralVms:
    """Deletes ephemeral VMs whose run has ended. ``run_ended`` is the run supervisor's
    listener, ``operation_changed`` the queue's (a delete that had to wait for the VM's name)."""

    def __init__(self, parts: Parts, queue: OperationQueue) -> None:
        self.parts = parts
        self.queue = queue
        self._guard = threading.Lock()
        self._waiting: set[str] = set()  # the name was held, or the queue full: try again

    def run_ended(self, name: str) -> None:
        self.consider(name)

    def operation_changed(self, event: OperationEvent) -> None:
        op = event.operation
        if not op.finished or event.forgotten:
            return
        with self._guard:
            retry = sorted(self._waiting)
            self._waiting.clear()
        for name in retry:
            self.consider(name)

    def sweep(self) -> int:
        """At start-up: consider every ephemeral VM; how many deletes were submitted."""
        try:
            specs = self.parts.specs.all()
        except StateDirError as exc:
            log.warning("ephemeral VMs cannot be checked: %s", exc)
            return 0
        return sum(self.consider(spec.name) for spec in specs if spec.ephemeral)

    def due(self, name: str) -> bool:
        """Whether ``name`` is an ephemeral VM whose run, begun after its creation, ended."""
        spec = self.parts.specs.load(name)
        if spec is None or not spec.ephemeral:
            return False
        try:
            record = self.parts.store.read_last_run(name)
        except StateDirError:
            return False
        if record is None or record["finished_at"] is None:
            return False
        if spec.created_at is not None and record["started_at"] < spec.created_at:
            # a run of an earlier VM of that name
            return False
        return self.parts.runs.live_run(name) is None

    def consider(self, name: str) -> bool:
        """Submit the delete of ``name`` if it is due; whether it was submitted."""
        if not self.due(name):
            return False
        job = Job(lambda ctx: self._delete(ctx, name))
        try:
            self.queue.submit("delete", job, vm=name)
        except (NameBusy, OperationsFull):
            with self._guard:
                self._waiting.add(name)
            return False
        except OperationsClosed:  # the next start sweeps it
            return False
        log.info("ephemeral VM %r: its run ended, deleting it", name)
        return True

    def _delete(self, ctx: OperationContext, name: str) -> None:
        parts = self.parts
        ctx.set_phase("deleting")
        try:
            with parts.power.exclusive(name):
                try:
                    vm = parts.inventory.find(name, fresh=True)
                except VmNotFound:
                    ctx.note("the VM was gone already")
                    parts.specs.delete(name)
                    return
                if vm["state"] != "stopped":
                    ctx.note(f"kept: it is {vm['state']}; it goes when that run ends")
                    return
                if parts.ownership.owned(VmName(name))[0] is None:  # core/ownership.py
                    ctx.note("kept: the VM that carries the name is not the ephemeral VM that "
                             "ran (that one was deleted, and this one made outside the operator)")
                    return
                try:
                    parts.tart.delete(VmName(name))
                except TartVmMissing:
                    pass
                else:
                    parts.power.states.deleted(name, "ephemeral")
                finally:
                    parts.inventory.reconfigured(name)
            parts.specs.delete(name)
        except (OperatorError, TartError, StateDirError) as exc:
            raise parts.failure(exc) from None
        except InvalidName as exc:  # a spec written by hand: not a name Tart may be given
            raise OperationFailed(OperationError("invalid-name", str(exc))) from None
