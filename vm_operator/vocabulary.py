"""The words and bounds of the API's contract, each declared once: the enums a record's field
takes and the limits a request's field keeps to.

Both sides read them: the server (the store checks its records with them, the core the
declarative file, the API derives its JSON schemas and parameters from them) and the client
(its options and records). So this module imports nothing of the package; the client, which
imports nothing of the server, may import it (tests/unit/test_layers.py).
"""

from __future__ import annotations

from typing import Literal, get_args

# --- a VM as Tart lists it ---------------------------------------------------------------------

VM_STATES = ("running", "suspended", "stopped")  # Tart's; the API adds "creating"
VM_SOURCES = ("local", "oci")

# --- a VM's desired state (its spec) and what the reconciler makes of it ----------------------

Desired = Literal["running", "stopped"]
DESIRED: tuple[Desired, ...] = get_args(Desired)

RestartPolicy = Literal["never", "on-failure", "always"]
RESTART_POLICIES: tuple[RestartPolicy, ...] = get_args(RestartPolicy)

Condition = Literal["backing-off", "crash-loop", "waiting-for-slot", "exited", "missing"]
CONDITIONS: tuple[Condition, ...] = get_args(Condition)

# --- long-running operations ---------------------------------------------------------------------

OperationKind = Literal["create", "delete", "pull", "prune"]
OPERATION_KINDS: tuple[OperationKind, ...] = get_args(OperationKind)

OperationState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
OPERATION_STATES: tuple[OperationState, ...] = get_args(OperationState)
FINISHED_STATES: tuple[OperationState, ...] = ("succeeded", "failed", "cancelled")

# --- the resources of a VM (tart set), inclusive bounds ----------------------------------------

CPU: tuple[int, int] = (1, 64)
MEMORY_MB: tuple[int, int] = (512, 1048576)
DISK_GB: tuple[int, int] = (1, 4096)
DISPLAY_PATTERN = "[1-9][0-9]{0,4}x[1-9][0-9]{0,4}"  # WIDTHxHEIGHT in pixels, matched whole
DISPLAY_EXAMPLE = "1920x1080"

# --- pruning Tart's image cache (tart prune), inclusive bounds ------------------------------------

PRUNE_OLDER_THAN_DAYS: tuple[int, int] = (0, 36500)
PRUNE_SPACE_BUDGET_GB: tuple[int, int] = (0, 1048576)
