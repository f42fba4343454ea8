"""Every way a Tart call can fail, as exceptions without HTTP in them.

Tart's refusals are classified here, from its own message (``command_error``): each kind of
refusal is a subclass of ``TartCommandError``, so that the core can catch the one it expects
(``TartNotRunning`` on a stop, say) and the edge's catalogue can map each to its problem. The
failures of the SSH transport are ``TransportError`` subclasses, one per cause.
"""

from __future__ import annotations

CONTAINER_TART = "/app/bin/tart-binary"  # where the image looks for the mounted Tart binary


def tart_advice(binary: str) -> str:
    """How to make Tart available, for where the operator runs.

    The image is the one place that looks for Tart at CONTAINER_TART (its VM_OPERATOR_TART):
    there Tart is mounted, not installed. Anywhere else the operator runs natively.
    """
    if binary == CONTAINER_TART:
        return (f"Mount the Tart binary (or the bundled simulator, bin/tart-simulator) "
                f"at {CONTAINER_TART}, or point VM_OPERATOR_TART / --tart at it.")
    return ("Install Tart (brew install cirruslabs/cli/tart) or point --tart / VM_OPERATOR_TART "
            "at it; to try the API without Tart, run vm-operator --demo.")


def unavailable_advice(path: str) -> str:
    """What to do when the health probe finds Tart cannot be run at ``path`` (as ``locate``
    names it: a local path, or ``ssh://host tart`` over the SSH transport)."""
    if path.startswith("ssh://"):
        return ("Check that the host answers SSH with the configured key and known_hosts "
                "(VM_OPERATOR_TART_SSH and its VM_OPERATOR_SSH_* settings) and that Tart is "
                "installed there; GET /vms answers with the exact error.")
    return tart_advice(path)


class TartError(Exception):
    """A Tart call did not give the operator what it asked for."""

    @property
    def detail(self) -> str:
        """What a client is told."""
        return str(self)


class TartUnavailable(TartError):
    """The binary is missing or cannot be executed: nothing Tart-shaped can be served."""

    def __init__(self, message: str, binary: str = "") -> None:
        super().__init__(message)
        self.binary = binary  # the path that could not be run, so advice can fit it

    @property
    def detail(self) -> str:
        return f"{self}. {tart_advice(self.binary)}"


def binary_unavailable(binary: str, exc: OSError) -> TartUnavailable:
    """Why the binary (Tart, or the ssh client) could not be started."""
    if isinstance(exc, FileNotFoundError):
        return TartUnavailable(f"the Tart binary {binary!r} does not exist", binary)
    if isinstance(exc, PermissionError):
        return TartUnavailable(f"the Tart binary {binary!r} is not executable", binary)
    return TartUnavailable(f"the Tart binary {binary!r} cannot run: {exc.strerror}", binary)


class TartTimeout(TartError):
    """Tart outlived its timeout; the process was killed."""


class GuestTimeout(TartTimeout):
    """A ``tart exec`` outlived the timeout its caller gave: its process group was killed."""


class TartBadOutput(TartError):
    """Tart exited 0 but printed something that is not what Tart prints."""


class RunStillAlive(TartError):
    """A ``tart run`` launched earlier for this VM still lives: do not launch another."""


# --- Tart's refusals ----------------------------------------------------------------------


class TartCommandError(TartError):
    """Tart ran and refused, with its own message on stderr and a non-zero exit code.

    This class itself is a refusal the operator does not classify; ``command_error`` builds
    the subclass that Tart's message names.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class TartVmMissing(TartCommandError):
    """``the specified VM "NAME" does not exist``"""


class TartAlreadyRunning(TartCommandError):
    """``VM "NAME" is already running!``"""


class TartNotRunning(TartCommandError):
    """``VM "NAME" is not running``"""


class TartVmLimit(TartCommandError):
    """``The number of VMs exceeds the system limit``"""


class TartNoIp(TartCommandError):
    """``no IP address found, is your VM running?``"""


class TartSuspendUnsupported(TartCommandError):
    """``You can only suspend macOS VMs`` (a usage error: a Linux guest)."""


class TartNotSuspendable(TartCommandError):
    """``... it was not started with --suspendable`` (a suspend of a VM run without it)."""


class TartVmExists(TartCommandError):
    """``VM "NAME" already exists`` (``tart create``; ``tart rename``'s ``target VM NEW
    already exists``). ``tart clone`` never says it: it silently replaces NEW."""


class TartVmIsRunning(TartCommandError):
    """``VM "NAME" is running`` (``tart delete`` of a running VM)."""


class TartInvalidResources(TartCommandError):
    """``tart set`` refused the resources: below the image's minimum (``VM should have N CPU
    cores at minimum (requested M)``, ``... bytes of memory at minimum ...``) or a disk that
    would shrink (``new disk size of ... should be larger than the current disk size ...``)."""


class TartNotLocalName(TartCommandError):
    """``<new-name> should be a local name`` (a ``/`` in the name of a VM to create)."""


class TartImageMissing(TartCommandError):
    """The registry has no such image: ``... "pulling manifest", code: 404 ... manifest
    unknown``."""


class TartGuestAgentUnreachable(TartCommandError):
    """``tart exec`` could not reach the guest: ``Failed to connect to the VM using its control
    socket: REASON, is the Tart Guest Agent running?`` (an image without the agent, such as
    Cirrus Labs' ``-vanilla`` ones, or a guest that has not booted yet)."""


# Tart's own messages (see TART_FACTS.md), the first match wins: "is running" after the two
# longer messages that contain "running".
_REFUSALS: tuple[tuple[str, type[TartCommandError]], ...] = (
    ("does not exist", TartVmMissing),
    ("failed to rename a non-existent local VM", TartVmMissing),
    ("is already running", TartAlreadyRunning),
    ("is not running", TartNotRunning),
    ("\" is running", TartVmIsRunning),
    ("already exists", TartVmExists),
    ("at minimum (requested", TartInvalidResources),
    ("should be larger than the current disk size", TartInvalidResources),
    ("should be a local name", TartNotLocalName),
    ("manifest unknown", TartImageMissing),
    ("exceeds the system limit", TartVmLimit),
    ("no IP address found", TartNoIp),
    ("You can only suspend macOS VMs", TartSuspendUnsupported),
    ("not started with --suspendable", TartNotSuspendable),
    ("is the Tart Guest Agent running?", TartGuestAgentUnreachable),
)


def command_error(message: str, exit_code: int) -> TartCommandError:
    """Classify a refusal by Tart from its message."""
    for needle, kind in _REFUSALS:
        if needle in message:
            return kind(message, exit_code)
    return TartCommandError(message, exit_code)


# --- the SSH transport's own failures ---------------------------------------------------------


class TransportError(TartUnavailable):
    """ssh could not run Tart on the host; the message says why and what to do."""

    @property
    def detail(self) -> str:
        return str(self)


class RemoteTartUnavailable(TransportError):
    """Tart cannot be run on the SSH host (exit 126/127)."""


class SshHostKeyMismatch(TransportError):
    """The host presented a key other than the pinned one."""


class SshAuthFailed(TransportError):
    """The host refused the operator's key."""


class TartHostUnreachable(TransportError):
    """The host did not answer."""


class SshFailed(TransportError):
    """ssh failed for another reason."""


class SshUnavailable(TransportError):
    """The local ssh client cannot be run."""
