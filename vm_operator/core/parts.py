"""The parts the lifecycle jobs (create, delete, prune, ephemeral VMs, the reconciler's starts)
work with, handed down once by the service, and what they do alike with them: turn a failure
into the operation's error, remove a VM with its spec."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vm_operator.core.clock import Clock
from vm_operator.core.errors import OperatorError
from vm_operator.core.inventory import Inventory
from vm_operator.core.ownership import Ownership
from vm_operator.core.ports import StorePort, TartPort
from vm_operator.core.power import Power
from vm_operator.core.runs import RunSupervisor
from vm_operator.store.operation_records import OperationError, OperationFailed
from vm_operator.store.specs import SpecStore
from vm_operator.store.state import StateDirError
from vm_operator.tart.errors import TartCommandError, TartError, TartVmIsRunning, TartVmMissing
from vm_operator.tart.names import VmName

ErrorKind = Callable[[Exception], str]
"""The problem type (slug) of a failure: the edge's catalogue, handed down by the wiring."""

STOP_TIMEOUT = 10  # seconds Tart gives a VM to shut down when a create must stop it


@dataclass(frozen=True)
class Parts:
    """What the lifecycle jobs work with."""

    tart: TartPort
    inventory: Inventory
    power: Power
    runs: RunSupervisor
    store: StorePort
    specs: SpecStore
    clock: Clock
    kind_of: ErrorKind
    ownership: Ownership

    def failure(self, exc: OperatorError | TartError | StateDirError) -> OperationFailed:
        """A failure of the core or of Tart, as the operation's error (Tart's message kept)."""
        detail = exc.detail if isinstance(exc, OperatorError | TartError) else str(exc)
        message = exc.message if isinstance(exc, TartCommandError) else None
        code = exc.exit_code if isinstance(exc, TartCommandError) else None
        return OperationFailed(OperationError(self.kind_of(exc), detail, message, code))

    def remove_vm(self, name: VmName) -> None:
        """Delete the VM if it exists (stopping it first if it runs) and forget its spec."""
        try:
            try:
                self.tart.delete(name)
            except TartVmIsRunning:
                self.power.stop(name, STOP_TIMEOUT)
                self.tart.delete(name)
        except TartVmMissing:
            pass
        else:
            if self.power.states.known(name) is not None:  # told created: tell it went
                self.power.states.deleted(name, "api")
        finally:
            self.inventory.reconfigured(name)
        self.specs.delete(name)
