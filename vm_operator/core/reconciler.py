"""The reconciler: keeps each VM the operator manages the way its spec asks.

A VM's spec (``store/specs.py``) says its desired power and its restart policy. The
reconciler compares that with what Tart reports — at start-up (its first pass), after each
change it observes (a run's end, a spec written: ``kick``), when a backoff ends
(``wake_in``) and every ``interval`` seconds — and acts:

- a VM desired ``running`` that is stopped is started: at start-up whatever its policy (the
  reboot story: the operator's launchd agent starts at login and brings the VMs back); while
  the operator runs, after its run ended without a stop through the API, only when its
  restart policy says so (``restart_wanted``), with an exponential backoff (``backoff_delay``)
  on repeated ends, forgotten after ``HEALTHY_AFTER`` seconds of healthy running;
- a VM whose spec was just set to desired ``stopped`` (``set_desired``) is stopped once.

It never stops, deletes or starts a VM without a spec, nor an ephemeral one (those go when
their run ends), nor one a request or an operation holds (it holds the VM's name while it
starts or stops it). A start refused by the macOS slot cap is not a failure: the VM waits for a
slot (``waiting-for-slot``), without backoff, and is tried again when a run ends. A pass
calls no Tart command when no VM is desired running (or due to stop).

What it knows of each VM (restart count, last exit, next attempt, condition) lives in memory:
a restart of the operator starts afresh, which is what brings the VMs back after a reboot.
That memory is ``core/reconcile_state.VmMemory``, changed only by the pure transitions of that
module (the rules they follow are ``core/reconcile_rules.py``); this class is their shell: it
reads the clock, Tart and the specs, applies a transition under its lock, then acts and tells.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace

from vm_operator.core.cache import Derived
from vm_operator.core.errors import OperatorError, VmLimit, state_dir_unwritable
from vm_operator.core.event_catalogue import (
    RECONCILE_ACTION,
    RECONCILE_FAILED,
    RECONCILE_WAITING,
    NewEvent,
    ReconcileFailedData,
)
from vm_operator.core.events import EventBus
from vm_operator.core.operations import NameBusy, OperationQueue
from vm_operator.core.parts import Parts
from vm_operator.core.reconcile_rules import desired_status, later, wake_in
from vm_operator.core.reconcile_state import (
    Action,
    Plan,
    Step,
    VmMemory,
    desired_set,
    observed,
    run_ended,
    start_begun,
    start_declined,
    start_failed,
    start_refused_for_slot,
    start_served,
    start_succeeded,
    start_wanted,
    stop_begun,
    stop_requested,
    suspend_requested,
)
from vm_operator.core.records import DesiredStatus
from vm_operator.core.worker import Worker
from vm_operator.store.operation_records import OperationEvent
from vm_operator.store.specs import SpecSource, VmSpec
from vm_operator.store.state import StateDirError
from vm_operator.tart.errors import TartError, TartVmLimit
from vm_operator.tart.names import InvalidName, VmName
from vm_operator.tart.records import Vm
from vm_operator.vocabulary import Desired, RestartPolicy

log = logging.getLogger(__name__)

RECONCILE_INTERVAL = 5.0  # seconds between two periodic passes
STOP_TIMEOUT = 30  # seconds Tart gives a VM the reconciler stops (desired stopped)

Report = Callable[[Mapping[str, object]], None]
"""Where the server's log lines go: one JSON object per line (the wiring gives ``log_line``)."""


