"""Creating VMs as operations, end to end: HTTP to a real operator driving the Tart
simulator. POST /vms, GET /operations[/{id}], POST /operations/{id}/cancel, DELETE
/operations/{id}, the creating state, ephemeral VMs, and what a restart of the operator leaves
behind.

The simulator's knobs keep pulls short (TART_SIM_PULL_SECONDS) or stall them at a percentage
(TART_SIM_PULL_HANG); ``Operator.calls`` is its log of the Tart calls the operator made.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Operator
from support import processes_with_tart_home, wait_for

from vm_operator.store.specs import SpecStore, VmSpec

UBUNTU = "ghcr.io/cirruslabs/ubuntu:latest"  # not in the demo's cache: a create pulls it
FAST = {"TART_SIM_PULL_SECONDS": "0.3", "TART_SIM_PROGRESS_INTERVAL": "0.05"}
JSON = {"Content-Type": "application/json"}

Factory = Callable[..., Operator]


def create(op: Operator, **body: Any) -> tuple[int, Any, dict[str, str]]:
    status, headers, data = op.request("POST", "/vms", JSON, json.dumps(body))
    return status, json.loads(data), dict(headers)


def operation(op: Operator, path: str) -> dict[str, Any]:
    status, doc = op.json("GET", path)
    assert status == 200, doc
    return doc  # type: ignore[no-any-return]


def finished(op: Operator, path: str, timeout: float = 20) -> dict[str, Any]:
    return wait_for(lambda: (doc := operation(op, path))["finished_at"] and doc,
                    timeout=timeout, message=f"{path} finished")


def tart_processes(op: Operator) -> list[int]:
    """Processes of this test's Tart home other than the operator itself."""
    return [pid for pid in processes_with_tart_home(op.tart_home) if pid != op.pid]


def metric_lines(op: Operator) -> list[str]:
    status, _, body = op.request("GET", "/metrics")
    assert status == 200
    return body.decode().splitlines()


def vm_names(op: Operator) -> list[str]:
    status, vms = op.json("GET", "/vms")
    assert status == 200
    return [vm["name"] for vm in vms]


# --- create ----------------------------------------------------------------------------------


def test_a_create_pulls_with_progress_rising_to_100_then_configures(
        operator_factory: Factory) -> None:
    op = operator_factory(env={"TART_SIM_PULL_SECONDS": "1.5",
                               "TART_SIM_PROGRESS_INTERVAL": "0.1"})
    status, doc, headers = create(op, name="ci", **{"from": UBUNTU}, cpu=3, memory_mb=4096,
                                  display="1280x800")
    assert status == 202, doc
    path = headers["Location"]
    assert path == f"/operations/{doc['id']}" and doc["kind"] == "create"
    assert (doc["vm"], doc["image"]) == ("ci", UBUNTU)
    seen: list[dict[str, Any]] = []
    listed: list[dict[str, Any]] = []

    def watch() -> bool:
        seen.append(operation(op, path))
        listed.extend(vm for vm in op.json("GET", "/vms")[1] if vm["name"] == "ci")
        return bool(seen[-1]["finished_at"])

    wait_for(watch, timeout=20, interval=0.05, message="the create finished")
    final = seen[-1]
    assert final["state"] == "succeeded", final
    progress = [doc["progress"] for doc in seen if doc["progress"] is not None]
    assert progress == sorted(progress), progress  # it only rises
    assert any(0 < value < 100 for value in progress), progress  # seen on its way
    assert progress[-1] == 100 == final["progress"]
    assert "pulling" in [doc["phase"] for doc in seen]
    # while it was created, GET /vms listed it as creating, with its operation
    creating = [vm for vm in listed if vm["state"] == "creating"]
    assert creating and creating[0]["operation"] == path and creating[0]["disk_gb"] is None
    status, vm = op.json("GET", "/vms/ci")
    assert status == 200 and vm["state"] == "stopped" and vm["source"] == "local"
    assert (vm["cpu"], vm["memory_mb"], vm["display"]) == (3, 4096, "1280x800")
    clone = op.calls("clone")
    assert len(clone) == 1 and clone[0].argv[-2:] == (UBUNTU, "ci")
    assert "--random-mac" in op.calls("set")[0].argv  # random_mac defaults to true


