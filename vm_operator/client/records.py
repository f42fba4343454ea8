"""Typed records of the API's answers, read from its JSON.

Reading is strict about the fields the client uses (a missing or mistyped one means the
answer is not the operator's, ``BadAnswer``) and ignores fields it does not know, so a newer
operator that adds fields still works with this client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vm_operator.vocabulary import FINISHED_STATES


class BadAnswer(ValueError):
    """A 2xx answer whose JSON is not what vm-operator sends."""


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...],
           optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    # bool is an int in Python: a count or a size must not be true/false
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise BadAnswer(f"field {key!r} is missing or not a {_kind_name(kind)}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadAnswer(f"{what} is not a JSON object")
    return data


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem document, as the operator answers every refusal."""

    type: str
    title: str
    status: int
    detail: str

    @property
    def slug(self) -> str:
        """The problem type's last segment (``oci-image`` of ``/problems/oci-image``)."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    @classmethod
    def from_json(cls, data: Any) -> Problem:
        obj = _object(data, "the problem document")
        return cls(type=_field(obj, "type", str), title=_field(obj, "title", str),
                   status=_field(obj, "status", int), detail=_field(obj, "detail", str))


@dataclass(frozen=True)
class Vm:
    """One entry of ``GET /vms``."""

    name: str
    source: str
    state: str
    running: bool
    disk_gb: int | None
    size_gb: int | None
    accessed: str | None

    @classmethod
    def from_json(cls, data: Any) -> Vm:
        obj = _object(data, "a VM")
        return cls(name=_field(obj, "name", str), source=_field(obj, "source", str),
                   state=_field(obj, "state", str), running=_field(obj, "running", bool),
                   disk_gb=_field(obj, "disk_gb", int, optional=True),
                   size_gb=_field(obj, "size_gb", int, optional=True),
                   accessed=_field(obj, "accessed", str, optional=True))


def vm_list(data: Any) -> list[Vm]:
    if not isinstance(data, list):
        raise BadAnswer("the VM list is not a JSON array")
    return [Vm.from_json(item) for item in data]


@dataclass(frozen=True)
class LastRun:
    """The ``tart run`` that owns a VM (``last_run`` of ``GET /vms/{name}``)."""

    started_at: str
    finished_at: str | None
    exit_code: int | None
    exit_code_known: bool
    error: str | None
    pid: int | None
    suspendable: bool

    @classmethod
    def from_json(cls, data: Any) -> LastRun:
        obj = _object(data, "last_run")
        return cls(started_at=_field(obj, "started_at", str),
                   finished_at=_field(obj, "finished_at", str, optional=True),
                   exit_code=_field(obj, "exit_code", int, optional=True),
                   exit_code_known=bool(obj.get("exit_code_known", False)),
                   error=_field(obj, "error", str, optional=True),
                   pid=_field(obj, "pid", int, optional=True),
                   suspendable=bool(obj.get("suspendable", False)))


@dataclass(frozen=True)
class Spec:
    """What the operator keeps a VM as (``spec`` of ``GET /vms/{name}``)."""

    desired: str | None  # running, stopped; None: no wish
    restart: str
    source: str  # api, config

    @classmethod
    def from_json(cls, data: Any) -> Spec:
        obj = _object(data, "spec")
        return cls(desired=_field(obj, "desired", str, optional=True),
                   restart=_field(obj, "restart", str), source=_field(obj, "source", str))


@dataclass(frozen=True)
class LastExit:
    """How a VM's last run ended, as the operator saw it (``last_exit``)."""

    exit_code: int | None
    signal: int | None
    at: str

    @classmethod
    def from_json(cls, data: Any) -> LastExit:
        obj = _object(data, "last_exit")
        return cls(exit_code=_field(obj, "exit_code", int, optional=True),
                   signal=_field(obj, "signal", int, optional=True), at=_field(obj, "at", str))