class Reconciler(Worker):
    """Compares desired with observed power and acts; see the module's docstring. Its thread
    (``start``) makes the first pass at once (start-up), then one per kick or per ``interval``."""

    def __init__(self, parts: Parts, queue: OperationQueue, events: EventBus,
                 interval: float = RECONCILE_INTERVAL,
                 on_action: Callable[[str], None] = lambda action: None,
                 report: Report = lambda record: None) -> None:
        super().__init__("reconciler")
        self.parts = parts
        self.queue = queue
        self.events = events
        self.interval = interval
        self.on_action = on_action  # the metrics' counter of actions
        self.report = report  # a log line for each event it publishes
        self._lock = threading.Lock()  # the memories
        self._spec_lock = threading.Lock()  # read-modify-write of a spec
        self._pass = threading.Lock()  # one pass at a time
        self._memories: dict[str, VmMemory] = {}
        self._statuses: Derived[DesiredStatus] = Derived()  # status's, by VM
        self._born = parts.clock.utc_now()  # a run started since is one this process launched

    # --- the loop -------------------------------------------------------------------------------

    def kick(self) -> None:
        """Something changed: pass again now."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.clear()
            began = self.parts.clock.monotonic()
            try:
                self.reconcile_once()
            except Exception:  # one bad pass must not end the loop
                log.exception("the reconciler's pass failed")
            self._wake.wait(self._until_next_pass(began))

    def _until_next_pass(self, began: float) -> float:
        """Seconds to wait before the next pass: a backoff ends the wait when it is over."""
        with self._lock:
            retry_ats = [memory.retry_at for memory in self._memories.values()
                         if memory.retry_at is not None]
        return wake_in(self.interval, self.parts.clock.monotonic(), began, retry_ats)

    # --- the memories ---------------------------------------------------------------------------

    def _apply(self, name: str, transition: Callable[[VmMemory], Step]) -> Step:
        """Take the VM's memory (a new one if it has none) to its next, under the lock; then
        tell what the step says (a failure, a wait begun)."""
        with self._lock:
            step = transition(self._memories.get(name) or VmMemory())
            self._memories[name] = step.memory
        self._tell_step(name, step)
        return step

    def _tell_step(self, name: str, step: Step) -> None:
        if step.failure is not None:
            data: ReconcileFailedData = {
                "error": step.failure.error, "restart_count": step.failure.restart_count,
                "next_attempt_at": later(self.parts.clock.utc_now(), step.failure.delay)}
            self._tell(RECONCILE_FAILED.about(name, data), "warning")
        if step.waiting is not None:
            self._tell(RECONCILE_WAITING.about(name, {"condition": step.waiting}),
                       "warning" if step.waiting == "crash-loop" else "info")

    def _tell(self, event: NewEvent, level: str = "info") -> None:
        """Publish the event, and say it in the server's log: a JSON line with its fields."""
        self.report({"level": level, "event": event.type.replace(".", "-"), "vm": event.vm,
                     **event.data})
        self.events.publish(event)

    def _supervised(self, name: str) -> bool:
        """Whether the run supervisor watches a run of the VM (its end is reported)."""
        return self.parts.runs.live_run(name) is not None

    # --- specs ----------------------------------------------------------------------------------

    def _write(self, name: str, desired: Desired | None, restart: RestartPolicy | None,
               source: SpecSource) -> VmSpec:
        """Merge into the VM's spec (a new one if it has none, or if it was a gone VM's:
        core/ownership.py) and write it whole, bound to the VM that carries the name."""
        with self._spec_lock:
            try:
                old, vm_id = self._owned_spec(name)
                base = old or VmSpec(name)
                spec = replace(base, desired=desired or base.desired,
                               restart=restart or base.restart, source=source,
                               vm_id=vm_id or base.vm_id)
                if spec != old:
                    self.parts.specs.save(spec)
            except StateDirError as exc:
                raise state_dir_unwritable(exc) from None
        return spec

    # --- whose spec it is (core/ownership.py) --------------------------------------------------

    def _owned_spec(self, name: str) -> tuple[VmSpec | None, str | None]:
        """The VM's spec unless it was a gone VM's (then dropped), and the identity of the VM
        that carries the name now. When that cannot be read, the spec as it is."""
        checked = VmName(name)
        try:
            spec, vm_id = self.parts.ownership.owned(checked)
            if spec is None and vm_id is None:
                vm_id = self.parts.ownership.identity(checked)
        except TartError as exc:
            log.warning("VM %r: which VM carries the name cannot be read: %s", name, exc)
            return self.parts.specs.load(name), None
        return spec, vm_id

    def _owns(self, spec: VmSpec) -> bool:
        """Before the reconciler acts on the VM that carries ``spec``'s name: whether the spec
        was made for that VM (a gone VM's spec is dropped and acts on nothing). When that
        cannot be told, it does not act (the next pass asks again)."""
        try:
            owned, _ = self.parts.ownership.owned(VmName(spec.name))
        except (TartError, InvalidName, StateDirError) as exc:
            log.warning("VM %r: which VM carries the name cannot be read or recorded, nothing "
                        "done: %s", spec.name, exc)
            return False
        return owned is not None

    # --- what is asked through the API ----------------------------------------------------------

    def set_desired(self, name: str, desired: Desired | None = None,
                    restart: RestartPolicy | None = None, source: SpecSource = "api") -> VmSpec:
        """Persist the VM's desired power and restart policy (None: as they are) and act on
        them: desired ``stopped`` stops it once, ``running`` starts it."""
        spec = self._write(name, desired, restart, source)
        self._apply(name, lambda memory: desired_set(memory, spec.operation, desired,
                                                           restart))
        self.kick()
        return spec

    def started(self, name: str) -> None:
        """A start through the API succeeded: the VM is desired running, its run is watched.
        A spec that cannot be written is logged: the VM runs all the same."""
        try:
            self._write(name, "running", None, "api")
        except OperatorError as exc:
            log.warning("VM %r started, but its desired state cannot be written: %s", name,
                        exc.detail)
        now, supervised = self.parts.clock.monotonic(), self._supervised(name)
        self._apply(name, lambda memory: start_served(memory, now, supervised))

    def stopping(self, name: str) -> None:
        """A stop through the API is about to end the VM's run: desired stopped, never undone
        (when the spec cannot be written, the stop is logged and held in memory: this process
        does not start the VM again until asked to)."""
        try:
            self._write(name, "stopped", None, "api")
        except OperatorError as exc:
            log.warning("VM %r is being stopped, but its desired state cannot be written: %s",
                        name, exc.detail)
        self._apply(name, stop_requested)

    def suspending(self, name: str, asked: bool = True) -> None:
        """A suspend through the API is about to end the VM's run: not a failure (``asked``
        False: the suspend was refused, the run goes on as before)."""
        self._apply(name, lambda memory: suspend_requested(memory, asked))

    def operation_changed(self, event: OperationEvent) -> None:
        """The queue's listener: an operation that held a VM (a create that could not start
        it, say) has finished: pass again now rather than at the next periodic pass."""
        if event.operation.finished and event.operation.vm is not None and not event.forgotten:
            self.kick()

    def forget(self, name: str) -> None:
        with self._lock:
            self._memories.pop(name, None)

    def status(self, name: str) -> DesiredStatus:
        """The desired-state fields of the VM's detail (made again only when they change)."""
        spec = self.parts.specs.load(name)
        memory = self._memories.get(name) or NO_MEMORY  # replaced whole: read without the lock
        managed = spec is not None and spec.desired == "running" and not spec.ephemeral
        return self._statuses.get(name, desired_status, spec, memory.restart_count,
                                  memory.last_exit,
                                  self._next_attempt(memory) if managed else None,
                                  memory.condition if managed else None)

    def _next_attempt(self, memory: VmMemory) -> str | None:
        """When the next start is tried, on the wall clock; None once it is due (it is being
        tried: a time already past is never shown)."""
        now = self.parts.clock.monotonic()
        if memory.retry_at is None or memory.retry_at <= now:
            return None
        return later(self.parts.clock.utc_now(), memory.retry_at - now)

    # --- what it observes -----------------------------------------------------------------------

    def run_ended(self, name: str) -> None:
        """The run supervisor's listener: a ``tart run`` it watched has ended."""
        try:
            record = self.parts.store.read_last_run(name)
        except StateDirError:
            record = None
        code = record["exit_code"] if record is not None and record["exit_code_known"] else None
        at = (record["finished_at"] if record is not None else None) or self.parts.clock.utc_now()
        launched_here = record is not None and record["started_at"] >= self._born
        now = self.parts.clock.monotonic()
        spec = self.parts.specs.load(name)
        self._apply(name, lambda memory: run_ended(memory, spec, code, at, launched_here,
                                                         now))
        self.kick()  # whatever it was, a slot may have freed

    # --- a pass ---------------------------------------------------------------------------------

    def reconcile_once(self) -> None:
        """Compare every managed VM with what Tart lists, and act. The lock is taken once for
        the VMs due to stop, then once per VM compared, and by an action (start: three times,
        when it begins, when the VM's write lock asks whether it is still wanted, and with its
        outcome; stop: once, twice when it fails)."""
        with self._pass:
            with self._lock:
                stop_due = {name for name, memory in self._memories.items()
                            if memory.plan is Plan.STOP_ONCE}
            try:
                specs = [spec for spec in self.parts.specs.all()
                         if not spec.ephemeral and (spec.desired == "running"
                                                    or spec.name in stop_due)]
            except StateDirError as exc:
                log.warning("the reconciler cannot read the specs: %s", exc)
                return
            for spec in specs:  # none: nothing to manage, no Tart call
                if self._closed.is_set():
                    return
                try:  # the cached list, fresh after every change (a start before takes long)
                    vms = {vm["name"]: vm for vm in self.parts.inventory.list_vms()}
                except (OperatorError, TartError) as exc:
                    log.warning("the reconciler cannot list the VMs: %s", exc)
                    return
                self._reconcile(spec, vms.get(spec.name))

    def _reconcile(self, spec: VmSpec, vm: Vm | None) -> None:
        now, utc_now = self.parts.clock.monotonic(), self.parts.clock.utc_now()
        supervised = vm is not None and vm["state"] == "running" and self._supervised(spec.name)
        step = self._apply(spec.name, lambda memory: observed(memory, spec, vm, now,
                                                                    utc_now, supervised))
        if step.action is not None and self._owns(spec):
            self._act(spec.name, step.action, step.reason)

    def _act(self, name: str, action: Action, reason: str) -> None:
        """Start or stop the VM, holding its name so that no request or operation changes it
        meanwhile (one that holds it already: the next pass tries again)."""
        try:
            checked = VmName(name)
            reservation = self.queue.reserve(name)
        except (InvalidName, NameBusy):
            return
        with reservation:
            self._tell(RECONCILE_ACTION.about(name, {"action": action, "reason": reason}))
            self.on_action(action)
            if action == "stop":
                self._stop(checked)
            else:
                self._start(checked)

    def _stop(self, name: VmName) -> None:
        self._apply(name, stop_begun)
        try:
            self.parts.power.stop(name, STOP_TIMEOUT, cause="reconciler")  # tells vm.state
        except (OperatorError, TartError) as exc:
            with self._lock:
                count = (self._memories.get(name) or VmMemory()).restart_count
            self._tell(RECONCILE_FAILED.about(name, {
                "error": f"stop: {exc.detail}", "restart_count": count,
                "next_attempt_at": None}), "warning")

    def _start(self, name: VmName) -> None:
        began = self.parts.clock.monotonic()
        self._apply(name, lambda memory: start_begun(memory, began))
        declined: list[bool] = []

        def wanted() -> bool:
            """Asked under the VM's write lock: a stop through the API that came first (or a
            spec no longer desired running) means no start."""
            spec = self.parts.specs.load(name)
            with self._lock:
                ok = start_wanted(self._memories.get(name) or VmMemory(), spec)
            if not ok:
                declined.append(True)
            return ok

        try:
            self.parts.power.start(name, cause="reconciler", wanted=wanted)  # tells vm.state
        except (VmLimit, TartVmLimit):
            self._apply(name, start_refused_for_slot)
            return
        except (OperatorError, TartError) as exc:
            now, detail = self.parts.clock.monotonic(), exc.detail
            self._apply(name, lambda memory: start_failed(memory, detail, now))
            return
        if declined:  # a stop came first: nothing was started
            self._apply(name, start_declined)
            return
        supervised = self._supervised(name)
        self._apply(name, lambda memory: start_succeeded(memory, supervised))



NO_MEMORY = VmMemory()  # a VM the reconciler has nothing to remember of
