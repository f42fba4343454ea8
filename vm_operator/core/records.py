"""The records the core answers with: JSON-ready, typed (TypedDict)."""

from __future__ import annotations

from typing import TypedDict

from vm_operator.store.operation_records import OperationJson
from vm_operator.store.state import RunRecord
from vm_operator.tart.records import Vm, VmInfo
from vm_operator.vocabulary import Condition, Desired, RestartPolicy

NO_INFO: VmInfo = {"os": None, "cpu": None, "memory_mb": None, "disk_format": None,
                   "display": None}


class VmDetail(Vm, VmInfo):
    """A VM with ``tart get``'s fields and the record of the run that owns it."""

    last_run: RunRecord | None


class ReadyVmDetail(VmDetail):
    """GET /vms/{name}: the detail, with whether the guest is ready and its IP address (null
    while Tart reports none, and whenever the VM does not run)."""

    ready: bool
    ip: str | None


class ChangedVm(Vm):
    """A VM after a start, stop or suspend: ``changed`` tells whether anything changed."""

    changed: bool


class CreatingVm(TypedDict):
    """A VM an operation is creating: Tart has not got it (whole) yet, so what only Tart could
    tell is null; ``operation`` is the path of the create."""

    name: str
    source: str  # "local"
    state: str  # "creating"
    status: str  # "creating"
    running: bool  # False
    disk_gb: None
    size_gb: None
    accessed: None
    operation: str


class CreatingVmDetail(CreatingVm, VmInfo):
    """GET /vms/{name} of a VM being created: no ``tart get`` fields, no run."""

    last_run: None
    ready: bool  # False
    ip: None


class TartStatus(TypedDict):
    """Where Tart is, whether it can be run, and its version once known."""

    path: str
    available: bool
    version: str | None


def detail(vm: Vm, info: VmInfo, last_run: RunRecord | None) -> VmDetail:
    return {**vm, **info, "last_run": last_run}


def changed(vm: Vm, did: bool) -> ChangedVm:
    return {**vm, "changed": did}


class SpecView(TypedDict):
    """A VM's spec as GET /vms/{name} shows it (``spec``)."""

    desired: Desired | None  # null: no wish
    restart: RestartPolicy
    source: str  # api or config: who said so last
    created_at: str | None  # when the operator created the VM; null: made another way


class LastExit(TypedDict):
    """How the VM's last run ended, as the reconciler saw it: an exit code, a signal that
    killed it, or neither (an end it only noticed: exit unknown)."""

    exit_code: int | None
    signal: int | None
    at: str


class DesiredStatus(TypedDict):
    """The desired-state fields of a VM's detail: its spec (or null) and the reconciler's view
    of it: how often it restarted the VM, how its last run ended, when it tries again and why
    it waits (``condition``)."""

    spec: SpecView | None
    restart_count: int
    last_exit: LastExit | None
    next_attempt_at: str | None
    condition: Condition | None


class ManagedVmDetail(ReadyVmDetail, DesiredStatus):
    """GET /vms/{name}: the VM, its last run, its readiness, its spec and the reconciler's
    view of it."""


class StartedReadyVm(ManagedVmDetail):
    """POST /vms/{name}/start?wait=ready: the detail once ready, ``changed`` as a start's."""

    changed: bool


class CreatingManagedVmDetail(CreatingVmDetail, DesiredStatus):
    """GET /vms/{name} of a VM being created."""


ProblemDocument = dict[str, object]


class OperationDoc(OperationJson[ProblemDocument]):
    """GET /operations/{id}: the operation, its error as a problem document (built by
    ``api/operations.operation_document``; the ``operation.*`` events carry the same)."""
