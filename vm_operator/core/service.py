"""The VM operations behind the API, in one facade: what the handlers call.

It only composes the parts of the core: ``Inventory`` (cached reads), ``RunSupervisor``
(the ``tart run`` processes), ``Power`` (start, stop, suspend), the queue of long-running
operations (``operations``) and the bus of events (``events``: every part publishes there).
It is given its Tart adapter, state store, clock and operations queue, and builds none of
them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from vm_operator.core.cache import Derived
from vm_operator.core.clock import Clock
from vm_operator.core.create import CreateRequest
from vm_operator.core.ephemeral import EphemeralVms
from vm_operator.core.events import EventBus
from vm_operator.core.exec_session import ExecSession, SessionRequest, open_session
from vm_operator.core.guest import ExecRequest, Guest
from vm_operator.core.host import Host
from vm_operator.core.images import Images
from vm_operator.core.inventory import Inventory
from vm_operator.core.lifecycle import Lifecycle, operation_path
from vm_operator.core.operations import OperationQueue
from vm_operator.core.ownership import Ownership
from vm_operator.core.parts import ErrorKind, Parts
from vm_operator.core.ports import StorePort, TartPort
from vm_operator.core.power import Power
from vm_operator.core.readiness import Readiness, ReadinessProbe
from vm_operator.core.reconciler import Reconciler, Report
from vm_operator.core.records import (
    NO_INFO,
    ChangedVm,
    CreatingManagedVmDetail,
    CreatingVm,
    DesiredStatus,
    ManagedVmDetail,
    ReadyVmDetail,
    StartedReadyVm,
    TartStatus,
    VmDetail,
)
from vm_operator.core.runs import RunSupervisor
from vm_operator.core.tunnels import Tunnels
from vm_operator.core.vm_manage import VmManager, VmPatch
from vm_operator.core.watch import EXISTS, ListingPoller, VmStates
from vm_operator.settings.table import Settings
from vm_operator.store.operation_records import Operation
from vm_operator.store.specs import SpecSource, SpecStore, VmSpec
from vm_operator.store.state import LogTail, StateDirError
from vm_operator.tart.errors import TartError
from vm_operator.tart.names import InvalidName, VmName
from vm_operator.tart.records import ExecResult, Vm
from vm_operator.vocabulary import Desired, RestartPolicy

log = logging.getLogger(__name__)

DEFAULTS = Settings()  # each setting's declared default (settings/table.py)


class VmService:
    """List, inspect, start, stop and suspend VMs."""

    def __init__(self, tart: TartPort, store: StorePort, clock: Clock,
                 operations: OperationQueue, specs: SpecStore, kind_of: ErrorKind,
                 settings: Settings = DEFAULTS, events: EventBus | None = None,
                 on_reconcile: Callable[[str], None] = lambda action: None,
                 report: Report = lambda record: None) -> None:
        self.tart = tart
        self.clock = clock
        self.events = events or EventBus(clock.utc_now)  # what changed, for GET /events
        self.states = VmStates(self.events, clock.monotonic)
        self.store = store
        self.operations = operations
        self.inventory = Inventory(tart, store, clock, settings.cache_ttl,
                                   settings.config_ttl)
        self.runs = RunSupervisor(tart, store, clock, self.inventory, settings.start_timeout,
                                  settings.poll_interval)
        self.power = Power(tart, self.inventory, self.runs, settings.max_running, self.states)
        self.poller = ListingPoller(self.states, self.inventory.list_stamped, self.held,
                                    settings.watch_interval)
        self.runs.on_run_ended(self.run_ended)  # before the ephemeral delete: exited, deleted
        self.ownership = Ownership(tart, self.inventory, specs, store)
        parts = Parts(tart, self.inventory, self.power, self.runs, store, specs, clock, kind_of,
                      self.ownership)
        self.lifecycle = Lifecycle(parts, operations)
        self.ephemeral = EphemeralVms(parts, operations)
        self.manage = VmManager(parts, operations)
        self.images = Images(parts, operations)
        self.host = Host(parts, operations, settings.max_running)
        self.specs = specs
        self.guest = Guest(tart, self.inventory, self.events, clock.monotonic)
        self.reconciler = Reconciler(parts, operations, self.events,
                                     settings.reconcile_interval, on_reconcile, report)
        self.runs.on_run_ended(self.ephemeral.run_ended)
        self.runs.on_run_ended(self.reconciler.run_ended)
        self.ownership.on_release(self.reconciler.forget)
        self.readiness = ReadinessProbe(tart, clock, self.events, settings.ready_port,
                                        ttl=settings.cache_ttl)
        self.runs.on_run_ended(self.readiness.forget)
        self.tunnels = Tunnels(lambda name: self.inventory.ip(name, 0), tart.connect,
                               self.events, clock.monotonic)
        self.poller.on_listing = self._look_at_readiness
        self.inventory.on_fetched = self.poller.fetched
        self._details: Derived[ManagedVmDetail] = Derived()  # describe's, by VM
        operations.add_listener(self.ephemeral.operation_changed)
        operations.add_listener(self.reconciler.operation_changed)

    # --- events -----------------------------------------------------------------------------

    def _look_at_readiness(self, listed: list[Vm]) -> None:
        """While anyone watches: each running VM not seen ready yet is looked at (at most once
        per cache TTL), so ``vm.ready`` reaches the stream though nobody asks for its detail.
        A run once seen ready costs nothing more (``ReadinessProbe``). A VM a change of the
        operator works on is left to that change: a start tells ``vm.state`` before anyone may
        tell its run ready."""
        for vm in listed:
            if (vm["source"] == "local" and vm["state"] == "running"
                    and not self.states.is_busy(vm["name"])):
                try:
                    self.readiness.check(VmName(vm["name"]))
                except InvalidName:  # a name made outside the operator that it cannot take
                    continue

    def held(self, name: str) -> bool:
        """Whether a change of the operator works on the VM, or a run of the operator's
        supervises it (its end is told as exited): the poller leaves it alone."""
        return (self.states.is_busy(name) or self.operations.holder(name) is not None
                or self.runs.watching(name))

    def run_ended(self, name: str) -> None:
        """A ``tart run`` of the operator ended: ``vm.state`` running → stopped with cause
        ``exited`` and its exit code, unless a stop or suspend of the operator ended it (that
        one tells)."""
        if self.states.is_busy(name):
            return
        with self.states.busy(name):
            if self.states.known(name) not in (None, EXISTS, "running"):
                return  # told already
            exit_code = None
            try:
                record = self.store.read_last_run(name)
                exit_code = record["exit_code"] if record is not None else None
            except StateDirError:
                pass
            # Tart is not asked: a run that ends leaves its VM stopped (were it suspended from
            # outside meanwhile, the poller tells that next)
            self.states.changed(name, "running", "stopped", "exited", exit_code)

    # --- reads ------------------------------------------------------------------------------

    def list_vms(self, fresh: bool = False) -> Sequence[Vm | CreatingVm]:
        """Tart's VMs, and the VMs being created (``state`` ``creating``, with the path of
        their operation) among the local ones, in name order, as Tart sorts them. Not to be
        changed: with nothing being created, it is the listing the cache holds."""
        vms = self.inventory.list_vms(fresh)
        creating = self.lifecycle.creating()
        if not creating:
            return vms
        local: list[Vm | CreatingVm] = [
            vm for vm in vms if vm["source"] == "local" and vm["name"] not in creating]
        local += [creating_vm(op) for op in creating.values()]
        local.sort(key=lambda vm: vm["name"])
        return local + [vm for vm in vms if vm["source"] != "local"]

    def ready(self) -> int:
        return self.inventory.ready()

    def cached_vms(self) -> list[Vm] | None:
        return self.inventory.cached_vms()

    def describe(self, name: VmName) -> ManagedVmDetail | CreatingManagedVmDetail:
        """The VM, its last run, its readiness (a running one is probed: ``readiness``,
        cached), its spec and what the reconciler knows of it."""
        op = self.lifecycle.creating().get(name)
        if op is not None:  # not Tart's yet (or half made): nothing to ask Tart
            return {**creating_vm(op), **NO_INFO, "last_run": None, "ready": False, "ip": None,
                    **self.reconciler.status(name)}
        self._own(name)
        found = self.inventory.describe(name)
        if found["state"] != "running":
            self.readiness.forget(name)
            ready, ip = False, None
        else:
            seen = self.readiness.check(name)
            ready, ip = seen.ready, seen.ip
        # what the dashboard polls: made again only when a part of it changed (core/cache.py)
        return self._details.get(name, managed_detail, found, ready, ip,
                                 self.reconciler.status(name))

    def _own(self, name: VmName) -> None:
        """Before a read shows what the operator keeps of the VM (its spec, last run, logs):
        drop it if it was kept for a VM that no longer carries the name (core/ownership.py);
        as fresh as the listing. When that cannot be told, the read shows what is kept."""
        try:
            self.ownership.owned(name, fresh=False)
        except (TartError, StateDirError) as exc:
            log.debug("VM %r: whose spec it is cannot be told now: %s", name, exc)

    def _ready_detail(self, name: VmName) -> ReadyVmDetail:
        found = self.inventory.describe(name)
        if found["state"] != "running":
            self.readiness.forget(name)
            return {**found, "ready": False, "ip": None}
        seen = self.readiness.check(name)
        return {**found, "ready": seen.ready, "ip": seen.ip}

    def spec(self, name: VmName) -> VmSpec | None:
        """What the operator remembers of the VM: its desired state; None when it has none."""
        return self.specs.load(name)

    def owned_spec(self, name: VmName) -> VmSpec | None:
        """The VM's spec when it belongs to the VM that carries the name now (a spec of a gone
        VM is dropped: core/ownership.py), asked of Tart's host now. TartError: cannot tell."""
        return self.ownership.owned(name)[0]

    def ip(self, name: VmName, wait: int) -> str:
        return self.inventory.ip(name, wait)

    def exec(self, name: VmName, request: ExecRequest) -> ExecResult:
        """Run a command in the running VM's guest (``tart exec``)."""
        return self.guest.exec(name, request)

    def exec_session(self, name: VmName, request: SessionRequest,
                     on_end: Callable[[int | None], None]) -> ExecSession:
        """Start an interactive command in the running VM's guest (``GET /vms/{name}/exec``);
        ``on_end`` gets its exit code (None: the WebSocket ended first) once it is over."""
        return open_session(self.tart, self.inventory, self.events, self.clock.monotonic,
                            name, request, on_end)

    def logs(self, name: VmName, lines: int | None = None) -> LogTail:
        self._own(name)
        return self.runs.logs(name, lines)

    def tart_status(self) -> TartStatus:
        return self.inventory.tart_status()

    def running_runs(self) -> int:
        return self.runs.running_runs()

    # --- writes -----------------------------------------------------------------------------

    def start(self, name: VmName, suspendable: bool = False) -> ChangedVm:
        """Start the VM; once it runs, it is desired running (its spec says so, written
        while the start still holds the VM's writes: a stop that waited behind it wins). What
        was kept of a gone VM of this name is dropped first, so the new run's records are this
        VM's."""
        self.lifecycle.refuse_if_held(name)
        self.ownership.owned(name)
        return self.power.start(name, suspendable,
                                served=lambda: self.reconciler.started(name))

    def start_ready(self, name: VmName, suspendable: bool, timeout: float) -> StartedReadyVm:
        """Start the VM (``start``), then wait until it is ready: Tart reports its IP address
        and its guest accepts a TCP connection on the ready port. ``timeout`` seconds bound
        the whole (ReadyTimeout when they run out; the VM is left running)."""
        began = self.clock.monotonic()
        started = self.start(name, suspendable)
        seen: Readiness = self.readiness.wait(
            name, began + timeout, timeout,
            lambda: self.inventory.find(name)["state"] == "running")
        found = self.inventory.describe(name)
        return {**found, "ready": seen.ready, "ip": seen.ip, **self.reconciler.status(name),
                "changed": started["changed"]}

    def stop(self, name: VmName, timeout: int) -> ChangedVm:
        """Stop the VM, desired stopped from now on: the reconciler never undoes it. The
        desire is written when the stop is served (it holds the VM's writes, Tart lists the
        VM): a start that came first and is still under way cannot write over it."""
        self.lifecycle.refuse_if_held(name)
        return self.power.stop(name, timeout, served=lambda: self.reconciler.stopping(name))

    def suspend(self, name: VmName) -> ChangedVm:
        self.lifecycle.refuse_if_held(name)
        try:  # asked when served: a start that came first cannot forget it
            return self.power.suspend(name, served=lambda: self.reconciler.suspending(name))
        except BaseException:
            self.reconciler.suspending(name, False)  # refused: its run's end is not asked for
            raise

    def set_desired(self, name: VmName, desired: Desired | None = None,
                    restart: RestartPolicy | None = None,
                    source: SpecSource = "api") -> VmSpec:
        """Write the VM's desired power and restart policy (None: leave it as it is; a VM
        without a spec gets one) and have the reconciler act on it: ``running`` starts it,
        ``stopped`` stops it. Written while it holds the VM's writes, as a start's or a stop's
        wish is: a wish sent while a start is under way is served after it, and stays (the
        request served last wins). The caller checks that the VM exists."""
        with self.power.exclusive(name):
            return self.reconciler.set_desired(name, desired, restart, source)

    def patch(self, name: VmName, patch: VmPatch, desired: Desired | None = None,
              restart: RestartPolicy | None = None) -> ManagedVmDetail:
        """PATCH /vms/{name}: ``tart set`` with the resources given (a stopped VM only), then
        the desired state given (any local VM); the VM's new detail."""
        wishes = desired is not None or restart is not None
        if patch.empty and wishes:  # nothing for Tart to set: a running VM may be patched
            self.inventory.local_vm(name, "set the desired state of")
        else:
            self.manage.patch(name, patch)
        if wishes:
            self.set_desired(name, desired, restart, "api")
        return {**self._ready_detail(name), **self.reconciler.status(name)}

    def create(self, request: CreateRequest) -> Operation:
        return self.lifecycle.create(request)

    def adopt_earlier_runs(self) -> int:
        """Finish the records of the runs an earlier operator process launched (an ephemeral
        VM whose run ended meanwhile is deleted), and delete the ephemeral VMs whose run had
        ended before."""
        found = self.runs.adopt_earlier_runs()
        self.ephemeral.sweep()
        return found


def creating_vm(op: Operation) -> CreatingVm:
    """A VM being created, as GET /vms shows it: what Tart cannot tell yet is null."""
    return {"name": op.vm or "", "source": "local", "state": "creating", "status": "creating",
            "running": False, "disk_gb": None, "size_gb": None, "accessed": None,
            "operation": operation_path(op.id)}


def managed_detail(found: VmDetail, ready: bool, ip: str | None,
                   status: DesiredStatus) -> ManagedVmDetail:
    """A VM's detail (``VmService.describe``): Tart's, its readiness and its desired state."""
    return {**found, "ready": ready, "ip": ip, **status}