def test_the_creating_vm_in_detail_and_busy_for_power(operator_factory: Factory) -> None:
    op = operator_factory(env={**FAST, "TART_SIM_PULL_HANG": "40"})
    status, _doc, headers = create(op, name="slow", **{"from": UBUNTU})
    assert status == 202
    wait_for(lambda: operation(op, headers["Location"])["phase"] == "pulling",
             message="pulling")
    status, vm = op.json("GET", "/vms/slow")
    assert status == 200 and vm["state"] == "creating"
    assert vm["operation"] == headers["Location"] and vm["last_run"] is None
    status, listed = op.json("GET", "/vms?state=creating")
    assert status == 200 and [v["name"] for v in listed] == ["slow"]
    status, problem = op.json("POST", "/vms/slow/start")
    assert (status, problem["type"]) == (409, "/problems/vm-busy-operation")
    assert problem["operation"] == headers["Location"]


def test_two_concurrent_creates_of_one_name_one_wins(operator_factory: Factory) -> None:
    op = operator_factory(env=FAST)
    results: list[tuple[int, Any, dict[str, str]]] = []
    barrier = threading.Barrier(2)

    def post() -> None:
        barrier.wait()
        results.append(create(op, name="twin", **{"from": "ubuntu-runner"}))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(status for status, _, _ in results) == [202, 409]
    accepted = next(r for r in results if r[0] == 202)
    refused = next(r for r in results if r[0] == 409)
    assert refused[1]["type"] == "/problems/vm-exists"
    assert finished(op, accepted[2]["Location"])["state"] == "succeeded"
    assert len(op.calls("clone")) == 1


def test_a_create_over_an_existing_name_never_asks_tart_to_clone(operator: Operator) -> None:
    status, problem, _ = create(operator, name="ubuntu-runner", **{"from": UBUNTU})
    assert (status, problem["type"]) == (409, "/problems/vm-exists")
    assert operator.calls("clone") == []


def test_a_local_source_that_does_not_exist_is_404(operator: Operator) -> None:
    status, problem, _ = create(operator, name="new", **{"from": "no-such-vm"})
    assert (status, problem["type"]) == (404, "/problems/vm-not-found")
    assert operator.calls("clone") == []


@pytest.mark.parametrize(
    ("body", "pointers"),
    [
        ('{"name": "a/b", "from": "ubuntu-runner"}', ["/name"]),
        ('{"name": "a", "from": "ubuntu-runner", "colour": "red"}', ["/colour"]),
        ('{"name": "a"}', ["/from"]),
        ('{"name": "a", "from": "ubuntu-runner", "cpu": 0, "display": "big"}',
         ["/cpu", "/display"]),
        ('{"name": "a", "from": "ubuntu-runner", "start": "yes"}', ["/start"]),
    ],
)
def test_a_wrong_body_names_each_wrong_field(operator: Operator, body: str,
                                             pointers: list[str]) -> None:
    status, _, data = operator.request("POST", "/vms", JSON, body)
    problem = json.loads(data)
    assert (status, problem["type"]) == (400, "/problems/invalid-body"), problem
    assert sorted(error["pointer"] for error in problem["errors"]) == sorted(pointers)
    assert operator.calls("clone") == []


def test_a_body_with_a_key_twice_is_refused(operator: Operator) -> None:
    body = '{"name": "a", "from": "ubuntu-runner", "name": "b"}'
    status, _, data = operator.request("POST", "/vms", JSON, body)
    assert (status, json.loads(data)["type"]) == (400, "/problems/invalid-body")
    assert "a" not in vm_names(operator) and "b" not in vm_names(operator)


def test_an_image_the_registry_does_not_know_fails_the_operation(operator: Operator) -> None:
    status, _doc, headers = create(operator, name="x", **{"from": "ghcr.io/cirruslabs/nope:1"})
    assert status == 202
    final = finished(operator, headers["Location"])
    assert final["state"] == "failed"
    assert final["error"]["type"] == "/problems/image-not-found"
    assert "manifest unknown" in final["error"]["tart_message"]
    assert "x" not in vm_names(operator)


# --- cancel, restart, the bound --------------------------------------------------------------


