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
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from vm_operator.core.create import Parts
from vm_operator.core.errors import OperatorError, VmLimit, state_dir_unwritable
from vm_operator.core.events import EventBus, JsonValue
from vm_operator.core.operations import OperationQueue
from vm_operator.core.records import DesiredStatus, LastExit, SpecView
from vm_operator.store.operation_records import NameBusy, OperationEvent
from vm_operator.store.specs import Desired, RestartPolicy, SpecSource, VmSpec
from vm_operator.store.state import StateDirError
from vm_operator.tart.errors import TartError, TartVmLimit
from vm_operator.tart.names import InvalidName, VmName
from vm_operator.tart.records import Vm

log = logging.getLogger(__name__)

Condition = Literal["backing-off", "crash-loop", "waiting-for-slot", "exited", "missing"]

BACKOFF_FIRST = 1.0  # seconds before the first restart after an end
BACKOFF_CAP = 300.0  # never more than 5 minutes between two attempts
HEALTHY_AFTER = 600.0  # 10 minutes of running forget the earlier failures
CRASH_LOOP_AFTER = 3  # consecutive failures that make a crash loop
RECONCILE_INTERVAL = 5.0  # seconds between two periodic passes
STOP_TIMEOUT = 30  # seconds Tart gives a VM the reconciler stops (desired stopped)

RECONCILE_ACTION = "reconcile.action"
RECONCILE_FAILED = "reconcile.failed"
RECONCILE_WAITING = "reconcile.waiting"

Report = Callable[[Mapping[str, object]], None]
"""Where the server's log lines go: one JSON object per line (the wiring gives ``log_line``)."""


# --- the rules, pure ----------------------------------------------------------------------------


