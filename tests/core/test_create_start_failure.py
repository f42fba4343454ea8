"""A create whose start step fails keeps the VM stopped, as its operation says: desired stopped,
so the reconciler does not start it afterwards (a real operator over HTTP driving the Tart
simulator, whose every ``tart run`` fails)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from conftest import Operator, wait_for

JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
FAST = ["--reconcile-interval", "0.2"]
WAIT = 20.0  # seconds: a bound on every wait


def created(op: Operator, **body: Any) -> dict[str, Any]:
    """Create the VM and wait for its operation to finish; the finished operation."""
    status, headers, data = op.request("POST", "/vms", JSON, json.dumps(body))
    assert status == 202, data
    location = dict(headers)["Location"]
    def done() -> dict[str, Any] | None:
        status, doc = op.json("GET", location)
        assert status == 200, doc
        return doc if doc["finished_at"] else None
    return wait_for(done, timeout=WAIT, message=f"{location} finished")


def actions(op: Operator, name: str) -> list[dict[str, Any]]:
    status, found = op.json("GET", f"/vms/{name}/events")
    assert status == 200, found
    return [event["data"] for event in found["events"] if event["type"] == "reconcile.action"]


def test_a_vm_kept_stopped_after_its_start_failed_is_desired_stopped_and_not_started(
        operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(env={"TART_SIM_RUN_FAIL": "no bootable disk"}, args=FAST)
    kept = created(op, name="kept", start=True, restart="always", **{"from": "ubuntu-runner"})
    assert (kept["state"], kept["result"]) == ("failed", "VM kept, stopped: the start failed")
    status, vm = op.json("GET", "/vms/kept")
    assert status == 200 and vm["state"] == "stopped"
    assert vm["spec"]["desired"] == "stopped"
    # a VM desired running after it ("probe" sorts after "kept": each pass compares "kept"
    # first): once the reconciler has tried it twice (its backoff of 1 s between), it has
    # compared "kept" after any backoff of it had ended
    assert created(op, name="probe", **{"from": "ubuntu-runner"})["state"] == "succeeded"
    status, _ = op.json("PATCH", "/vms/probe", MERGE, json.dumps({"desired": "running",
                                                                    "restart": "always"}))
    assert status == 200
    wait_for(lambda: len(actions(op, "probe")) >= 2, timeout=WAIT,
             message="the reconciler tried to start probe twice")
    assert actions(op, "kept") == []
    status, vm = op.json("GET", "/vms/kept")
    assert status == 200 and vm["state"] == "stopped" and vm["spec"]["desired"] == "stopped"
