"""Typed records of the API's answers, read from its JSON.

Reading is strict about the fields the client uses (a missing or mistyped one means the
answer is not the operator's, ``BadAnswer``) and ignores fields it does not know, so a newer
operator that adds fields still works with this client. A record whose JSON is flat is read
from its fields' annotations (``read``): a field is its JSON member of the same name, ``X |
None`` may be null or absent. tests/unit/test_client_records_match_schemas.py holds each record
to the server's schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from vm_operator.client.reading import BadAnswer, Record, field, json_object, read_list
from vm_operator.vocabulary import FINISHED_STATES

__all__ = ["BadAnswer", "Change", "Event", "Health", "HealthDetails", "Host", "Image", "LastExit",
           "LastRun", "LogChunk", "Operation", "OperationError", "Problem", "Ready", "Spec",
           "TartStatus", "Vm", "VmDetail", "VmIp", "image_list", "operation_list", "vm_list"]


@dataclass(frozen=True)
class Problem(Record):
    """An RFC 9457 problem document, as the operator answers every refusal."""

    type: str
    title: str
    status: int
    detail: str

    @property
    def slug(self) -> str:
        """The problem type's last segment (``oci-image`` of ``/problems/oci-image``)."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    what: ClassVar[str] = "the problem document"


@dataclass(frozen=True)
class Vm(Record):
    """One entry of ``GET /vms``."""

    name: str
    source: str
    state: str
    running: bool
    disk_gb: int | None
    size_gb: int | None
    accessed: str | None

    what: ClassVar[str] = "a VM"


def vm_list(data: Any) -> list[Vm]:
    return read_list(Vm, data, "the VM list")


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
        obj = json_object(data, "last_run")
        return cls(started_at=field(obj, "started_at", str),
                   finished_at=field(obj, "finished_at", str, optional=True),
                   exit_code=field(obj, "exit_code", int, optional=True),
                   exit_code_known=bool(obj.get("exit_code_known", False)),
                   error=field(obj, "error", str, optional=True),
                   pid=field(obj, "pid", int, optional=True),
                   suspendable=bool(obj.get("suspendable", False)))


@dataclass(frozen=True)
class Spec(Record):
    """What the operator keeps a VM as (``spec`` of ``GET /vms/{name}``)."""

    desired: str | None  # running, stopped; None: no wish
    restart: str
    source: str  # api, config

    what: ClassVar[str] = "spec"


@dataclass(frozen=True)
class LastExit(Record):
    """How a VM's last run ended, as the operator saw it (``last_exit``)."""

    exit_code: int | None
    signal: int | None
    at: str

    what: ClassVar[str] = "last_exit"


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
        obj = json_object(data, "a VM")
        run, spec, ended = obj.get("last_run"), obj.get("spec"), obj.get("last_exit")
        return cls(vm=Vm.from_json(obj), os=field(obj, "os", str, optional=True),
                   cpu=field(obj, "cpu", int, optional=True),
                   memory_mb=field(obj, "memory_mb", int, optional=True),
                   disk_format=field(obj, "disk_format", str, optional=True),
                   display=field(obj, "display", str, optional=True),
                   last_run=None if run is None else LastRun.from_json(run),
                   ready=field(obj, "ready", bool, optional=True),
                   ip=field(obj, "ip", str, optional=True),
                   spec=None if spec is None else Spec.from_json(spec),
                   restart_count=field(obj, "restart_count", int, optional=True),
                   last_exit=None if ended is None else LastExit.from_json(ended),
                   next_attempt_at=field(obj, "next_attempt_at", str, optional=True),
                   condition=field(obj, "condition", str, optional=True))


@dataclass(frozen=True)
class Change:
    """The answer of start, stop and suspend: the VM afterwards, and whether it changed."""

    vm: Vm
    changed: bool

    @classmethod
    def from_json(cls, data: Any) -> Change:
        obj = json_object(data, "a VM")
        return cls(vm=Vm.from_json(obj), changed=field(obj, "changed", bool))


@dataclass(frozen=True)
class VmIp(Record):
    name: str
    ip: str
    what: ClassVar[str] = "the IP answer"


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
        obj = json_object(data, "the health answer")
        status = field(obj, "status", str)
        if "tart" not in obj:
            return cls(status, None)
        tart = json_object(obj.get("tart"), "tart")
        return cls(status, HealthDetails(
            message=field(obj, "message", str), timestamp=field(obj, "timestamp", str),
            version=field(obj, "version", str),
            tart=TartStatus(path=field(tart, "path", str),
                            available=field(tart, "available", bool),
                            version=field(tart, "version", str, optional=True))))


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
        obj = json_object(data, "an operation's error")
        return cls(problem=Problem.from_json(obj),
                   tart_message=field(obj, "tart_message", str, optional=True))


@dataclass(frozen=True)
class Operation(Record):
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
    started_at: str | None
    finished_at: str | None
    error: OperationError | None
    result: str | None
    what: ClassVar[str] = "an operation"

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def target(self) -> str:
        """What it works on: the VM, else the image, else ``-`` (a prune)."""
        return self.vm or self.image or "-"


def operation_list(data: Any) -> list[Operation]:
    return read_list(Operation, data, "the operation list")


@dataclass(frozen=True)
class Image(Record):
    """One entry of ``GET /images``: a reference of Tart's OCI cache (a tag or a digest)."""

    ref: str
    kind: str
    disk_gb: int
    size_gb: int
    accessed: str | None
    what: ClassVar[str] = "an image"


def image_list(data: Any) -> list[Image]:
    return read_list(Image, data, "the image list")


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
        obj = json_object(data, "the host")
        tart = json_object(obj.get("tart"), "tart")
        disk = json_object(obj.get("disk"), "disk")
        guests = json_object(obj.get("macos_guests"), "macos_guests")
        ops = json_object(obj.get("operations"), "operations")
        return cls(tart_path=field(tart, "path", str),
                   tart_version=field(tart, "version", str, optional=True),
                   tart_home=field(obj, "tart_home", str),
                   disk_total_bytes=field(disk, "total_bytes", int),
                   disk_free_bytes=field(disk, "free_bytes", int),
                   macos_running=field(guests, "running", int),
                   macos_limit=field(guests, "limit", int, optional=True),
                   operations_running=field(ops, "running", int),
                   operations_queued=field(ops, "queued", int),
                   operations_max_queued=field(ops, "max_queued", int))


@dataclass(frozen=True)
class Ready:
    """The answer of ``start --wait ready``: the VM (as start answers it) and, when the
    server says so, the address its guest accepted a connection on."""

    change: Change
    ip: str | None

    @classmethod
    def from_json(cls, data: Any) -> Ready:
        obj = json_object(data, "a VM")
        return cls(change=Change.from_json(obj), ip=field(obj, "ip", str, optional=True))


@dataclass(frozen=True)
class Event(Record):
    """One event of ``GET /events``. ``data`` depends on ``type`` (see the event contract);
    the client reads the few keys it shows and keeps the rest as sent."""

    id: int
    type: str
    time: str
    vm: str | None
    data: dict[str, Any]
    what: ClassVar[str] = "an event"
