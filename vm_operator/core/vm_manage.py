"""Delete a VM, and change its resources: the two changes to a local VM made while it is stopped.

Both hold the VM's name in the operations queue while they work (a create or a delete of the
same name is refused meanwhile, and they refuse a name an operation holds), and the VM's write
lock (``Power.exclusive``), so that a start, a stop or a suspend of the VM waits for them.

A change of resources is applied whole or not at all. Tart checks the minimums before it saves
anything, but saves the other settings BEFORE it refuses a disk that would shrink; so a patch
that shrinks the disk is sent to Tart as the disk change alone, which Tart refuses, with its
own message, having changed nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from vm_operator.core.errors import (
    OciImage,
    VmHeldByOperation,
    VmNotFound,
    VmRunning,
    state_dir_unwritable,
    vm_not_found,
)
from vm_operator.core.fleet import Resources
from vm_operator.core.operations import NameBusy, OperationQueue
from vm_operator.core.parts import Parts
from vm_operator.core.records import VmDetail
from vm_operator.store.state import StateDirError
from vm_operator.tart.errors import TartError, TartVmIsRunning, TartVmMissing
from vm_operator.tart.names import VmName
from vm_operator.tart.records import Vm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VmPatch(Resources):
    """What a PATCH asks of ``tart set``: the fields given, None (False) for the others."""

    random_mac: bool = False

    @property
    def empty(self) -> bool:
        return self == VmPatch()


def tart_change(patch: VmPatch, disk_gb: int) -> VmPatch:
    """What to hand ``tart set`` for ``patch`` on a VM whose disk has ``disk_gb``: the patch, or
    only its disk size when that would shrink (Tart refuses it then, changing nothing)."""
    if patch.disk_gb is not None and patch.disk_gb < disk_gb:
        return VmPatch(disk_gb=patch.disk_gb)
    return patch


def name_held(name: str, operation_id: str | None) -> VmHeldByOperation:
    if operation_id is None:
        return VmHeldByOperation(f'VM "{name}" is being changed by another request; retry when '
                                 "it has finished", None)
    path = f"/operations/{operation_id}"
    return VmHeldByOperation(f'VM "{name}" is held by the operation {path}; retry when it has '
                             "finished, or cancel it (POST " + path + "/cancel)", path)


class VmManager:
    """Delete and reconfigure local VMs."""

    def __init__(self, parts: Parts, queue: OperationQueue) -> None:
        self.parts = parts
        self.tart = parts.tart
        self.inventory = parts.inventory
        self.power = parts.power
        self.queue = queue

    @contextmanager
    def _hold(self, name: VmName) -> Iterator[None]:
        """The VM's name (refused while an operation or another change holds it), then its
        write lock."""
        try:
            reservation = self.queue.reserve(name)
        except NameBusy as exc:
            raise name_held(name, exc.operation_id) from None
        with reservation, self.power.exclusive(name):
            yield

    def _local_vm(self, name: VmName, hint: str) -> Vm:
        vm = self.inventory.find(name, fresh=True)
        if vm["source"] != "local":
            raise OciImage(f'"{name}" is an OCI image in Tart\'s cache, not a VM: {hint}')
        return vm

    # --- delete -------------------------------------------------------------------------------

    def delete(self, name: VmName, force: bool = False, timeout: int = 30,
               cause: str = "api", guard: Callable[[], str | None] | None = None) -> str | None:
        """``tart delete NAME``. A running or suspended VM is refused, unless ``force``: then it
        is stopped first (``tart stop --timeout T``; a suspended VM's saved state is dropped).
        ``cause``: who asked, as ``vm.state`` and ``vm.deleted`` tell it. A VM Tart no longer
        lists whose spec (or run records) the operator still keeps: those are dropped, and
        that is the delete (VmNotFound when nothing was kept). ``guard``, asked while the VM is
        held, just before anything is done to it: None to go on, else why not, and then
        nothing is done and that reason is returned (None: deleted)."""
        with self._hold(name):
            try:
                vm = self._local_vm(name, f"delete it with DELETE /images/{quote(name, safe='')}")
            except VmNotFound:
                try:
                    if self.parts.ownership.drop(name):
                        return None
                except StateDirError as exc:
                    raise state_dir_unwritable(exc) from None
                raise
            reason = None if guard is None else guard()
            if reason is not None:
                return reason
            if vm["state"] != "stopped":
                if not force:
                    raise VmRunning(
                        f'VM "{name}" is {vm["state"]}: stop it first (POST /vms/{name}/stop), '
                        "or delete it with ?force=true, which stops it")
                self.power.stop_held(name, timeout, cause)
            try:
                self.tart.delete(name)
            except TartVmMissing:
                raise vm_not_found(name) from None
            except TartVmIsRunning as exc:
                raise VmRunning(f'VM "{name}" was started again meanwhile, so Tart did not '
                                f"delete it ({exc.message})") from None
            finally:
                self.inventory.reconfigured(name)
            self.power.states.deleted(name, cause)
            self._forget(name)
            return None

    def _forget(self, name: VmName) -> None:
        """The VM is gone: so are its run records and logs, its spec (a VM created again under
        its name is another VM) and its cached ``tart get``."""
        self.inventory.forget(name)
        try:
            self.parts.store.forget(name)
            self.parts.specs.delete(name)
        except StateDirError as exc:  # the VM is deleted all the same: say so in the log
            log.warning("%s", state_dir_unwritable(exc).detail)
        try:
            self.tart.forget_log(name)  # over SSH its run logs are on the host
        except TartError as exc:
            log.warning("VM %r: its run logs where Tart runs could not be removed: %s", name, exc)

    # --- change resources -----------------------------------------------------------------

    def patch(self, name: VmName, patch: VmPatch) -> VmDetail:
        """``tart set`` with the fields of ``patch``, on a stopped VM (Tart would take a change
        of a running VM and apply it, silently, at its next start); the VM's new detail."""
        with self._hold(name):
            vm = self._local_vm(name, "clone it to a local VM first (POST /vms), and change that")
            if vm["state"] != "stopped":
                raise VmRunning(
                    f'VM "{name}" is {vm["state"]}: stop it first (POST /vms/{name}/stop); Tart '
                    "would take the change but apply it only at the next start")
            change = tart_change(patch, vm["disk_gb"])
            if change.empty:  # e.g. {"random_mac": false}: nothing to ask Tart
                return self.inventory.describe(name)
            try:
                self.tart.set(name, cpu=change.cpu, memory_mb=change.memory_mb,
                              disk_gb=change.disk_gb, display=change.display,
                              random_mac=change.random_mac)
            finally:
                self.inventory.reconfigured(name)
        return self.inventory.describe(name)

