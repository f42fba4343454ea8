"""The catalogue of events: every type the bus carries, the shape of its data, what it means.

This is **the** list of event types, as ``edge/problems.py`` is the list of problem types.
Each entry is an ``EventType``: its ``type`` (what the stream's ``event:`` line and the
event's JSON say), ``data`` (the TypedDict of its ``data`` member: mypy checks every
publisher's data against it), ``meaning`` (README's Events table says the same, and a test
compares them) and an ``example`` of its data. A part publishes with
``bus.publish(ENTRY.about(vm, data))``: no type is written as a bare string anywhere else.

Adding an event is one entry here (and its row in README's Events table, its case in the
client's ``events.SUMMARIES`` and in the page's ``describeEvent``: tests fail until all agree).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypedDict, TypeVar

from vm_operator.core.records import OperationDoc

D = TypeVar("D", bound=Mapping[str, object])


@dataclass(frozen=True)
class StepAbout:
    """What one line of an event's ``data["steps"]`` is about (``config.applied``): never
    written out, it tells a watcher limited to VM patterns which lines are its own."""

    vm: str
    failed: bool
    source: str | None = None  # the local VM a create copies: its line names it
    without_source: str = ""  # the line as told to a watcher that may not touch ``source``


@dataclass(frozen=True)
class Withheld:
    """Members of an event's data that may name a VM other than the one the event is about
    (a ``config.refused``'s error, line and key; a create's local source): never written out,
    it tells a watcher limited to VM patterns that may not touch ``vm`` ``instead`` of them."""

    vm: str | None  # the VM they name; None: not known to be one VM (any such watcher)
    instead: Mapping[str, object]  # the members, as such a watcher is told them

    def hidden_from(self, may_touch: Callable[[str], bool]) -> bool:
        """Whether a caller that may touch only some VMs is told ``instead``."""
        return self.vm is None or not may_touch(self.vm)

    def told(self, data: Mapping[str, object],
             may_touch: Callable[[str], bool]) -> Mapping[str, object]:
        """``data`` (an event's, an operation's document) as a caller that may touch only
        some VMs is told it: ``instead`` over those members when they are hidden from it."""
        return {**data, **self.instead} if self.hidden_from(may_touch) else data


@dataclass(frozen=True)
class NewEvent:
    """An event to publish: the bus gives it its id and time (``events.Event``)."""

    type: str
    vm: str | None  # the VM it is about; None: about none
    data: Mapping[str, object]
    steps: tuple[StepAbout, ...] = ()  # one per line of data["steps"], when it has them
    withheld: Withheld | None = None  # what names another VM, for a scoped watcher


@dataclass(frozen=True)
class EventType(Generic[D]):
    """One type of event: its name on the wire, the shape of its data, what it means."""

    type: str
    data: builtins.type[D]
    meaning: str
    example: D

    def about(self, vm: str | None, data: D, steps: tuple[StepAbout, ...] = (),
              withheld: Withheld | None = None) -> NewEvent:
        """An event of this type about ``vm`` (mypy checks ``data`` against its shape);
        ``steps``: what each line of its ``steps`` member is about, when it has one;
        ``withheld``: the members that may name another VM, when it has some."""
        return NewEvent(self.type, vm, data, steps, withheld)

    @property
    def fields(self) -> tuple[str, ...]:
        """The members of its data, in declaration order."""
        return tuple(self.data.__annotations__)


# --- the shapes of the data ----------------------------------------------------------------------

# ``from`` is a Python keyword: this TypedDict is declared by call.
VmStateData = TypedDict("VmStateData", {
    "from": str | None,  # None: the VM's first state (after vm.created)
    "to": str,  # Tart's state: running, stopped, suspended
    "cause": str,  # api, outside, exited, reconciler (see VM_STATE's meaning)
    "exit_code": int | None,  # cause exited: how the run ended (None: unknown)
})


class VmCreatedData(TypedDict):
    operation: str | None  # the create's operation id; None: made outside the operator


class VmDeletedData(TypedDict):
    cause: str  # api, outside, ephemeral, config


class VmReadyData(TypedDict):
    ip: str | None  # the guest's address (always known once ready)
    port: int  # the ready port that accepted a connection


class VmExecData(TypedDict):
    command: str  # the program's name: the command's first word, never its arguments
    client: str | None  # the client's address
    duration_ms: int
    exit_code: int | None  # None unless the command ended by itself
    outcome: Literal["exited", "timeout", "refused", "closed"]


class VmConnectData(TypedDict):
    port: int  # the guest's port
    client: str  # the client's address
    duration_s: float
    bytes_to_guest: int
    bytes_from_guest: int


class ReconcileActionData(TypedDict):
    action: Literal["start", "stop"]
    reason: str


class ReconcileFailedData(TypedDict):
    error: str
    restart_count: int
    next_attempt_at: str | None  # None: no attempt is planned


class ReconcileWaitingData(TypedDict):
    condition: str  # crash-loop, waiting-for-slot


class ConfigAppliedData(TypedDict):
    file: str
    cause: str  # start-up, SIGHUP, api
    steps: list[str]  # each step of the plan and its outcome, as one line
    failed: int  # how many steps failed
    error: None


class ConfigRefusedData(TypedDict):
    file: str
    error: str
    line: int | None  # 1-based
    key: str | None  # dotted, e.g. vms.ci.cpu


# --- the catalogue ---------------------------------------------------------------------------------

_OPERATION: OperationDoc = {
    "id": "Xq3v9Rk2LmP0aBcD", "kind": "create", "vm": "ci", "image": "ghcr.io/org/img:1",
    "state": "queued", "phase": None, "progress": None, "cancel_requested": False,
    "created_at": "2026-11-29T18:50:01.123Z", "started_at": None, "finished_at": None,
    "error": None, "result": None}
_RUNNING: OperationDoc = {**_OPERATION, "state": "running", "phase": "cloning",
                          "started_at": "2026-11-29T18:50:01.200Z"}
_ENDED: OperationDoc = {**_RUNNING, "finished_at": "2026-11-29T18:51:10.000Z"}

VM_STATE = EventType[VmStateData](
    "vm.state", VmStateData,
    "A VM's state changed: to is Tart's state (running, stopped, suspended), from the one "
    "before (null: its first); cause is api (a start, stop or suspend through this "
    "operator), outside (someone used Tart directly: tart run, tart stop on the host), "
    "exited (a tart run the operator launched ended by itself; exit_code says how) or "
    "reconciler",
    {"from": "stopped", "to": "running", "cause": "api", "exit_code": None})
VM_CREATED = EventType[VmCreatedData](
    "vm.created", VmCreatedData,
    "A VM appeared: operation is the create's id, or null when it was made outside; the "
    "VM's first vm.state (from null) follows",
    {"operation": "Xq3v9Rk2LmP0aBcD"})
VM_DELETED = EventType[VmDeletedData](
    "vm.deleted", VmDeletedData,
    "A VM is gone: cause is api, outside, ephemeral (its run ended) or config",
    {"cause": "api"})
VM_READY = EventType[VmReadyData](
    "vm.ready", VmReadyData,
    "A run was first seen ready: Tart reports its IP and a connection to the ready port "
    "succeeded (once per run)",
    {"ip": "192.168.64.5", "port": 22})
VM_EXEC = EventType[VmExecData](
    "vm.exec", VmExecData,
    "A command was run in the guest (POST /vms/{name}/exec, or its WebSocket GET), an a"
    "udit trail: only the program's name (the command's first word), the client's address, how long it took, its exit code (null unless it ended by itself) and outcome (exited, timeout, refused, closed: the WebSocket ended first); never its arguments, output or stdin",
    {"command": "sw_vers", "client": "127.0.0.1", "duration_ms": 412, "exit_code": 0,
     "outcome": "exited"})
VM_CONNECT = EventType[VmConnectData](
    "vm.connect", VmConnectData,
    "A tunnel to a guest's port (GET /vms/{name}/port-forward) ended: an audit trail, never what it carried",
    {"port": 22, "client": "127.0.0.1", "duration_s": 84.2, "bytes_to_guest": 5120,
     "bytes_from_guest": 786432})
OPERATION_QUEUED = EventType[OperationDoc](
    "operation.queued", OperationDoc, "An operation was queued", _OPERATION)
OPERATION_STARTED = EventType[OperationDoc](
    "operation.started", OperationDoc, "An operation began to run", _RUNNING)
OPERATION_PROGRESS = EventType[OperationDoc](
    "operation.progress", OperationDoc,
    "A running operation reached a new phase, a new whole percent, or was asked to cancel "
    "(at most one per whole percent or phase)", {**_RUNNING, "progress": 42})
OPERATION_SUCCEEDED = EventType[OperationDoc](
    "operation.succeeded", OperationDoc, "An operation succeeded",
    {**_ENDED, "state": "succeeded"})
OPERATION_FAILED = EventType[OperationDoc](
    "operation.failed", OperationDoc, "An operation failed (error says why)",
    {**_ENDED, "state": "failed", "error": {
        "type": "/problems/tart-failed", "title": "Tart failed", "status": 502,
        "detail": "tart clone failed"}})
OPERATION_CANCELLED = EventType[OperationDoc](
    "operation.cancelled", OperationDoc, "An operation was cancelled",
    {**_ENDED, "state": "cancelled", "cancel_requested": True})
RECONCILE_ACTION = EventType[ReconcileActionData](
    "reconcile.action", ReconcileActionData,
    "The reconciler starts or stops a VM for its desired state (reason says why)",
    {"action": "start", "reason": "desired running"})
RECONCILE_FAILED = EventType[ReconcileFailedData](
    "reconcile.failed", ReconcileFailedData,
    "A start or stop of the reconciler failed, or a run it keeps ended: next_attempt_at is "
    "when it tries again (null: it does not)",
    {"error": "its run ended (exit code 1); restart: on-failure", "restart_count": 1,
     "next_attempt_at": "2026-11-29T18:50:02.123Z"})
RECONCILE_WAITING = EventType[ReconcileWaitingData](
    "reconcile.waiting", ReconcileWaitingData,
    "A VM desired running waits: crash-loop (it kept failing) or waiting-for-slot (the macOS "
    "guest limit)",
    {"condition": "crash-loop"})
CONFIG_APPLIED = EventType[ConfigAppliedData](
    "config.applied", ConfigAppliedData,
    "The declarative file was applied (at start-up, on SIGHUP or POST /config/reload): each "
    "step with its outcome, and how many failed",
    {"file": "/etc/vm-operator/vms.toml", "cause": "SIGHUP", "steps": ["start ci: done"],
     "failed": 0, "error": None})
CONFIG_REFUSED = EventType[ConfigRefusedData](
    "config.refused", ConfigRefusedData,
    "The declarative file was refused whole (nothing changed): error, with its line and key",
    {"file": "/etc/vm-operator/vms.toml", "error": "must be true or false", "line": 3,
     "key": "prune"})

# What a watcher limited to VM patterns is told of a refusal not about one of its VMs (an entry
# ``[vms.NAME]`` of the file it may touch): that the file was refused, not where nor why.
REFUSED_ELSEWHERE: Mapping[str, object] = {
    "error": "refused for a reason not about a VM of this token", "line": None, "key": None}

CATALOGUE: tuple[EventType[Any], ...] = (
    VM_STATE, VM_CREATED, VM_DELETED, VM_READY, VM_EXEC, VM_CONNECT,
    OPERATION_QUEUED, OPERATION_STARTED, OPERATION_PROGRESS, OPERATION_SUCCEEDED,
    OPERATION_FAILED, OPERATION_CANCELLED,
    RECONCILE_ACTION, RECONCILE_FAILED, RECONCILE_WAITING,
    CONFIG_APPLIED, CONFIG_REFUSED,
)
EVENT_TYPES: Mapping[str, EventType[Any]] = {entry.type: entry for entry in CATALOGUE}
