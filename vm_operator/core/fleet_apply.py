"""Applying the declarative file (``--config``): at start-up, on SIGHUP and on POST /config/reload.

Each apply reads the file afresh. A file that cannot be read or is refused (core/fleet.py)
changes nothing: the specs stay as the last apply or API call left them (``config.refused``,
``ConfigRefused`` for the API). Else the plan of the file against the VMs as they are is
carried out, step by step, through the same parts the API uses:

- create: ``VmService.create`` (an operation: clone, set, start when desired running), its
  spec from the file (source ``config``);
- set: resources through ``VmManager.patch`` while the VM is stopped; while it runs, the change
  waits for its next stop (the run's end, or a look every few seconds); the desired power and
  the restart policy through ``set_desired(source="config")``;
- start, stop: ``set_desired(source="config")``, and the reconciler brings the VM there;
- delete (prune): ``VmManager.delete`` with force.

One step that fails (Tart refuses, the VM is held) does not stop the others: it is reported.
Applies run one at a time; SIGHUP only asks (``request``), the applier's own thread applies.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypedDict

from vm_operator.core.create import CreateRequest
from vm_operator.core.errors import (
    ConfigRefused,
    OperatorError,
    VmBusy,
    VmHeldByOperation,
    VmRunning,
)
from vm_operator.core.event_catalogue import (
    CONFIG_APPLIED,
    CONFIG_REFUSED,
    REFUSED_ELSEWHERE,
    StepAbout,
    Withheld,
)
from vm_operator.core.fleet import (
    Fleet,
    FleetError,
    Observed,
    Resources,
    Step,
    decode_fleet,
    observed_spec,
    observed_vm,
    plan,
)
from vm_operator.core.lifecycle import operation_path
from vm_operator.core.reservations import copied_vm
from vm_operator.core.service import VmService
from vm_operator.core.vm_manage import VmPatch
from vm_operator.core.worker import Worker
from vm_operator.store.state import StateDirError
from vm_operator.tart.errors import TartError
from vm_operator.tart.names import VmName, name_problem

log = logging.getLogger(__name__)

Outcome = Literal["done", "queued", "desired", "deferred", "failed"]
Report = Callable[[Mapping[str, object]], None]
RETRY_INTERVAL = 5.0  # seconds between two looks at the VMs whose change waits for their stop
DELETE_TIMEOUT = 30  # seconds Tart gives a VM to shut down when prune deletes it


class StepJson(TypedDict):
    kind: str
    vm: str
    step: str
    outcome: Outcome
    operation: str | None
    error: str | None


class AppliedJson(TypedDict):
    file: str
    cause: str
    steps: list[StepJson]


@dataclass(frozen=True)
class StepOutcome:
    """What became of one step: ``done``; ``queued`` (an operation does it: ``operation``);
    ``desired`` (the spec says so, the reconciler brings the VM there); ``deferred`` (applied
    at the VM's next stop); ``failed`` (``error`` says why)."""

    step: Step
    outcome: Outcome
    operation: str | None = None
    error: str | None = None

    def to_json(self) -> StepJson:
        return {"kind": self.step.kind, "vm": self.step.vm, "step": self.step.render(),
                "outcome": self.outcome, "operation": self.operation, "error": self.error}

    def line(self) -> str:
        """The step and its outcome on one line (the log line's and ``config.applied``'s)."""
        return f"{self.step.render()}: {self.outcome}" + (f" ({self.error})" if self.error
                                                          else "")

    def about(self) -> StepAbout:
        """What its line is about. A create from a local VM names that VM, which a watcher
        limited to VM patterns may not touch: it is then told the line without it, nor the
        error (Tart's words may name it too)."""
        entry = self.step.entry
        source = (copied_vm("create", entry.source)
                  if self.step.kind == "create" and entry is not None else None)
        hidden = f"{self.step.render(source_shown=False)}: {self.outcome}"
        return StepAbout(self.step.vm, self.outcome == "failed", source,
                         hidden if source is not None else "")


@dataclass(frozen=True)
class Applied:
    """One apply of the file: what it did, step by step."""

    file: str
    cause: str  # start-up, SIGHUP, api
    steps: tuple[StepOutcome, ...]

    def to_json(self) -> AppliedJson:
        return {"file": self.file, "cause": self.cause,
                "steps": [step.to_json() for step in self.steps]}


class FleetApplier(Worker):
    """Applies the file at ``path`` to the VMs of ``service``."""

    def __init__(self, service: VmService, path: str, report: Report = lambda record: None,
                 retry_interval: float = RETRY_INTERVAL) -> None:
        super().__init__("config-apply")
        self.service = service
        self.path = path
        self.report = report  # one log record (the operator's JSON lines)
        self.retry_interval = retry_interval
        self._apply_lock = threading.Lock()  # one apply at a time
        self._lock = threading.Lock()  # _pending, _requested
        self._pending: dict[str, Resources] = {}  # resources waiting for the VM's stop
        self._requested: list[str] = []  # causes of the applies asked for (SIGHUP, start-up)
        service.runs.on_run_ended(self._run_ended)

    # --- the thread: asked-for applies, and the changes that wait for a stop ------------------

    def request(self, cause: str) -> None:
        """Apply the file soon, on the applier's thread (a signal's handler asks only this of
        the main thread's loop, which calls it)."""
        with self._lock:
            self._requested.append(cause)
        self._wake.set()

    def _run_ended(self, name: str) -> None:
        with self._lock:
            waiting = name in self._pending
        if waiting:
            self._wake.set()

    def _loop(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                causes, self._requested = self._requested, []
                waiting = bool(self._pending)
            for cause in causes[-1:]:  # several asks in a row: one apply of the file as it is
                try:
                    self.apply(cause)
                except ConfigRefused:
                    pass  # reported (log line, config.refused); the previous state stays
                except Exception:  # one bad apply must not end the thread
                    log.exception("applying %s failed", self.path)
            try:
                self.apply_pending()
            except Exception:
                log.exception("applying the changes waiting for a stop failed")
            self._wake.wait(self.retry_interval if waiting else None)
            self._wake.clear()

    # --- applying -------------------------------------------------------------------------------

    def read(self) -> Fleet:
        """The file's fleet, or ConfigRefused (reported: a log record and ``config.refused``)."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
            return decode_fleet(data)
        except OSError as exc:
            error = FleetError(f"cannot read the file: {exc.strerror or exc}")
        except FleetError as exc:
            error = exc
        self.report({"level": "warning", "event": "config-refused", "file": self.path,
                     "line": error.line, "key": error.key, "error": error.reason})
        # a watcher limited to VM patterns: where and why only when about one of its VMs
        self.service.events.publish(CONFIG_REFUSED.about(None, {
            "file": self.path, "error": error.reason, "line": error.line, "key": error.key},
            withheld=Withheld(error.vm, REFUSED_ELSEWHERE)))
        raise ConfigRefused(f"{self.path}: {error}; nothing was changed, the previous desired "
                            "state stays in force", error.line, error.key)

    def apply(self, cause: str) -> Applied:
        """Read the file and carry out its plan; ConfigRefused when the file is refused."""
        with self._apply_lock:
            fleet = self.read()
            steps = plan(fleet, self.observe(fleet))
            with self._lock:
                self._pending.clear()  # the new plan says again what still waits
            applied = Applied(self.path, cause, tuple(self._do(step) for step in steps))
        lines: list[str] = [done.line() for done in applied.steps]
        failed = sum(1 for done in applied.steps if done.outcome == "failed")
        self.report({"level": "warning" if failed else "info", "event": "config-applied",
                     "file": self.path, "cause": cause, "steps": lines})
        self.service.events.publish(CONFIG_APPLIED.about(None, {
            "file": self.path, "cause": cause, "steps": lines, "failed": failed, "error": None},
            tuple(done.about() for done in applied.steps)))
        return applied

    def observe(self, fleet: Fleet) -> list[Observed]:
        """The local VMs the plan compares: those the file names, and with prune every other."""
        found = []
        for vm in self.service.list_vms(fresh=True):
            name = vm["name"]
            if vm["source"] != "local" or name_problem(name) is not None:
                continue
            if name not in fleet.names() and not fleet.prune:
                continue
            if vm["state"] == "creating":
                found.append(Observed(name, "creating"))
                continue
            try:  # a spec made for a gone VM is dropped: this VM is not the file's (ownership)
                saved = self.service.owned_spec(VmName(name))
            except (TartError, StateDirError) as exc:
                log.warning("%s: VM %r left out of this apply: %s", self.path, name, exc)
                continue
            spec = None if saved is None else observed_spec(dict(saved.to_json()))
            if name not in fleet.names():  # a candidate for prune: its resources do not matter
                found.append(Observed(name, vm["state"], spec=spec))
                continue
            try:
                detail = self.service.describe(VmName(name))
            except (OperatorError, TartError):  # deleted meanwhile
                continue
            found.append(observed_vm(detail, spec))
        return found

    def _do(self, step: Step) -> StepOutcome:
        try:
            return self._carry_out(step)
        except (OperatorError, TartError, StateDirError) as exc:
            detail = exc.detail if isinstance(exc, OperatorError | TartError) else str(exc)
            return StepOutcome(step, "failed", error=detail)

    def _carry_out(self, step: Step) -> StepOutcome:
        name = VmName(step.vm)
        entry = step.entry
        if step.kind == "delete":
            kept = self.service.manage.delete(name, force=True, timeout=DELETE_TIMEOUT,
                                              cause="config",
                                              guard=lambda: self._not_prunable(name))
            if kept is not None:
                return StepOutcome(step, "failed", error=f"not deleted: {kept}")
            return StepOutcome(step, "done")
        assert entry is not None  # every other step is of a VM of the file
        if step.kind == "create":
            res = entry.resources
            op = self.service.create(CreateRequest(
                name=name, source=entry.source, cpu=res.cpu, memory_mb=res.memory_mb,
                disk_gb=res.disk_gb, display=res.display, start=entry.desired == "running",
                ephemeral=entry.ephemeral, restart=entry.restart or "never",
                spec_source="config"))
            return StepOutcome(step, "queued", operation=operation_path(op.id))
        if step.kind in ("start", "stop"):
            self.service.set_desired(name, desired="running" if step.kind == "start"
                                     else "stopped", restart=entry.restart, source="config")
            return StepOutcome(step, "desired")
        # set: the desired state and policy now, the resources now or at the next stop
        keys = {change.key for change in step.changes}
        if keys & {"desired", "restart"}:
            self.service.set_desired(name, desired=entry.desired if "desired" in keys else None,
                                     restart=entry.restart if "restart" in keys else None,
                                     source="config")
        resources = step.resources()
        if resources == Resources():
            return StepOutcome(step, "done")
        if step.deferred:
            with self._lock:
                self._pending[name] = resources
            self._wake.set()
            return StepOutcome(step, "deferred")
        self._patch(name, resources)
        return StepOutcome(step, "done")

    def _not_prunable(self, name: VmName) -> str | None:
        """Asked with the VM held, just before prune deletes it: the VM may have been deleted
        and made again by hand, or taken over through the API, since the plan looked."""
        spec = self.service.owned_spec(name)
        if spec is None or spec.source != "config" or spec.created_at is None:
            return "since the plan, it became a VM the file did not create (left alone)"
        return None

    def _patch(self, name: VmName, res: Resources) -> None:
        self.service.manage.patch(name, VmPatch(cpu=res.cpu, memory_mb=res.memory_mb,
                                                disk_gb=res.disk_gb, display=res.display))

    def pending(self) -> dict[str, Resources]:
        with self._lock:
            return dict(self._pending)

    def apply_pending(self) -> None:
        """The resource changes that waited for their VM to stop: made, now that it has."""
        waiting = self.pending()
        if not waiting:
            return
        states = {vm["name"]: vm["state"] for vm in self.service.list_vms()}
        for name, resources in waiting.items():
            if name not in states:  # deleted meanwhile: nothing to change
                self._drop_pending(name, resources)
                continue
            if states[name] != "stopped":
                continue
            try:
                self._patch(VmName(name), resources)
            except (VmRunning, VmHeldByOperation, VmBusy):
                continue  # started again, or busy meanwhile: at its next stop, then
            except (OperatorError, TartError, StateDirError) as exc:
                detail = exc.detail if isinstance(exc, OperatorError | TartError) else str(exc)
                self._drop_pending(name, resources)  # refused (e.g. below the minimum): reported
                self.report({"level": "warning", "event": "config-deferred-change-failed",
                             "file": self.path, "vm": name, "error": detail})
                continue
            self._drop_pending(name, resources)
            self.report({"level": "info", "event": "config-deferred-change-applied",
                         "file": self.path, "vm": name})

    def _drop_pending(self, name: str, resources: Resources) -> None:
        with self._lock:
            if self._pending.get(name) == resources:  # not replaced by a later apply
                del self._pending[name]