@dataclass(frozen=True)
class VmDetail:
    """``GET /vms/{name}``: the list fields, Tart's settings, the last run, readiness and
    address, and the desired state with what the reconciler makes of it. The fields an older
    operator did not send are None (``spec`` None also when the operator only observes it)."""

    vm: Vm
    os: str | None
    cpu: int | None
    memory_mb: int | None
    disk_format: str | None
    display: str | None
    last_run: LastRun | None
    ready: bool | None = None
    ip: str | None = None
    spec: Spec | None = None
    restart_count: int | None = None
    last_exit: LastExit | None = None
    next_attempt_at: str | None = None
    condition: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> VmDetail:
        obj = _object(data, "a VM")
        run, spec, ended = obj.get("last_run"), obj.get("spec"), obj.get("last_exit")
        return cls(vm=Vm.from_json(obj), os=_field(obj, "os", str, optional=True),
                   cpu=_field(obj, "cpu", int, optional=True),
                   memory_mb=_field(obj, "memory_mb", int, optional=True),
                   disk_format=_field(obj, "disk_format", str, optional=True),
                   display=_field(obj, "display", str, optional=True),
                   last_run=None if run is None else LastRun.from_json(run),
                   ready=_field(obj, "ready", bool, optional=True),
                   ip=_field(obj, "ip", str, optional=True),
                   spec=None if spec is None else Spec.from_json(spec),
                   restart_count=_field(obj, "restart_count", int, optional=True),
                   last_exit=None if ended is None else LastExit.from_json(ended),
                   next_attempt_at=_field(obj, "next_attempt_at", str, optional=True),
                   condition=_field(obj, "condition", str, optional=True))


@dataclass(frozen=True)
class Change:
    """The answer of start, stop and suspend: the VM afterwards, and whether it changed."""

    vm: Vm
    changed: bool

    @classmethod
    def from_json(cls, data: Any) -> Change:
        obj = _object(data, "a VM")
        return cls(vm=Vm.from_json(obj), changed=_field(obj, "changed", bool))


@dataclass(frozen=True)
class VmIp:
    name: str
    ip: str

    @classmethod
    def from_json(cls, data: Any) -> VmIp:
        obj = _object(data, "the IP answer")
        return cls(name=_field(obj, "name", str), ip=_field(obj, "ip", str))


@dataclass(frozen=True)
class TartStatus:
    path: str
    available: bool
    version: str | None


@dataclass(frozen=True)
class HealthDetails:
    message: str
    timestamp: str
    version: str
    tart: TartStatus


@dataclass(frozen=True)
class Health:
    """The status, and the details: None when the operator told the status only, as it does
    to a request whose Host is not its address and that carries no token."""

    status: str
    details: HealthDetails | None

    @classmethod
    def from_json(cls, data: Any) -> Health:
        obj = _object(data, "the health answer")
        status = _field(obj, "status", str)
        if "tart" not in obj:
            return cls(status, None)
        tart = _object(obj.get("tart"), "tart")
        return cls(status, HealthDetails(
            message=_field(obj, "message", str), timestamp=_field(obj, "timestamp", str),
            version=_field(obj, "version", str),
            tart=TartStatus(path=_field(tart, "path", str),
                            available=_field(tart, "available", bool),
                            version=_field(tart, "version", str, optional=True))))


@dataclass(frozen=True)
class LogChunk:
    """``GET /vms/{name}/logs``: the bytes, and where they sit in the whole run log.

    ``omitted`` (header ``Vm-Operator-Log-Omitted-Bytes``) counts the bytes of the log before
    ``data``, so ``end`` is the log's length when it was read: the offset the next read
    continues from. ``truncated`` (``Vm-Operator-Log-Truncated``) says the server's 4 MiB
    limit cut what was asked for.
    """

    data: bytes
    omitted: int
    truncated: bool

    @property
    def end(self) -> int:
        return self.omitted + len(self.data)


# --- long-running operations, images, the host, events ----------------------------------------

@dataclass(frozen=True)
class OperationError:
    """Why an operation failed: its problem document, with Tart's own message when Tart
    refused (``tart_message``)."""

    problem: Problem
    tart_message: str | None

    @classmethod
    def from_json(cls, data: Any) -> OperationError:
        obj = _object(data, "an operation's error")
        return cls(problem=Problem.from_json(obj),
                   tart_message=_field(obj, "tart_message", str, optional=True))