def test_cancel_mid_pull_kills_tart_and_leaves_no_vm(operator_factory: Factory) -> None:
    op = operator_factory(env={**FAST, "TART_SIM_PULL_HANG": "30"})
    status, _doc, headers = create(op, name="doomed", **{"from": UBUNTU})
    path = headers["Location"]
    wait_for(lambda: operation(op, path)["progress"] == 30, message="stalled at 30%")
    assert tart_processes(op)  # Tart is pulling
    status, cancelled = op.json("POST", path + "/cancel")
    assert status in (200, 202), cancelled
    final = finished(op, path)
    assert final["state"] == "cancelled" and final["cancel_requested"] is True
    assert "doomed" not in vm_names(op)
    wait_for(lambda: tart_processes(op) == [], message="no Tart process left")
    status, problem = op.json("POST", path + "/cancel")
    assert (status, problem["type"]) == (409, "/problems/operation-finished")
    lines = metric_lines(op)
    assert 'vm_operator_operations_finished_total{kind="create",state="cancelled"} 1' in lines
    assert 'vm_operator_operations{state="running"} 0' in lines


def test_cancelling_a_create_after_its_clone_exists_stops_and_deletes_that_vm(
        operator_factory: Factory) -> None:
    """The clone is made and configured, its start is under way (the simulator's run gate holds
    ``tart run``): the cancel is seen once the start ends, and the cleanup stops the VM that now
    runs, deletes it and forgets its spec."""
    op = operator_factory(env={"TART_SIM_RUN_DELAY": "1"})  # time to close the gate first
    status, _doc, headers = create(op, name="doomed", start=True, **{"from": "ubuntu-runner"})
    assert status == 202
    path = headers["Location"]
    folder = op.tart_home / "vms" / "doomed"
    wait_for(folder.exists, message="the clone exists")
    (folder / ".tart-sim-run-gate").touch()
    wait_for(lambda: operation(op, path)["phase"] == "starting", message="starting")
    wait_for(lambda: any("doomed" in call.argv for call in op.calls("run")),
             message="tart run launched")
    assert (op.state_dir / "specs" / "doomed.json").exists()  # the create wrote its spec
    status, cancelled = op.json("POST", path + "/cancel")
    assert status in (200, 202), cancelled
    (folder / ".tart-sim-run-gate").unlink()  # the start goes on: the VM runs, then the cancel
    final = finished(op, path)
    assert final["state"] == "cancelled" and final["cancel_requested"] is True
    assert "doomed" not in vm_names(op)
    assert "doomed" not in op.tart("list", "--format", "json").stdout
    assert not folder.exists()
    assert not (op.state_dir / "specs" / "doomed.json").exists()
    wait_for(lambda: tart_processes(op) == [], message="no Tart process left (its run ended)")
    assert op.json("GET", "/vms/doomed")[0] == 404


def test_a_restart_mid_pull_fails_the_create_and_leaves_nothing(
        operator_factory: Factory) -> None:
    env = {**FAST, "TART_SIM_PULL_HANG": "20"}
    first = operator_factory(env=env)
    _status, doc, headers = create(first, name="half", **{"from": UBUNTU})
    path = headers["Location"]
    wait_for(lambda: operation(first, path)["progress"] == 20, message="stalled at 20%")
    code, _ = first.stop()
    assert code == 0
    assert processes_with_tart_home(first.tart_home) == []  # its Tart went with it
    second = operator_factory(env=env, tart_home=first.tart_home, state_dir=first.state_dir)
    final = operation(second, path)
    assert final["state"] == "failed", final
    assert final["error"]["type"] == "/problems/interrupted"
    assert final["error"]["detail"] == "interrupted by a restart"
    assert "half" not in vm_names(second)
    assert [o["id"] for o in second.json("GET", "/operations")[1]] == [doc["id"]]


