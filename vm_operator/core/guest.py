"""Into the guest: run a command in a running VM (``tart exec``), for ``POST /vms/{name}/exec``.

The VM must be a local one that runs (the listing says so, within the cache's freshness; Tart
refuses a VM that stopped meanwhile, and that refusal answers the same). Tart's process runs
for the whole command, bounded by the caller's timeout, on whose expiry its process group is
killed. Every exec is an event, ``vm.exec``: the command's name (its first word only), who
asked, how long it took and how it ended; never its arguments, output or stdin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from vm_operator.core.errors import not_running
from vm_operator.core.event_catalogue import VM_EXEC
from vm_operator.core.events import EventBus
from vm_operator.core.inventory import Inventory
from vm_operator.core.ports import TartPort
from vm_operator.tart.errors import GuestTimeout, TartError
from vm_operator.tart.names import VmName
from vm_operator.tart.records import ExecResult


@dataclass(frozen=True)
class ExecRequest:
    """A command to run in the guest: its words (never a shell line), its stdin (None: none,
    and no ``-i``), the seconds it may take, and who asked (for the audit event)."""

    command: tuple[str, ...]
    stdin: str | None
    timeout: float
    client: str = ""


def outcome_of(error: BaseException | None) -> Literal["exited", "timeout", "refused"]:
    """How an exec ended, for its event: exited (any exit code), timeout, or refused."""
    if error is None:
        return "exited"
    return "timeout" if isinstance(error, GuestTimeout) else "refused"


class Guest:
    """Runs commands in running VMs and tells the bus about each."""

    def __init__(self, tart: TartPort, inventory: Inventory, events: EventBus,
                 monotonic: Callable[[], float]) -> None:
        self.tart, self.inventory, self.events, self.monotonic = tart, inventory, events, monotonic

    def exec(self, name: VmName, request: ExecRequest) -> ExecResult:
        vm = self.inventory.local_vm(name, "run a command in")
        if vm["state"] != "running":
            raise not_running(name, f"it is {vm['state']}; start it first")
        stdin = None if request.stdin is None else request.stdin.encode()
        started = self.monotonic()
        result: ExecResult | None = None
        error: BaseException | None = None
        try:
            result = self.tart.exec(name, request.command, stdin, request.timeout)
            return result
        except TartError as exc:
            error = exc
            raise
        finally:
            self.events.publish(VM_EXEC.about(name, {
                "command": request.command[0], "client": request.client,
                "duration_ms": round((self.monotonic() - started) * 1000),
                "exit_code": None if result is None else result.exit_code,
                "outcome": outcome_of(error)}))
