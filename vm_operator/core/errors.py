"""The refusals of the core: domain exceptions, with no HTTP in them.

Each says what went wrong in ``detail`` (the words a client reads) and, where it matters, a
typed extra (``VmLimit.limit``, ``VmBusy.retry_after``, ``StateDirUnwritable.path``). The
edge's catalogue (edge/problems/) names the classes each problem type answers, and so a
status for each.
"""

from __future__ import annotations

from vm_operator.store.state import StateDirError


class OperatorError(Exception):
    """A request the core refuses, or cannot carry out."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class VmNotFound(OperatorError):
    """Tart has no VM of this name."""


class OciImage(OperatorError):
    """The action needs a local VM, and the name is an OCI image."""


class NotRunning(OperatorError):
    """The action needs a running VM."""


class NotSuspendable(OperatorError):
    """The VM's run was not started ``--suspendable``."""


class AlreadyRunning(OperatorError):
    """A ``tart run`` the operator launched for the VM still lives."""


class VmLimit(OperatorError):
    """Starting the VM would exceed the cap on running macOS guests."""

    def __init__(self, detail: str, limit: int) -> None:
        super().__init__(detail)
        self.limit = limit


class VmBusy(OperatorError):
    """Too many writes to the VM are already waiting."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds


class VmStarting(OperatorError):
    """A stop found the operator's own ``tart run`` of the VM alive, but Tart did not list the
    VM running within the stop's timeout: there is nothing Tart would stop yet."""


class IpWaitersFull(OperatorError):
    """Too many ``tart ip`` wait for addresses already (of other VMs: one per VM is shared)."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after  # seconds


class StartTimeout(OperatorError):
    """Tart did not report the VM running within the start timeout."""


class ReadyTimeout(OperatorError):
    """A VM did not become ready (an IP address, then a TCP connection) in time."""

    def __init__(self, detail: str, waiting_for: str, ip: str | None, port: int) -> None:
        super().__init__(detail)
        self.waiting_for = waiting_for  # "ip" or "connection"
        self.ip = ip  # None while Tart reported no address
        self.port = port


class RunEnded(OperatorError):
    """``tart run`` ended before Tart reported the VM running, without a refusal to classify."""


class StateDirUnwritable(OperatorError):
    """The state directory cannot be used."""

    def __init__(self, detail: str, path: str) -> None:
        super().__init__(detail)
        self.path = path


class NoLogs(OperatorError):
    """The operator never started the VM: there is no run log."""


class NotReady(OperatorError):
    """Tart cannot list the VMs, so the operator cannot serve them."""


# --- the lifecycle: create, configure, delete, and the operations that do it ----------------


class VmExists(OperatorError):
    """A VM of this name exists already, or is being created."""


class VmRunning(OperatorError):
    """The change needs a stopped VM (delete, configure), and it runs or is suspended."""


class VmHeldByOperation(OperatorError):
    """An operation (create, delete) holds the VM's name; ``operation`` is its path."""

    def __init__(self, detail: str, operation: str | None) -> None:
        super().__init__(detail)
        self.operation = operation  # /operations/{id}, None when a request holds the name


class InvalidResources(OperatorError):
    """Tart refused the resources: below the image's minimum, or a disk that would shrink."""


class ImageNotFound(OperatorError):
    """No such OCI image: not in Tart's cache, or not in its registry."""


class OperationMissing(OperatorError):
    """No operation of this id (never, or past the bounded history)."""

    def __init__(self, operation_id: str) -> None:
        super().__init__(f"no operation {operation_id!r}")
        self.operation_id = operation_id


class OperationFinished(OperatorError):
    """The operation has finished, or its work has and it is finishing: too late to cancel it.
    ``state`` is the state it has (``running`` while it finishes)."""

    def __init__(self, operation_id: str, state: str) -> None:
        super().__init__(f"operation {operation_id} has {state} already")
        self.operation_id = operation_id
        self.state = state


class OperationsFull(OperatorError):
    """``limit`` operations are waiting already; try again in ``retry_after`` seconds."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"{limit} operations are waiting already; retry in {retry_after} s")
        self.limit = limit
        self.retry_after = retry_after  # seconds


class OperationsClosed(OperatorError):
    """The operator is shutting down and takes no new operations."""


# --- the declarative file (--config) ----------------------------------------------------------


class ConfigRefused(OperatorError):
    """The declarative file cannot be read or is refused whole; ``line`` and ``key`` say where
    (None when unknown). Nothing was changed."""

    def __init__(self, detail: str, line: int | None, key: str | None) -> None:
        super().__init__(detail)
        self.line = line
        self.key = key


class NoConfigFile(OperatorError):
    """No declarative file is configured (--config / VM_OPERATOR_CONFIG), so none to reload."""


# --- the words, where several places say the same ---------------------------------------------

HOW_TO_SUSPEND = ("stop it (POST /vms/{name}/stop), then start it with "
                  "POST /vms/{name}/start?suspendable=true")


def vm_not_found(name: str) -> VmNotFound:
    return VmNotFound(f'the specified VM "{name}" does not exist')


def oci_image(name: str, action: str) -> OciImage:
    """Every action that needs a local VM refuses an OCI image the same way."""
    return OciImage(f'"{name}" is an OCI image: clone it to a local VM first '
                    f"(tart clone {name} NEW-NAME), then {action} that")


def not_running(name: str, why: str) -> NotRunning:
    return NotRunning(f'VM "{name}" is not running: {why}')


def not_suspendable(name: str, tart_message: str = "") -> NotSuspendable:
    said = f" (Tart: {tart_message})" if tart_message else ""
    return NotSuspendable(f'VM "{name}" was not started with ?suspendable=true, so it cannot be '
                          f"suspended{said}: {HOW_TO_SUSPEND}")


def state_dir_unwritable(exc: StateDirError) -> StateDirUnwritable:
    return StateDirUnwritable(
        f"{exc}. Make {exc.root} a directory the operator can write (VM_OPERATOR_STATE_DIR / "
        "--state-dir)", str(exc.root),
    )
