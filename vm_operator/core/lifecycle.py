"""Creating and removing VMs through the operations queue: the create request (reserve the
name, check Tart's fresh list, queue the job), the operations as the API sees them, the VMs
being created, and what a stop or a restart of the operator does to the operations that were
under way."""

from __future__ import annotations

import logging

from vm_operator.core.create import CreateJob, CreateRequest
from vm_operator.core.errors import (
    OperationFinished,
    OperationMissing,
    VmExists,
    VmHeldByOperation,
    vm_not_found,
)
from vm_operator.core.operations import Listener, NameBusy, OperationQueue
from vm_operator.core.parts import Parts
from vm_operator.core.ports import TartPort
from vm_operator.core.reservations import is_local_name
from vm_operator.core.vm_manage import name_held
from vm_operator.store.operation_records import Operation
from vm_operator.store.specs import SpecStore
from vm_operator.tart.errors import TartVmMissing
from vm_operator.tart.names import VmName

log = logging.getLogger(__name__)

# A create interrupted in these phases (or before its first) has made no VM worth keeping;
# one interrupted while starting made it whole.
UNFINISHED_PHASES = (None, "pulling", "cloning", "configuring")


def operation_path(op_id: str) -> str:
    return f"/operations/{op_id}"


class Lifecycle:
    """Create VMs, and the operations that do it, for the API."""

    def __init__(self, parts: Parts, queue: OperationQueue) -> None:
        self.parts = parts
        self.queue = queue

    # --- create -----------------------------------------------------------------------------

    def create(self, request: CreateRequest) -> Operation:
        """Queue the create of ``request.name``. The name is reserved first, then Tart's fresh
        list is checked, so that of two creates of one name one is refused (VmExists) and Tart
        is never asked to clone onto an existing VM (it would replace it)."""
        try:
            reservation = self.queue.reserve(request.name)
        except NameBusy as exc:
            raise self._held(request.name, exc.operation_id) from None
        with reservation:  # released unless submit took it over
            vms = {vm["name"]: vm for vm in self.parts.inventory.list_vms(fresh=True)}
            if request.name in vms:
                raise VmExists(f'a VM named "{request.name}" exists already')
            if is_local_name(request.source) and request.source not in vms:
                raise vm_not_found(request.source)
            job = CreateJob(self.parts, request).job()
            # an image not cached now is pulled first: the create counts as a download
            pulls = not is_local_name(request.source) and request.source not in vms
            try:
                return self.queue.submit("create", job, vm=request.name, image=request.source,
                                         reservation=reservation, pulls=pulls)
            except NameBusy as exc:  # the local VM it copies is being changed or deleted
                raise name_held(exc.name, exc.operation_id) from None

    def _held(self, name: str, op_id: str | None) -> VmExists | VmHeldByOperation:
        """Why a create cannot have the name: another create has it (or a request holds it
        while it checks or changes the VM: it exists, or is about to), or another operation."""
        if op_id is None:
            return VmExists(f'VM "{name}" exists or is being created (another request holds '
                            "its name)")
        try:
            holder = self.queue.get(op_id)
        except OperationMissing:  # finished and forgotten meanwhile
            holder = None
        if holder is not None and holder.kind == "create" and holder.vm != name:
            return VmExists(f'a VM named "{name}" exists already (operation {op_id} copies it)')
        if holder is None or holder.kind == "create":
            return VmExists(f'VM "{name}" is being created (operation {op_id})')
        return VmHeldByOperation(f'a {holder.kind} operation holds VM "{name}"',
                                 operation_path(op_id))

    def refuse_if_held(self, name: str) -> None:
        """A start, stop or suspend of a VM an operation works on is refused (409)."""
        holder = self.queue.holder(name)
        if holder is not None:
            raise VmHeldByOperation(
                f'VM "{name}" is held by a {holder.kind} operation ({holder.id}); wait for it '
                "or cancel it", operation_path(holder.id))

    def creating(self) -> dict[str, Operation]:
        """The VMs being created, by name: their queued or running create."""
        active = self.queue.active()
        if not active:  # what every read finds
            return {}
        return {op.vm: op for op in active if op.kind == "create" and op.vm}

    # --- operations -------------------------------------------------------------------------

    def operations(self) -> list[Operation]:
        return self.queue.list_operations()

    def operation(self, op_id: str) -> Operation:
        return self.queue.get(op_id)

    def cancel(self, op_id: str, wait: float = 0.0) -> Operation:
        """Cancel the operation; then wait up to ``wait`` seconds for it to end (a running one
        ends once Tart is killed and its cleanup has run)."""
        op = self.queue.cancel(op_id)
        return op if op.finished or wait <= 0 else self.queue.wait(op_id, wait)

    def delete(self, op_id: str, wait: float = 0.0) -> None:
        """Cancel the operation unless it has finished, wait up to ``wait`` seconds for it to
        end, then forget it: no longer listed or found, its record deleted (once it has ended:
        one still cleaning up keeps its VM name until then)."""
        if not self.queue.get(op_id).finished:
            try:
                self.queue.cancel(op_id)
            except OperationFinished:  # it ended meanwhile: forgotten all the same
                pass
            self.queue.wait(op_id, wait)
        self.queue.forget(op_id)


def remove_leftovers(tart: TartPort, specs: SpecStore, op: Operation) -> None:
    """``OperationStore.load``'s ``on_interrupted``: an operation the operator stopped in the
    middle of. A create that had begun and not got as far as its start step leaves no VM
    behind: the half-configured VM it made is deleted. Only that VM: the create wrote which VM
    its clone made (its spec's identity, ``CreateJob._configure``) before configuring it, and a
    VM that carries the name now and is not that one (the clone was cut short, and the name
    taken by hand while the operator was down) is left alone. Raising keeps the record as it
    was, to try again at the next start."""
    if op.kind != "create" or op.vm is None or op.started_at is None:
        return
    if op.phase not in UNFINISHED_PHASES:
        return
    name = VmName(op.vm)  # a record that names no valid VM: kept, logged
    spec = specs.load(name)
    made = spec.vm_id if spec is not None and spec.operation == op.id else None
    current = tart.vm_identity(name)
    if current is not None and (made is None or made != current):
        log.warning("operation %s: a restart interrupted the create of VM %r, and the VM that "
                    "carries that name now is not one this create can be shown to have made "
                    "(the operator made no VM before the restart, or another replaced it): "
                    "left alone", op.id, op.vm)
        if made is not None or (spec is not None and spec.operation == op.id):
            specs.delete(op.vm)  # this create's spec, and its VM is not there
        return
    if current is not None:
        try:
            tart.delete(name)
        except TartVmMissing:
            pass
        else:
            log.info("operation %s: deleted VM %r, whose create a restart interrupted",
                     op.id, op.vm)
    specs.delete(op.vm)  # the VM is gone, and so is what the operator remembered of it


def shut_down(queue: OperationQueue, recorder: Listener, grace: float) -> None:
    """The operator is stopping: take no more operations, and kill the running ones' Tart
    (a pull may take half an hour) WITHOUT recording their end, so that the restarted operator
    finds them running on disk, reports them "interrupted by a restart" and removes their
    leftovers. Queued ones stay queued on disk, and end the same way."""
    queue.close(timeout=0)
    queue.remove_listener(recorder)
    for op in queue.active():
        if op.state == "running":
            try:
                queue.cancel(op.id)
            except (OperationFinished, OperationMissing):
                pass
    queue.close(timeout=grace)
