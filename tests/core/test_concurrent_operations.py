"""Operations side by side, end to end: a real operator driving the Tart simulator, whose pulls
stall at a percentage (TART_SIM_PULL_HANG) until killed, so "a long pull" is one that never
ends by itself. What runs beside what is the rule of core/scheduling.py (its table:
tests/unit/core/test_operation_scheduling.py); here, that the queue's threads follow it.

The simulator is true to Tart's locks: the global lock only around a clone's copy, and one
download per registry host (a second pull from ghcr.io runs, and waits in Tart for the first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import OCI_NAME, Operator
from support import wait_for

UBUNTU = "ghcr.io/cirruslabs/ubuntu:latest"  # neither is in the demo's cache
SONOMA = "ghcr.io/cirruslabs/macos-sonoma-base:latest"
STALLED = {"TART_SIM_PULL_SECONDS": "0.3", "TART_SIM_PROGRESS_INTERVAL": "0.05",
           "TART_SIM_PULL_HANG": "10"}

Factory = Callable[..., Operator]


def submitted(op: Operator, path: str, body: dict[str, Any]) -> str:
    """POST an operation; its id."""
    doc = op.ok("POST", path, 202, body=body)
    return str(doc["id"])


def states(op: Operator) -> dict[str, str]:
    """Each listed operation's state, by id."""
    return {doc["id"]: doc["state"] for doc in op.ok("GET", "/operations")}


def state_of(op: Operator, op_id: str) -> str:
    return str(op.ok("GET", f"/operations/{op_id}")["state"])


def stalled(op: Operator, op_id: str) -> None:
    """Wait until the operation's download has stalled at the simulator's hang point."""
    wait_for(lambda: op.ok("GET", f"/operations/{op_id}")["progress"] == 10,
             message=f"{op_id} stalled at 10%")


def pulling(operator_factory: Factory) -> tuple[Operator, str]:
    """An operator whose pull of UBUNTU runs, stalled in its download; that pull's id."""
    op = operator_factory(env=STALLED)
    pull = submitted(op, "/images", {"ref": UBUNTU})
    stalled(op, pull)
    return op, pull


def cancel(op: Operator, op_id: str) -> None:
    """POST its cancel: answered once it ended (200) or while it still cleans up (202)."""
    status, doc = op.json("POST", f"/operations/{op_id}/cancel")
    assert status in (200, 202), doc


def ended(op: Operator, op_id: str) -> str:
    """Wait for the operation's end; its final state."""
    return str(wait_for(lambda: (s := state_of(op, op_id)) not in ("queued", "running") and s,
                        message=f"{op_id} finished"))


def test_a_create_from_a_cached_image_or_a_local_vm_succeeds_while_another_image_pulls(
        operator_factory: Factory) -> None:
    op, pull = pulling(operator_factory)
    for name, source in (("from-image", OCI_NAME), ("from-vm", "macos-sequoia-base")):
        create = submitted(op, "/vms", {"name": name, "from": source})
        assert ended(op, create) == "succeeded"
        assert state_of(op, pull) == "running"  # the create ended first
    assert op.detail("from-image")["state"] == "stopped"
    cancel(op, pull)
    assert ended(op, pull) == "cancelled"


def test_two_pulls_of_different_images_run_at_once(operator_factory: Factory) -> None:
    op = operator_factory(env=STALLED)
    first = submitted(op, "/images", {"ref": UBUNTU})
    second = submitted(op, "/images", {"ref": SONOMA})
    seen = states(op)
    assert (seen[first], seen[second]) == ("running", "running")


def test_operations_on_one_image_wait_for_each_other_in_arrival_order(
        operator_factory: Factory) -> None:
    op, pull = pulling(operator_factory)
    create = submitted(op, "/vms", {"name": "later", "from": UBUNTU})  # waits for that pull
    prune = submitted(op, "/images/prune", {"older_than_days": 1})  # waits: images in use
    local = submitted(op, "/vms", {"name": "beside", "from": "macos-sequoia-base"})
    assert ended(op, local) == "succeeded"  # nothing in common with the three: it went by
    assert (state_of(op, create), state_of(op, prune)) == ("queued", "queued")
    cancel(op, pull)
    assert ended(op, pull) == "cancelled"
    wait_for(lambda: state_of(op, create) == "running", message="the create runs")
    assert state_of(op, prune) == "queued"  # after the create from an image, not beside it
    cancel(op, create)
    assert ended(op, create) == "cancelled"
    assert ended(op, prune) == "succeeded"


def test_cancelling_one_running_operation_leaves_the_other_running(
        operator_factory: Factory) -> None:
    op, first = pulling(operator_factory)
    second = submitted(op, "/vms", {"name": "pulled", "from": SONOMA})  # a create that pulls
    assert state_of(op, second) == "running"
    cancel(op, first)
    assert ended(op, first) == "cancelled"
    stalled(op, second)  # it went on: Tart's registry lock freed, its download began
    assert state_of(op, second) == "running"


def test_a_restart_reports_every_running_operation_interrupted(
        operator_factory: Factory) -> None:
    first = operator_factory(env=STALLED)
    pull = submitted(first, "/images", {"ref": UBUNTU})
    create = submitted(first, "/vms", {"name": "half", "from": SONOMA})
    stalled(first, pull)
    seen = states(first)
    assert (seen[pull], seen[create]) == ("running", "running")
    code, _ = first.stop()
    assert code == 0
    second = operator_factory(env=STALLED, tart_home=first.tart_home,
                              state_dir=first.state_dir)
    for op_id in (pull, create):
        final = second.ok("GET", f"/operations/{op_id}")
        assert final["state"] == "failed", final
        assert final["error"]["detail"] == "interrupted by a restart"
    assert "half" not in [vm["name"] for vm in second.ok("GET", "/vms")]


def test_one_operation_per_vm_name_while_another_image_pulls(operator_factory: Factory) -> None:
    op = operator_factory(env=STALLED)
    create = submitted(op, "/vms", {"name": "twin", "from": UBUNTU})  # pulls, stalls
    stalled(op, create)
    op.problem("POST", "/vms", 409, "vm-exists", body={"name": "twin", "from": OCI_NAME})
    op.problem("DELETE", "/vms/twin", 409, "vm-busy-operation")
    assert [doc["id"] for doc in op.ok("GET", "/operations")] == [create]
    cancel(op, create)
    assert ended(op, create) == "cancelled"