def test_an_operator_killed_mid_pull_takes_tart_with_it(operator_factory: Factory) -> None:
    """SIGKILL: no shutdown code runs; Tart's guard sees the operator's pipe end and kills
    Tart, so no clone finishes a VM after the restart has cleaned up."""
    env = {**FAST, "TART_SIM_PULL_HANG": "20"}
    first = operator_factory(env=env)
    _status, _doc, headers = create(first, name="orphan", **{"from": UBUNTU})
    path = headers["Location"]
    wait_for(lambda: operation(first, path)["progress"] == 20, message="stalled at 20%")
    first.stop(signal.SIGKILL)
    wait_for(lambda: processes_with_tart_home(first.tart_home) == [],
             message="Tart gone with the operator")
    second = operator_factory(env=env, tart_home=first.tart_home, state_dir=first.state_dir)
    final = operation(second, path)
    assert (final["state"], final["error"]["type"]) == ("failed", "/problems/interrupted")
    assert "orphan" not in vm_names(second)


def test_past_the_queue_bound_a_create_is_503_with_retry_after(
        operator_factory: Factory) -> None:
    op = operator_factory(env={**FAST, "TART_SIM_PULL_HANG": "10"})
    statuses = []
    for number in range(18):  # one runs (stalled), sixteen wait, the next is turned away
        status, doc, headers = create(op, name=f"q{number}", **{"from": UBUNTU})
        statuses.append(status)
        if status == 503:
            assert doc["type"] == "/problems/queue-full"
            assert int(headers["Retry-After"]) > 0
            break
    assert statuses == [202] * 17 + [503]
    states = [o["state"] for o in op.json("GET", "/operations")[1]]
    assert states.count("running") == 1 and states.count("queued") == 16
    lines = metric_lines(op)
    assert 'vm_operator_operations{state="running"} 1' in lines
    assert 'vm_operator_operations{state="queued"} 16' in lines


def test_operations_unknown_ids_are_404(operator: Operator) -> None:
    for path in ("/operations/nope", "/operations/%2F..%2F"):
        status, problem = operator.json("GET", path)
        assert (status, problem["type"]) == (404, "/problems/operation-not-found")
    for method, path in (("DELETE", "/operations/nope"), ("POST", "/operations/nope/cancel")):
        status, problem = operator.json(method, path)
        assert (status, problem["type"]) == (404, "/problems/operation-not-found")


def test_deleting_an_operation_cancels_it_then_forgets_it_on_disk_too(
        operator_factory: Factory) -> None:
    op = operator_factory(env={**FAST, "TART_SIM_PULL_HANG": "30"})
    records = op.state_dir / "operations"
    _, doc, headers = create(op, name="doomed", **{"from": UBUNTU})
    path = headers["Location"]
    wait_for(lambda: operation(op, path)["progress"] == 30, message="stalled at 30%")
    assert (records / f"{doc['id']}.json").exists()
    status, _, body = op.request("DELETE", path)
    assert (status, body) == (204, b""), body  # cancelled, cleaned up, forgotten
    for method, gone in (("GET", path), ("DELETE", path), ("POST", path + "/cancel")):
        status, problem = op.json(method, gone)
        assert (status, problem["type"]) == (404, "/problems/operation-not-found"), method
    assert doc["id"] not in [listed["id"] for listed in op.json("GET", "/operations")[1]]
    assert "doomed" not in vm_names(op)
    wait_for(lambda: tart_processes(op) == [], message="no Tart process left")
    wait_for(lambda: not (records / f"{doc['id']}.json").exists(), message="record removed")
    # a finished operation is forgotten the same way, across a restart too
    _, _, headers = create(op, name="kept", **{"from": "macos-sequoia-base"})
    assert finished(op, headers["Location"])["state"] == "succeeded"
    status, _, _ = op.request("DELETE", headers["Location"])
    assert status == 204 and op.json("GET", headers["Location"])[0] == 404
    # the listener that writes records may be another thread, delivering the events in order
    wait_for(lambda: list(records.iterdir()) == [], message="every record removed")
    op.stop()
    again = operator_factory(tart_home=op.tart_home, state_dir=op.state_dir)
    assert again.json("GET", "/operations") == (200, [])
    assert "kept" in vm_names(again)  # deleting its operation leaves what it made


# --- the start step, ephemeral VMs -----------------------------------------------------------