@dataclass(frozen=True)
class Operation:
    """``GET /operations/{id}``: a create, delete, pull or prune, and how far it got."""

    id: str
    kind: str
    vm: str | None
    image: str | None
    state: str
    phase: str | None
    progress: int | None
    cancel_requested: bool
    created_at: str
    finished_at: str | None
    error: OperationError | None
    result: str | None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def target(self) -> str:
        """What it works on: the VM, else the image, else ``-`` (a prune)."""
        return self.vm or self.image or "-"

    @classmethod
    def from_json(cls, data: Any) -> Operation:
        obj = _object(data, "an operation")
        error = obj.get("error")
        return cls(id=_field(obj, "id", str), kind=_field(obj, "kind", str),
                   vm=_field(obj, "vm", str, optional=True),
                   image=_field(obj, "image", str, optional=True),
                   state=_field(obj, "state", str), phase=_field(obj, "phase", str, optional=True),
                   progress=_field(obj, "progress", int, optional=True),
                   cancel_requested=_field(obj, "cancel_requested", bool),
                   created_at=_field(obj, "created_at", str),
                   finished_at=_field(obj, "finished_at", str, optional=True),
                   error=None if error is None else OperationError.from_json(error),
                   result=_field(obj, "result", str, optional=True))


def operation_list(data: Any) -> list[Operation]:
    if not isinstance(data, list):
        raise BadAnswer("the operation list is not a JSON array")
    return [Operation.from_json(item) for item in data]


@dataclass(frozen=True)
class Image:
    """One entry of ``GET /images``: a reference of Tart's OCI cache (a tag or a digest)."""

    ref: str
    kind: str
    disk_gb: int
    size_gb: int
    accessed: str | None

    @classmethod
    def from_json(cls, data: Any) -> Image:
        obj = _object(data, "an image")
        return cls(ref=_field(obj, "ref", str), kind=_field(obj, "kind", str),
                   disk_gb=_field(obj, "disk_gb", int), size_gb=_field(obj, "size_gb", int),
                   accessed=_field(obj, "accessed", str, optional=True))


def image_list(data: Any) -> list[Image]:
    if not isinstance(data, list):
        raise BadAnswer("the image list is not a JSON array")
    return [Image.from_json(item) for item in data]


@dataclass(frozen=True)
class Host:
    """``GET /host``: Tart, its home's disk, macOS guests against the limit, operations."""

    tart_path: str
    tart_version: str | None
    tart_home: str
    disk_total_bytes: int
    disk_free_bytes: int
    macos_running: int
    macos_limit: int | None
    operations_running: int
    operations_queued: int
    operations_max_queued: int

    @classmethod
    def from_json(cls, data: Any) -> Host:
        obj = _object(data, "the host")
        tart = _object(obj.get("tart"), "tart")
        disk = _object(obj.get("disk"), "disk")
        guests = _object(obj.get("macos_guests"), "macos_guests")
        ops = _object(obj.get("operations"), "operations")
        return cls(tart_path=_field(tart, "path", str),
                   tart_version=_field(tart, "version", str, optional=True),
                   tart_home=_field(obj, "tart_home", str),
                   disk_total_bytes=_field(disk, "total_bytes", int),
                   disk_free_bytes=_field(disk, "free_bytes", int),
                   macos_running=_field(guests, "running", int),
                   macos_limit=_field(guests, "limit", int, optional=True),
                   operations_running=_field(ops, "running", int),
                   operations_queued=_field(ops, "queued", int),
                   operations_max_queued=_field(ops, "max_queued", int))


@dataclass(frozen=True)
class Ready:
    """The answer of ``start --wait ready``: the VM (as start answers it) and, when the
    server says so, the address its guest accepted a connection on."""

    change: Change
    ip: str | None

    @classmethod
    def from_json(cls, data: Any) -> Ready:
        obj = _object(data, "a VM")
        return cls(change=Change.from_json(obj), ip=_field(obj, "ip", str, optional=True))


@dataclass(frozen=True)
class Event:
    """One event of ``GET /events``. ``data`` depends on ``type`` (see the event contract);
    the client reads the few keys it shows and keeps the rest as sent."""

    id: int
    type: str
    time: str
    vm: str | None
    data: dict[str, Any]

    @classmethod
    def from_json(cls, data: Any) -> Event:
        obj = _object(data, "an event")
        return cls(id=_field(obj, "id", int), type=_field(obj, "type", str),
                   time=_field(obj, "time", str), vm=_field(obj, "vm", str, optional=True),
                   data=_object(obj.get("data", {}), "an event's data"))
