"""Start, stop and suspend: every write to one VM in arrival order, and the macOS slot cap.

Writes to one VM are serialised by a fair lock with a bounded queue (``FifoLock``), so two
concurrent starts launch one ``tart run`` and a stop never waits behind an endless stream
of starts; past ``MAX_QUEUED_WRITES`` waiting, a write is turned away at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vm_operator.core.errors import (
    HOW_TO_SUSPEND,
    NotSuspendable,
    VmBusy,
    VmLimit,
    VmStarting,
    not_running,
    not_suspendable,
)
from vm_operator.core.fifo import FifoLock
from vm_operator.core.inventory import Inventory
from vm_operator.core.ports import TartPort
from vm_operator.core.records import ChangedVm, changed
from vm_operator.core.runs import Run, RunSupervisor
from vm_operator.core.watch import VmStates
from vm_operator.tart.errors import TartError, TartNotRunning, TartNotSuspendable
from vm_operator.tart.names import VmName
from vm_operator.tart.records import Vm

MAX_QUEUED_WRITES = 16  # per VM; each write takes a few Tart calls, so more is minutes of waiting


class Power:
    """Start, stop and suspend VMs."""

    def __init__(self, tart: TartPort, inventory: Inventory, runs: RunSupervisor,
                 max_running: int, states: VmStates) -> None:
        self.tart = tart
        self.states = states  # publishes each change as vm.state (cause api), under the lock
        self.inventory = inventory
        self.runs = runs
        self.max_running = max_running
        self._guard = threading.Lock()
        self._vm_locks: dict[str, FifoLock] = {}
        self._starting: set[str] = set()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the VM against starts, stops and suspends (a delete while it works)."""
        with self._locked(name):
            yield

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """Serialise every write to one VM: two starts launch one ``tart run``."""
        with self._guard:
            lock = self._vm_locks.setdefault(name, FifoLock(MAX_QUEUED_WRITES))
        if not lock.acquire():
            raise VmBusy(
                f"more than {MAX_QUEUED_WRITES} start/stop/suspend requests for {name!r} are "
                "already waiting; retry shortly", retry_after=1,
            )
        try:
            with self.states.busy(name):
                yield
        finally:
            lock.release()

    # --- start ------------------------------------------------------------------------------

    def start(self, name: VmName, suspendable: bool = False, cause: str = "api",
              wanted: Callable[[], bool] = lambda: True,
              served: Callable[[], None] = lambda: None) -> ChangedVm:
        """Start the VM and wait until Tart reports it running (``changed``), or find it
        already running (not ``changed``). ``cause``: who asked, as ``vm.state`` tells it;
        ``wanted``: asked once the VM's writes are this start's, False (the reason to start
        went away meanwhile, say a stop came first) starts nothing (not ``changed``);
        ``served``: called once it runs, still holding the VM's writes (what the start means
        for the VM's desired state is written in the order the writes are served)."""
        with self._locked(name):
            declined: list[bool] = []

            def still_wanted() -> bool:
                if wanted():
                    return True
                declined.append(True)
                return False

            found = self._start_held(name, suspendable, cause, still_wanted)
            if not declined:
                served()
            return found

    def _start_held(self, name: VmName, suspendable: bool, cause: str,
                    wanted: Callable[[], bool]) -> ChangedVm:
        vm = self.inventory.local_vm(name, "start", fresh=True)
        if not wanted():
            return changed(vm, False)
        pending = self.runs.live_run(name)
        # a run that lives (listed running, or launched and not running yet) cannot become
        # suspendable: asking for it is refused, whichever way the run is found
        lives = vm["state"] == "running" or pending is not None
        if lives and suspendable and self.runs.suspendable(name) is False:
            raise NotSuspendable(
                f'VM "{name}" already runs, started without ?suspendable=true; a running '
                f"VM cannot become suspendable, it must be stopped first: {HOW_TO_SUSPEND}"
            )
        if vm["state"] == "running":
            return changed(vm, False)
        if pending is not None:  # launched, not running yet: never launch a second one
            before = vm["state"]
            try:
                vm = self.runs.confirm_running(name, pending)
            finally:
                self.inventory.changed()
            self.states.changed(name, before, vm["state"], cause)
            return changed(vm, True)
        self._reserve_slot(name, self.inventory.list_vms())
        before = vm["state"]
        try:
            run = self.runs.launch(name, suspendable)
            try:
                vm = self.runs.confirm_running(name, run)
            finally:
                self.inventory.changed()
        finally:
            with self._guard:
                self._starting.discard(name)
        self.states.changed(name, before, vm["state"], cause)
        return changed(vm, True)

    def _launched_macos(self, name: str) -> set[str]:
        """Other macOS VMs whose ``tart run`` (ours) lives but is not listed running yet."""
        found = set()
        for other in self.runs.supervised(but=name):
            try:
                if self.inventory.is_macos(other):
                    found.add(other)
            except TartError:  # deleted meanwhile: it holds no slot
                pass
        return found

    def _reserve_slot(self, name: VmName, vms: list[Vm]) -> None:
        """Refuse a start that would exceed the cap on running macOS guests, before Tart is asked.

        Apple's licence (and Virtualization.framework) allows two macOS guests per host;
        Linux guests do not count.
        """
        if self.max_running <= 0 or not self.inventory.is_macos(name):
            return
        running = {
            vm["name"]
            for vm in vms
            if vm["state"] == "running" and vm["source"] == "local"
            and self.inventory.is_macos(vm["name"])
        } | self._launched_macos(name)
        with self._guard:
            busy = running | self._starting
            if len(busy) >= self.max_running:
                # how many, not which: this text reaches tokens limited to VM patterns (the
                # answer, a create's error, a config.applied step) that may not see them
                raise VmLimit(
                    f"at most {self.max_running} macOS VMs may run at once "
                    f"(VM_OPERATOR_MAX_RUNNING, Apple's licence limit); running or starting now: "
                    f"{len(busy)}: stop or suspend one first",
                    limit=self.max_running,
                )
            self._starting.add(name)

    # --- stop and suspend -------------------------------------------------------------------

    def stop(self, name: VmName, timeout: int, cause: str = "api",
             served: Callable[[], None] = lambda: None) -> ChangedVm:
        """Stop the VM; ``served``: called once the VM's writes are this stop's and Tart lists
        it, before it is stopped (what the stop means for the VM's desired state is written
        in the order the writes are served)."""
        with self._locked(name):
            return self.stop_held(name, timeout, cause, served)

    def stop_held(self, name: VmName, timeout: int, cause: str = "api",
                  served: Callable[[], None] = lambda: None) -> ChangedVm:
        """``stop``, for a caller that holds the VM's write lock (``exclusive``)."""
        vm = self.inventory.local_vm(name, "stop", fresh=True)
        served()
        if vm["state"] == "stopped":
            pending = self.runs.live_run(name)
            if pending is None:
                return changed(vm, False)
            # our own tart run lives, not listed yet (a start that timed out): answering
            # "stopped" would leave it to come up moments later
            vm = self._listed_or_ended(name, pending, timeout)
            if vm["state"] == "stopped":
                return changed(vm, False)  # it ended by itself meanwhile
        try:
            self.tart.stop(name, timeout)
        except TartNotRunning:
            pass  # it stopped on its own meanwhile
        finally:
            self.inventory.changed()
        self.runs.await_reaped(name)
        after = self.inventory.find(name, fresh=True)
        self.states.changed(name, vm["state"], after["state"], cause)
        return changed(after, True)

    def _listed_or_ended(self, name: VmName, run: Run, timeout: int) -> Vm:
        """Wait, up to the stop's ``timeout`` (at least a second), until Tart lists the VM
        of our live ``run`` or the run ends; VmStarting when neither happens."""
        clock = self.runs.clock
        deadline = clock.monotonic() + max(timeout, 1)
        while True:
            vm = self.inventory.find(name, fresh=True)
            if vm["state"] != "stopped" or run.exited.is_set():
                return vm
            if clock.monotonic() >= deadline:
                raise VmStarting(
                    f'VM "{name}" is still starting: the tart run the operator launched for it '
                    f"is alive, but Tart did not list it running within {max(timeout, 1)} s, so "
                    "there is nothing to stop yet; retry once GET /vms/{name} says running")
            run.exited.wait(self.runs.poll_interval)

    def suspend(self, name: VmName, served: Callable[[], None] = lambda: None) -> ChangedVm:
        """Suspend the VM; ``served``: called once the VM's writes are this suspend's and
        Tart lists it running, before Tart is asked."""
        with self._locked(name):
            vm = self.inventory.local_vm(name, "suspend", fresh=True)
            if vm["state"] == "suspended":
                return changed(vm, False)
            if vm["state"] != "running":
                raise not_running(name, "only a running VM can be suspended")
            if self.runs.suspendable(name) is False:
                # Tart is not asked: a snapshot of a VM run without --suspendable fails
                # and ends that run
                raise not_suspendable(name)
            served()
            try:
                self.tart.suspend(name)
            except TartNotSuspendable as exc:
                raise not_suspendable(name, exc.message) from None
            finally:
                self.inventory.changed()
            self.runs.await_reaped(name)
            after = self.inventory.find(name, fresh=True)
            self.states.changed(name, vm["state"], after["state"])
            return changed(after, True)