def test_a_failed_start_keeps_the_vm_stopped_and_says_so(operator_factory: Factory) -> None:
    op = operator_factory(env={"TART_SIM_RUN_FAIL": "no bootable disk"})
    status, _doc, headers = create(op, name="kept", **{"from": "ubuntu-runner"}, start=True)
    assert status == 202
    final = finished(op, headers["Location"])
    assert final["state"] == "failed" and final["phase"] == "starting"
    assert final["result"] == "VM kept, stopped: the start failed"
    assert "no bootable disk" in final["error"]["detail"]
    status, vm = op.json("GET", "/vms/kept")
    assert status == 200 and vm["state"] == "stopped"


def start_ephemeral(op: Operator, name: str) -> dict[str, Any]:
    status, doc, headers = create(op, name=name, **{"from": "ubuntu-runner"}, start=True,
                                  ephemeral=True)
    assert status == 202, doc
    assert finished(op, headers["Location"])["state"] == "succeeded"
    status, vm = op.json("GET", f"/vms/{name}")
    assert status == 200 and vm["state"] == "running"
    return vm  # type: ignore[no-any-return]


def deleted(op: Operator, name: str) -> dict[str, Any]:
    """Wait for the VM to be gone; the delete operation that removed it."""
    wait_for(lambda: op.json("GET", f"/vms/{name}")[0] == 404, timeout=10,
             message=f"{name} deleted")
    deletes = [o for o in op.json("GET", "/operations")[1]
               if o["kind"] == "delete" and o["vm"] == name]
    assert deletes, "deleted through a delete operation"
    return finished(op, f"/operations/{deletes[-1]['id']}")


def test_an_ephemeral_vm_stopped_through_the_api_is_deleted(operator: Operator) -> None:
    start_ephemeral(operator, "eph")
    status, stopped = operator.json("POST", "/vms/eph/stop?timeout=5")
    assert status == 200, stopped
    assert deleted(operator, "eph")["state"] == "succeeded"


def test_an_ephemeral_vm_whose_run_is_killed_is_deleted(operator: Operator) -> None:
    vm = start_ephemeral(operator, "eph")
    os.kill(vm["last_run"]["pid"], signal.SIGKILL)
    assert deleted(operator, "eph")["state"] == "succeeded"


def test_an_ephemeral_vm_whose_run_ended_while_the_operator_was_down_is_deleted(
        operator_factory: Factory) -> None:
    first = operator_factory()
    vm = start_ephemeral(first, "eph")
    assert first.stop()[0] == 0  # the VM keeps running: its tart run is detached
    os.kill(vm["last_run"]["pid"], signal.SIGKILL)
    second = operator_factory(tart_home=first.tart_home, state_dir=first.state_dir)
    assert deleted(second, "eph")["state"] == "succeeded"


def test_a_vm_that_is_not_ephemeral_stays_after_its_run(operator: Operator) -> None:
    status, _doc, headers = create(operator, name="keep", **{"from": "ubuntu-runner"},
                                  start=True)
    assert finished(operator, headers["Location"])["state"] == "succeeded"
    assert operator.json("POST", "/vms/keep/stop?timeout=5")[0] == 200
    status, vm = operator.json("GET", "/vms/keep")
    assert status == 200 and vm["state"] == "stopped"
    assert [o["kind"] for o in operator.json("GET", "/operations")[1]] == ["create"]


def test_a_vm_created_where_an_ephemeral_record_was_left_is_not_ephemeral(
        operator: Operator) -> None:
    """An ephemeral VM deleted outside the API (`tart delete`) leaves the operator's record of
    it behind; a VM created again under that name without ``ephemeral`` must not inherit it."""
    specs = SpecStore(Path(operator.state_dir) / "specs")
    specs.save(VmSpec("again", True, "2000-01-01T00:00:00.000Z", "an-earlier-create"))
    status, _doc, headers = create(operator, name="again", **{"from": "ubuntu-runner"},
                                  start=True)
    assert status == 202
    assert finished(operator, headers["Location"])["state"] == "succeeded"
    assert operator.json("POST", "/vms/again/stop?timeout=5")[0] == 200
    status, vm = operator.json("GET", "/vms/again")
    assert status == 200 and vm["state"] == "stopped"
    spec = specs.load("again")  # the new VM's own spec (its desired state), not the old one
    assert spec is not None and not spec.ephemeral and spec.operation != "an-earlier-create"
