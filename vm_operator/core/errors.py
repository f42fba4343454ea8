"""The refusals of the core (transitional: still HTTP problems; step 2 makes them domain
exceptions)."""

from __future__ import annotations

from vm_operator.edge.errors import ApiError
from vm_operator.store.state import StateDirError


def oci_image(name: str, action: str) -> ApiError:
    """Every action that needs a local VM refuses an OCI image the same way."""
    return ApiError(
        409,
        "oci-image",
        "Tart runs only local VMs",
        f'"{name}" is an OCI image: clone it to a local VM first '
        f"(tart clone {name} NEW-NAME), then {action} that",
    )


def not_running(name: str, detail: str = "") -> ApiError:
    return ApiError(409, "not-running", "The VM is not running",
                    f'VM "{name}" is not running' + (f": {detail}" if detail else ""))


NOT_SUSPENDABLE_TITLE = "The VM was not started suspendable"
HOW_TO_SUSPEND = ("stop it (POST /vms/{name}/stop), then start it with "
                  "POST /vms/{name}/start?suspendable=true")


def not_suspendable(name: str, tart_message: str = "") -> ApiError:
    said = f" (Tart: {tart_message})" if tart_message else ""
    return ApiError(409, "not-suspendable", NOT_SUSPENDABLE_TITLE,
                    f'VM "{name}" was not started with ?suspendable=true, so it cannot be '
                    f"suspended{said}: {HOW_TO_SUSPEND}")


def state_dir_problem(exc: StateDirError) -> ApiError:
    return ApiError(
        503, "state-dir-unwritable", "The state directory cannot be written",
        f"{exc}. Make {exc.root} a directory the operator can write (VM_OPERATOR_STATE_DIR / "
        "--state-dir)", state_dir=str(exc.root),
    )