def backoff_delay(failures: int) -> float:
    """Seconds to wait before the next start after ``failures`` consecutive failures: none
    before the first, then 1 s, doubling, capped at ``BACKOFF_CAP``."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_FIRST * 2.0 ** min(failures - 1, 30), BACKOFF_CAP)


def failures_after_end(failures: int, ran_for: float) -> int:
    """The consecutive failures once a run that lasted ``ran_for`` seconds ended unasked:
    one more, or the first one when it had run healthy for ``HEALTHY_AFTER``."""
    return 1 if ran_for >= HEALTHY_AFTER else failures + 1


def restart_wanted(policy: RestartPolicy, exit_code: int | None) -> bool:
    """Whether a run that ended without a stop through the API is started again: ``always``
    after any end, ``on-failure`` after a non-zero exit or a kill (``exit_code`` None: killed
    by a signal, or the exit was not seen), ``never`` never."""
    if policy == "always":
        return True
    return policy == "on-failure" and exit_code != 0


def wake_in(interval: float, now: float, began: float, retry_ats: list[float]) -> float:
    """Seconds from ``now`` to the next pass: ``interval``, or sooner the earliest next attempt
    (monotonic) not yet due when the last pass ``began`` (never less than none); one that was
    due then had that pass, which acted on it or could not (held, missing): the periodic pass
    tries again."""
    pending = [at for at in retry_ats if at > began]
    if not pending:
        return interval
    return max(0.0, min(interval, min(pending) - now))


def failing_condition(failures: int) -> Condition:
    return "crash-loop" if failures >= CRASH_LOOP_AFTER else "backing-off"


def later(stamp: str, seconds: float) -> str:
    """The API timestamp ``seconds`` after ``stamp`` (both ``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
    whole, _, rest = stamp.partition(".")
    base = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    millis = int(rest.rstrip("Z") or 0) + round(seconds * 1000)
    when = base + millis // 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{millis % 1000:03d}Z"


def last_exit(exit_code: int | None, at: str) -> LastExit:
    """A run's end: a negative code is the signal that killed it (subprocess's convention)."""
    if exit_code is not None and exit_code < 0:
        return {"exit_code": None, "signal": -exit_code, "at": at}
    return {"exit_code": exit_code, "signal": None, "at": at}


def spec_view(spec: VmSpec | None) -> SpecView | None:
    if spec is None:
        return None
    return {"desired": spec.desired, "restart": spec.restart, "source": spec.source,
            "created_at": spec.created_at}


# --- what the reconciler remembers of a VM -----------------------------------------------------


@dataclass
class Watch:
    failures: int = 0  # consecutive unasked ends and failed starts, since healthy running
    restart_count: int = 0  # starts the reconciler made since the last ask
    last_exit: LastExit | None = None
    retry_at: float | None = None  # monotonic: no start before
    condition: Condition | None = None
    running_since: float | None = None  # monotonic: when this process saw it start or run
    ours: bool = False  # that run is one the run supervisor watches (its end is reported)
    settled: bool = False  # its run ended and its policy keeps it stopped
    asked: bool = False  # a stop or suspend through the API ends the current run
    stop_due: bool = False  # desired was just set to stopped: stop it once
    operation: str | None = None  # the create of the VM this is about (a new VM: a new watch)


class Reconciler:
    """Compares desired with observed power and acts; see the module's docstring."""

    def __init__(self, parts: Parts, queue: OperationQueue, events: EventBus,
                 interval: float = RECONCILE_INTERVAL,
                 on_action: Callable[[str], None] = lambda action: None,
                 report: Report = lambda record: None) -> None:
        self.parts = parts
        self.queue = queue
        self.events = events
        self.interval = interval
        self.on_action = on_action  # the metrics' counter of actions
        self.report = report  # a log line for each event it publishes
        self._lock = threading.Lock()  # the watches
        self._spec_lock = threading.Lock()  # read-modify-write of a spec
        self._pass = threading.Lock()  # one pass at a time
        self._watches: dict[str, Watch] = {}
        self._kick = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._born = parts.clock.utc_now()  # a run started since is one this process launched

    # --- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        """The first pass at once (start-up), then one per kick or per ``interval``."""
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._closed.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def kick(self) -> None:
        """Something changed: pass again now."""
        self._kick.set()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._kick.clear()
            began = self.parts.clock.monotonic()
            try:
                self.reconcile_once()
            except Exception:  # one bad pass must not end the loop
                log.exception("the reconciler's pass failed")
            self._kick.wait(self._until_next_pass(began))

    def _until_next_pass(self, began: float) -> float:
        """Seconds to wait before the next pass: a backoff ends the wait when it is over."""
        with self._lock:
            retry_ats = [watch.retry_at for watch in self._watches.values()
                         if watch.retry_at is not None]
        return wake_in(self.interval, self.parts.clock.monotonic(), began, retry_ats)

    # --- specs ----------------------------------------------------------------------------------

    def _watch(self, name: str) -> Watch:
        """With ``_lock`` held."""
        watch = self._watches.get(name)
        if watch is None:
            watch = self._watches[name] = Watch()
        return watch

    def _watch_of(self, spec: VmSpec) -> Watch:
        """With ``_lock`` held: the watch of the VM ``spec`` is about; a VM created again
        under its name (deleted and created: another create) starts afresh."""
        watch = self._watch(spec.name)
        if spec.operation is not None and watch.operation != spec.operation:
            watch = self._watches[spec.name] = Watch(operation=spec.operation)
        return watch

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

    def _afresh(self, watch: Watch) -> None:
        """A new ask: forget the restarts, failures, the backoff and a policy's decision to
        stay put."""
        watch.restart_count = 0
        watch.failures = 0
        watch.retry_at = None
        watch.condition = None
        watch.settled = False

    def set_desired(self, name: str, desired: Desired | None = None,
                    restart: RestartPolicy | None = None, source: SpecSource = "api") -> VmSpec:
        """Persist the VM's desired power and restart policy (None: as they are) and act on
        them: desired ``stopped`` stops it once, ``running`` starts it."""
        spec = self._write(name, desired, restart, source)
        with self._lock:
            watch = self._watch_of(spec)  # not one a pass would then replace (stop_due lost)
            if desired is not None or restart is not None:
                self._afresh(watch)
            watch.stop_due = desired == "stopped"
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
        with self._lock:
            watch = self._watch(name)
            self._afresh(watch)
            watch.stop_due = watch.asked = False
            if watch.running_since is None:
                watch.running_since = self.parts.clock.monotonic()
                watch.ours = self.parts.runs.live_run(name) is not None

    def stopping(self, name: str) -> None:
        """A stop through the API is about to end the VM's run: desired stopped, never undone
        (when the spec cannot be written, the stop is logged and held in memory: this process
        does not start the VM again until asked to)."""
        try:
            self._write(name, "stopped", None, "api")
        except OperatorError as exc:
            log.warning("VM %r is being stopped, but its desired state cannot be written: %s",
                        name, exc.detail)
        with self._lock:
            watch = self._watch(name)
            self._afresh(watch)
            watch.settled = True  # whatever the spec on disk says
            watch.asked = True
            watch.stop_due = False

    def suspending(self, name: str, asked: bool = True) -> None:
        """A suspend through the API is about to end the VM's run: not a failure (``asked``
        False: the suspend was refused, the run goes on as before)."""
        with self._lock:
            self._watch(name).asked = asked

    def operation_changed(self, event: OperationEvent) -> None:
        """The queue's listener: an operation that held a VM (a create that could not start
        it, say) has finished: pass again now rather than at the next periodic pass."""
        if event.operation.finished and event.operation.vm is not None and not event.forgotten:
            self.kick()

    def forget(self, name: str) -> None:
        with self._lock:
            self._watches.pop(name, None)

    def status(self, name: str) -> DesiredStatus:
        """The desired-state fields of the VM's detail."""
        spec = self.parts.specs.load(name)
        with self._lock:
            watch = self._watches.get(name) or Watch()
            managed = spec is not None and spec.desired == "running" and not spec.ephemeral
            return {"spec": spec_view(spec), "restart_count": watch.restart_count,
                    "last_exit": watch.last_exit,
                    "next_attempt_at": self._next_attempt(watch) if managed else None,
                    "condition": watch.condition if managed else None}

    def _next_attempt(self, watch: Watch) -> str | None:
        """When the next start is tried, on the wall clock; None once it is due (it is being
        tried: a time already past is never shown)."""
        now = self.parts.clock.monotonic()
        if watch.retry_at is None or watch.retry_at <= now:
            return None
        return later(self.parts.clock.utc_now(), watch.retry_at - now)

    # --- what it observes -----------------------------------------------------------------------

    def run_ended(self, name: str) -> None:
        """The run supervisor's listener: a ``tart run`` it watched has ended."""
        try:
            record = self.parts.store.read_last_run(name)
        except StateDirError:
            record = None
        code = record["exit_code"] if record is not None and record["exit_code_known"] else None
        at = (record["finished_at"] if record is not None else None) or self.parts.clock.utc_now()
        now = self.parts.clock.monotonic()
        spec = self.parts.specs.load(name)
        with self._lock:
            watch = self._watch(name) if spec is None else self._watch_of(spec)
            watch.last_exit = last_exit(code, at)
            since, watch.running_since, watch.ours = watch.running_since, None, False
            asked, watch.asked = watch.asked, False
        if since is None and record is not None and record["started_at"] >= self._born:
            since = now  # launched by this process before anyone saw it run (a create's start)
        if since is not None and not asked and spec is not None and not spec.ephemeral and (
                spec.desired == "running"):
            self._ended(spec, code, now - since)
        self.kick()  # whatever it was, a slot may have freed

    def _ended(self, spec: VmSpec, code: int | None, ran_for: float) -> None:
        """The VM's run ended without being asked to: restart it (after the backoff) or not,
        as its policy says."""
        with self._lock:
            watch = self._watch(spec.name)
            if not restart_wanted(spec.restart, code):
                watch.settled = True
                watch.condition = "exited"
                watch.retry_at = None
                return
            failures = failures_after_end(watch.failures, ran_for)
        how = ("exit code unknown" if code is None else
               f"killed by signal {-code}" if code < 0 else f"exit code {code}")
        self._back_off(spec.name, failures, f"its run ended ({how}); restart: {spec.restart}")

    def _back_off(self, name: str, failures: int, error: str) -> None:
        delay = backoff_delay(failures)
        with self._lock:
            watch = self._watch(name)
            before = watch.condition
            watch.failures = failures
            watch.retry_at = self.parts.clock.monotonic() + delay
            watch.condition = failing_condition(failures)
            data: dict[str, JsonValue] = {"error": error, "restart_count": watch.restart_count,
                                          "next_attempt_at": later(self.parts.clock.utc_now(),
                                                                   delay)}
            condition = watch.condition
        self._tell(RECONCILE_FAILED, name, data, "warning")
        if condition == "crash-loop" and before != condition:
            self._tell(RECONCILE_WAITING, name, {"condition": condition}, "warning")

    def _tell(self, kind: str, name: str, data: dict[str, JsonValue],
              level: str = "info") -> None:
        """Publish the event, and say it in the server's log: a JSON line with its fields."""
        self.report({"level": level, "event": kind.replace(".", "-"), "vm": name, **data})
        self.events.publish(kind, name, data)

    # --- a pass ---------------------------------------------------------------------------------

    def reconcile_once(self) -> None:
        """Compare every managed VM with what Tart lists, and act."""
        with self._pass:
            try:
                specs = [spec for spec in self.parts.specs.all()
                         if not spec.ephemeral and (spec.desired == "running"
                                                    or self._stop_due(spec.name))]
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

    def _stop_due(self, name: str) -> bool:
        with self._lock:
            watch = self._watches.get(name)
            return watch is not None and watch.stop_due

    def _reconcile(self, spec: VmSpec, vm: Vm | None) -> None:
        name = spec.name
        now = self.parts.clock.monotonic()
        with self._lock:
            watch = self._watch_of(spec)
            if vm is None or vm["source"] != "local":
                watch.condition = "missing" if spec.desired == "running" else None
                watch.stop_due = False
                return
            if watch.condition == "missing":  # it exists again
                watch.condition = None
            if watch.stop_due:
                watch.stop_due = False
                stop = vm["state"] == "running"
            else:
                stop = False
        if stop:
            if self._owns(spec):
                self._act(name, "stop", "desired stopped")
            return
        if spec.desired != "running" or vm["state"] == "suspended":
            return  # a suspend through the API keeps it suspended until a start
        if vm["state"] == "running":
            self._saw_running(name, now)
            return
        with self._lock:  # stopped
            outside_end = watch.running_since is not None and not watch.ours
            if watch.running_since is not None and watch.ours:
                return  # its end is being reported (run_ended): act then
            ran_for = now - (watch.running_since or now)
            watch.running_since = None
        if outside_end:  # a run this process does not watch ended: exit unknown
            with self._lock:
                watch.last_exit = last_exit(None, self.parts.clock.utc_now())
            self._ended(spec, None, ran_for)
        with self._lock:
            if watch.settled or (watch.retry_at is not None and now < watch.retry_at):
                return
            reason = ("its run ended; restart: " + spec.restart if watch.failures else
                      "desired running, found stopped")
        if self._owns(spec):
            self._act(name, "start", reason)

    def _saw_running(self, name: str, now: float) -> None:
        with self._lock:
            watch = self._watch(name)
            if watch.running_since is None:
                watch.running_since = now
                watch.ours = self.parts.runs.live_run(name) is not None
            elif watch.failures and now - watch.running_since >= HEALTHY_AFTER:
                watch.failures = 0  # healthy: the backoff starts again from 1 s
            watch.settled = False
            watch.condition = None
            watch.retry_at = None

    def _act(self, name: str, action: Literal["start", "stop"], reason: str) -> None:
        """Start or stop the VM, holding its name so that no request or operation changes it
        meanwhile (one that holds it already: the next pass tries again)."""
        try:
            checked = VmName(name)
            reservation = self.queue.reserve(name)
        except (InvalidName, NameBusy):
            return
        with reservation:
            self._tell(RECONCILE_ACTION, name, {"action": action, "reason": reason})
            self.on_action(action)
            if action == "stop":
                self._stop(checked)
            else:
                self._start(checked)

    def _stop(self, name: VmName) -> None:
        with self._lock:
            self._watch(name).asked = True
        try:
            self.parts.power.stop(name, STOP_TIMEOUT, cause="reconciler")  # tells vm.state
        except (OperatorError, TartError) as exc:
            self._tell(RECONCILE_FAILED, name, {
                "error": f"stop: {exc.detail}", "restart_count": self._watch_count(name),
                "next_attempt_at": None}, "warning")
            return

    def _watch_count(self, name: str) -> int:
        with self._lock:
            return self._watch(name).restart_count

    def _start(self, name: VmName) -> None:
        with self._lock:  # from now on an end of its run is this run's (run_ended)
            watch = self._watch(name)
            watch.running_since = self.parts.clock.monotonic()
            watch.ours = True
            watch.asked = False
        declined: list[bool] = []

        def wanted() -> bool:
            """Asked under the VM's write lock: a stop through the API that came first (or a
            spec no longer desired running) means no start."""
            spec = self.parts.specs.load(name)
            with self._lock:
                ok = not watch.settled and spec is not None and spec.desired == "running"
            if not ok:
                declined.append(True)
            return ok

        try:
            self.parts.power.start(name, cause="reconciler", wanted=wanted)  # tells vm.state
        except (VmLimit, TartVmLimit):
            with self._lock:
                watch.running_since, watch.ours = None, False
                before = watch.condition
                watch.condition = "waiting-for-slot"  # not a failure: no backoff
                watch.retry_at = None
            if before != "waiting-for-slot":
                self._tell(RECONCILE_WAITING, name, {"condition": "waiting-for-slot"})
            return
        except (OperatorError, TartError) as exc:
            with self._lock:
                since, watch.running_since, watch.ours = watch.running_since, None, False
                failures = watch.failures + 1
            if since is not None:  # else run_ended has counted that end already
                self._back_off(name, failures, f"start: {exc.detail}")
            return
        if declined:  # a stop came first: nothing was started
            with self._lock:
                watch.running_since, watch.ours = None, False
            return
        with self._lock:
            watch.restart_count += 1
            if watch.running_since is not None:  # still running (else run_ended has seen it end)
                watch.ours = self.parts.runs.live_run(name) is not None
                watch.condition = None
                watch.retry_at = None
                watch.settled = False
