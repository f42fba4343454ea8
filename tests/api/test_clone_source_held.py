"""A create from a local VM holds that VM until it has finished, over a real server and the
simulator (whose clone hangs until killed): a DELETE or a PATCH of it meanwhile is refused with
409 ``vm-busy-operation`` naming the create, and leaves it whole; other creates may copy it too;
once the create has ended, it may be deleted."""

from __future__ import annotations

import json
from typing import Any

from support import wait_for

SOURCE = "ubuntu-runner"


def _state(op: Any, location: str) -> str:
    return str(op.ok("GET", location)["state"])


def test_a_vm_being_copied_is_neither_deleted_nor_changed(operator_factory: Any) -> None:
    op = operator_factory(env={"TART_SIM_HANG": "clone"})
    op.ok("POST", f"/vms/{SOURCE}/stop")  # stopped: a DELETE or a PATCH would do it at once
    create = op.ok("POST", "/vms", 202, {"name": "ubuntu-7", "from": SOURCE})
    location = f"/operations/{create['id']}"
    wait_for(lambda: op.ok("GET", location)["phase"] == "cloning", timeout=20,
             message="the clone under way")

    for method, path, body in [("DELETE", f"/vms/{SOURCE}", None),
                               ("DELETE", f"/vms/{SOURCE}?force=true", None),
                               ("PATCH", f"/vms/{SOURCE}", {"cpu": 3})]:
        status, doc = op.json(method, path, {"Content-Type": "application/json"} if body else {},
                              None if body is None else json.dumps(body))
        assert status == 409, (method, path, status, doc)
        assert doc["type"] == "/problems/vm-busy-operation", doc
        assert doc["operation"] == location and location in doc["detail"]
    assert op.ok("GET", f"/vms/{SOURCE}")["cpu"] != 3
    assert _state(op, location) == "running"

    # a second copy of it is no change to it: accepted (it waits for the first)
    second = op.ok("POST", "/vms", 202, {"name": "ubuntu-8", "from": SOURCE})
    op.ok("POST", f"{location}/cancel")
    wait_for(lambda: _state(op, location) == "cancelled", timeout=20, message="first cancelled")
    status, doc = op.json("DELETE", f"/vms/{SOURCE}")
    assert (status, doc["operation"]) == (409, f"/operations/{second['id']}")  # the second's turn
    op.ok("POST", f"/operations/{second['id']}/cancel")
    wait_for(lambda: _state(op, f"/operations/{second['id']}") == "cancelled", timeout=20,
             message="second cancelled")
    op.ok("DELETE", f"/vms/{SOURCE}", 204)  # held no more
