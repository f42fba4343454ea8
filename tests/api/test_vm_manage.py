"""Deleting and reconfiguring VMs, the OCI image cache, and the host, end to end:
a real operator over loopback HTTP driving the Tart simulator as a real subprocess.

What reached Tart is read from the simulator's call log (``Operator.calls``); what Tart holds
afterwards is asked of the simulator directly (``Operator.tart``), never of the API alone.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import LOCAL_VMS, OCI_NAME, Operator
from support import processes_with_tart_home, wait_for

SEQUOIA, SONOMA, UBUNTU = LOCAL_VMS
PROBLEM = "application/problem+json"
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
JSON_BODY = {"Content-Type": "application/json"}
UBUNTU_IMAGE = "ghcr.io/cirruslabs/ubuntu:jammy"  # in the simulator's registry, not cached
FAST_PULL = {"TART_SIM_PULL_SECONDS": "0.3", "TART_SIM_PROGRESS_INTERVAL": "0.05", "CI": "1"}
WATCHED_PULL = {"TART_SIM_PULL_SECONDS": "2", "TART_SIM_PROGRESS_INTERVAL": "0.1"}  # terminal form


# --- helpers -------------------------------------------------------------------------


def call(op: Operator, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    """(status, headers, parsed JSON body or None); a dict body is sent as JSON."""
    data = json.dumps(body) if isinstance(body, dict) else body
    sent = dict(JSON_BODY if isinstance(body, dict) and headers is None else headers or {})
    status, head, raw = op.request(method, path, headers=sent, body=data)
    return status, head, json.loads(raw) if raw else None


def tart_get(op: Operator, name: str) -> dict[str, Any]:
    """``tart get NAME --format json``, asked of the simulator directly."""
    out = op.tart("get", name, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def tart_names(op: Operator, source: str = "local") -> set[str]:
    out = op.tart("list", "--source", source, "--format", "json")
    assert out.returncode == 0, out.stderr
    return {entry["Name"] for entry in json.loads(out.stdout)}


def config_of(op: Operator, name: str) -> dict[str, Any]:
    """The VM's config.json, as Tart keeps it (after a first call has seeded the demo VMs)."""
    assert op.tart("list", "-q").returncode == 0
    return json.loads((op.tart_home / "vms" / name / "config.json").read_text())  # type: ignore[no-any-return]


def start(op: Operator, name: str, query: str = "") -> None:
    vm = op.ok("POST", f"/vms/{name}/start{query}", 202)
    assert vm["state"] == "running"


def run_processes(op: Operator) -> list[int]:
    """Live ``tart run`` processes of this operator's TART_HOME."""
    found = []
    for pid in processes_with_tart_home(op.tart_home):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"run" in argv:
            found.append(pid)
    return found


def await_operation(op: Operator, location: str, timeout: float = 20.0) -> tuple[dict[str, Any], list[int]]:
    """Poll an operation until it has finished: its last document, and every progress value seen."""
    seen: list[int] = []

    def finished() -> dict[str, Any] | None:
        doc = op.ok("GET", location)
        if doc["progress"] is not None and (not seen or seen[-1] != doc["progress"]):
            seen.append(doc["progress"])
        return doc if doc["state"] in ("succeeded", "failed", "cancelled") else None

    return wait_for(finished, timeout, 0.02, f"operation {location} finished"), seen


def submit(op: Operator, path: str, body: dict[str, Any]) -> str:
    """POST an operation; its Location, checked against the document."""
    status, head, doc = call(op, "POST", path, body)
    assert status == 202, doc
    location = head["Location"]
    assert location == f"/operations/{doc['id']}", (location, doc)
    assert doc["state"] in ("queued", "running", "succeeded"), doc
    return str(location)


# --- DELETE /vms/{name} ----------------------------------------------------------------


def test_delete_a_stopped_vm_is_204_and_tart_no_longer_has_it(operator):
    status, _, body = operator.request("DELETE", f"/vms/{UBUNTU}")
    assert status == 204 and body == b""
    assert UBUNTU not in tart_names(operator)
    assert [call.argv[-1] for call in operator.calls("delete")] == [UBUNTU]
    operator.problem("GET", f"/vms/{UBUNTU}", 404, "vm-not-found")
    assert UBUNTU not in {vm["name"] for vm in operator.ok("GET", "/vms")}


def test_delete_a_missing_vm_is_404(operator):
    doc = operator.problem("DELETE", "/vms/no-such-vm", 404, "vm-not-found")
    assert "no-such-vm" in doc["detail"]
    assert operator.calls("delete") == []


def test_delete_an_oci_image_is_409_pointing_at_the_images_route(operator):
    doc = operator.problem("DELETE", f"/vms/{quote(OCI_NAME, safe='')}", 409, "oci-image")
    assert "DELETE /images/" in doc["detail"]
    assert OCI_NAME in tart_names(operator, "oci")
    assert operator.calls("delete") == []


def test_delete_a_running_vm_is_409_without_force_and_it_keeps_running(operator):
    start(operator, SEQUOIA)
    doc = operator.problem("DELETE", f"/vms/{SEQUOIA}", 409, "vm-running")
    assert "force=true" in doc["detail"]
    assert tart_get(operator, SEQUOIA)["State"] == "running"
    assert operator.calls("delete") == [] and operator.calls("stop") == []


def test_delete_a_suspended_vm_is_409_without_force(operator):
    start(operator, SEQUOIA, "?suspendable=true")
    assert operator.ok("POST", f"/vms/{SEQUOIA}/suspend")["state"] == "suspended"
    operator.problem("DELETE", f"/vms/{SEQUOIA}", 409, "vm-running")
    assert tart_get(operator, SEQUOIA)["State"] == "suspended"


def test_force_delete_stops_a_running_vm_then_deletes_it(operator):
    start(operator, SEQUOIA)
    status, _, body = operator.request("DELETE", f"/vms/{SEQUOIA}?force=true&timeout=5")
    assert status == 204, body
    assert SEQUOIA not in tart_names(operator)
    stops = operator.calls("stop")
    assert len(stops) == 1 and stops[0].argv[-3:] == ("--timeout", "5", SEQUOIA)
    assert stops[0].started < operator.calls("delete")[0].started
    wait_for(lambda: not run_processes(operator), message="the VM's tart run ended")
    operator.problem("GET", f"/vms/{SEQUOIA}", 404, "vm-not-found")


def test_force_delete_of_a_suspended_vm_discards_its_state_and_deletes_it(operator):
    start(operator, SEQUOIA, "?suspendable=true")
    operator.ok("POST", f"/vms/{SEQUOIA}/suspend")
    status, _, body = operator.request("DELETE", f"/vms/{SEQUOIA}?force=true")
    assert status == 204, body
    assert SEQUOIA not in tart_names(operator)


def test_delete_query_is_checked(operator):
    operator.problem("DELETE", f"/vms/{UBUNTU}?timeout=301&force=true", 400, "invalid-parameter")
    operator.problem("DELETE", f"/vms/{UBUNTU}?force=maybe", 400, "invalid-parameter")
    operator.problem("DELETE", f"/vms/{UBUNTU}?forced=true", 400, "unknown-parameter")
    assert UBUNTU in tart_names(operator)


def test_a_vm_created_again_under_a_deleted_name_has_no_earlier_run(operator):
    start(operator, UBUNTU)
    operator.ok("POST", f"/vms/{UBUNTU}/stop")
    assert operator.ok("GET", f"/vms/{UBUNTU}")["last_run"] is not None
    assert operator.request("DELETE", f"/vms/{UBUNTU}")[0] == 204
    out = operator.tart("clone", SONOMA, UBUNTU)  # outside the API
    assert out.returncode == 0, out.stderr
    assert operator.ok("GET", f"/vms/{UBUNTU}")["last_run"] is None
    operator.problem("GET", f"/vms/{UBUNTU}/logs", 404, "no-logs")


def test_delete_while_another_request_changes_the_vm_is_409(operator_factory):
    """A PATCH holds the name while its ``tart set`` runs (here: hangs until its timeout)."""
    op = operator_factory(env={"TART_SIM_HANG": "set"}, args=["--tart-timeout", "3"])
    answers: list[int] = []
    patcher = threading.Thread(
        target=lambda: answers.append(call(op, "PATCH", f"/vms/{UBUNTU}", {"cpu": 3})[0]))
    patcher.start()
    wait_for(lambda: op.calls("set"), message="tart set started")
    doc = op.problem("DELETE", f"/vms/{UBUNTU}", 409, "vm-busy-operation")
    assert UBUNTU in doc["detail"]
    patcher.join(20)
    assert answers == [504]
    assert op.calls("delete") == []
    assert UBUNTU in tart_names(op)


def test_a_vm_being_created_cannot_be_deleted_or_changed_meanwhile(operator_factory):
    op = operator_factory(env={**FAST_PULL, "TART_SIM_PULL_HANG": "30"})
    location = submit(op, "/vms", {"name": "fresh", "from": UBUNTU_IMAGE})
    wait_for(lambda: op.ok("GET", location)["progress"] == 30, message="the pull stalled at 30%")
    doc = op.problem("DELETE", "/vms/fresh?force=true", 409, "vm-busy-operation")
    assert doc["operation"] == location
    doc = op.problem("PATCH", "/vms/fresh", 409, "vm-busy-operation", {"cpu": 2})
    assert doc["operation"] == location
    assert op.calls("delete") == [] and op.calls("set") == []
    op.ok("POST", location + "/cancel", 200)  # cancel the create
    assert await_operation(op, location)[0]["state"] == "cancelled"


def test_a_deleted_ephemeral_vm_is_forgotten(operator):
    """A VM made again under the name of a deleted ephemeral VM is another VM: kept after its run."""
    location = submit(operator, "/vms", {"name": "eph", "from": UBUNTU, "ephemeral": True})
    assert await_operation(operator, location)[0]["state"] == "succeeded"
    assert operator.request("DELETE", "/vms/eph")[0] == 204
    assert operator.tart("clone", UBUNTU, "eph").returncode == 0  # outside the API
    start(operator, "eph")
    assert operator.ok("POST", "/vms/eph/stop?timeout=5")["state"] == "stopped"
    assert operator.ok("GET", "/vms/eph")["state"] == "stopped"
    assert [o["kind"] for o in operator.ok("GET", "/operations")] == ["create"]
    assert "eph" in tart_names(operator)


# --- PATCH /vms/{name} -----------------------------------------------------------------


def test_patch_a_stopped_vm_sets_it_and_answers_the_new_detail(operator_factory):
    op = operator_factory(args=["--cache-ttl", "60"])  # only the change itself refreshes the cache
    before = op.ok("GET", f"/vms/{SEQUOIA}")
    assert (before["cpu"], before["memory_mb"], before["display"]) == (4, 8192, "1024x768")
    detail = op.ok("PATCH", f"/vms/{SEQUOIA}",
                body=json.dumps({"cpu": 6, "memory_mb": 12288, "display": "1920x1080",
                                 "disk_gb": 80}),
                headers=MERGE_PATCH)
    assert (detail["cpu"], detail["memory_mb"], detail["display"], detail["disk_gb"]) == \
        (6, 12288, "1920x1080", 80)
    assert detail["name"] == SEQUOIA and detail["state"] == "stopped"
    tart = tart_get(op, SEQUOIA)
    assert (tart["CPU"], tart["Memory"], tart["Display"], tart["Disk"]) == (6, 12288, "1920x1080", 80)
    again = op.ok("GET", f"/vms/{SEQUOIA}")
    assert (again["cpu"], again["memory_mb"], again["disk_gb"]) == (6, 12288, 80)
    sets = op.calls("set")
    assert len(sets) == 1
    assert sets[0].argv[sets[0].argv.index("set") + 1:] == (
        SEQUOIA, "--cpu", "6", "--memory", "12288", "--disk-size", "80", "--display", "1920x1080")


def test_patch_takes_plain_json_too_and_only_the_fields_given(operator):
    detail = operator.ok("PATCH", f"/vms/{UBUNTU}", body={"cpu": 3})
    assert detail["cpu"] == 3 and detail["memory_mb"] == 4096
    (only,) = operator.calls("set")
    assert only.argv[only.argv.index("set") + 1:] == (UBUNTU, "--cpu", "3")


def test_patch_random_mac_gives_the_vm_a_new_mac_address(operator):
    mac = config_of(operator, UBUNTU)["macAddress"]
    operator.ok("PATCH", f"/vms/{UBUNTU}", body={"random_mac": True})
    assert config_of(operator, UBUNTU)["macAddress"] != mac
    (only,) = operator.calls("set")
    assert only.argv[-2:] == (UBUNTU, "--random-mac")


def test_patch_of_a_running_vm_is_409_and_tart_is_not_asked(operator):
    start(operator, SEQUOIA)
    doc = operator.problem("PATCH", f"/vms/{SEQUOIA}", 409, "vm-running", {"cpu": 8})
    assert "stop" in doc["detail"]
    assert operator.calls("set") == []
    assert tart_get(operator, SEQUOIA)["CPU"] == 4


def test_patch_of_a_suspended_vm_is_409(operator):
    start(operator, SEQUOIA, "?suspendable=true")
    operator.ok("POST", f"/vms/{SEQUOIA}/suspend")
    operator.problem("PATCH", f"/vms/{SEQUOIA}", 409, "vm-running", {"memory_mb": 16384})
    assert operator.calls("set") == []


@pytest.mark.parametrize(("patch", "tart_says"), [
    ({"cpu": 2}, "VM should have 4 CPU cores at minimum (requested 2)"),
    ({"memory_mb": 4096}, "bytes of memory at minimum"),
    ({"disk_gb": 40}, "should be larger than the current disk size"),
])
def test_tart_refusals_of_a_patch_are_422_with_tarts_message(operator, patch, tart_says):
    before = tart_get(operator, SEQUOIA)
    doc = operator.problem("PATCH", f"/vms/{SEQUOIA}", 422, "invalid-resources", patch)
    assert tart_says in doc["detail"]
    assert tart_get(operator, SEQUOIA) == before


def test_a_refused_disk_shrink_changes_nothing_else_of_the_patch(operator):
    """Tart saves the other settings before it refuses the disk: the operator never lets it."""
    doc = operator.problem("PATCH", f"/vms/{SEQUOIA}", 422, "invalid-resources",
                  {"cpu": 6, "display": "800x600", "disk_gb": 10})
    assert "should be larger than the current disk size" in doc["detail"]
    tart = tart_get(operator, SEQUOIA)
    assert (tart["CPU"], tart["Display"], tart["Disk"]) == (4, "1024x768", 50)


def test_an_empty_patch_is_400(operator):
    doc = operator.problem("PATCH", f"/vms/{UBUNTU}", 400, "invalid-body", {})
    assert "at least one of cpu, memory_mb" in doc["detail"]
    assert doc["errors"] == [{"pointer": "", "detail": doc["detail"]}]
    assert operator.calls("set") == []


def test_a_patch_that_asks_for_no_new_mac_changes_nothing(operator):
    detail = operator.ok("PATCH", f"/vms/{UBUNTU}", body={"random_mac": False})
    assert detail["name"] == UBUNTU and detail["cpu"] == 2
    assert operator.calls("set") == []


@pytest.mark.parametrize(("body", "pointer"), [
    ({"cpu": 0}, "/cpu"),
    ({"cpu": 65}, "/cpu"),
    ({"cpu": "4"}, "/cpu"),
    ({"memory_mb": 256}, "/memory_mb"),
    ({"disk_gb": 0}, "/disk_gb"),
    ({"display": "big"}, "/display"),
    ({"display": "0x768"}, "/display"),
    ({"random_mac": "yes"}, "/random_mac"),
    ({"cpu": None}, "/cpu"),
    ({"name": "other"}, "/name"),
])
def test_a_bad_patch_names_the_field_and_never_reaches_tart(operator, body, pointer):
    status, _, doc = call(operator, "PATCH", f"/vms/{UBUNTU}", body)
    assert status == 400, doc
    assert pointer in [error["pointer"] for error in doc["errors"]], doc
    assert operator.calls("set") == []


def test_patch_needs_a_json_body(operator):
    status, _, _ = call(operator, "PATCH", f"/vms/{UBUNTU}", "cpu=4",
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert operator.calls("set") == []


def test_patch_of_a_missing_vm_is_404_and_of_an_oci_image_409(operator):
    operator.problem("PATCH", "/vms/no-such-vm", 404, "vm-not-found", {"cpu": 4})
    operator.problem("PATCH", f"/vms/{quote(OCI_NAME, safe='')}", 409, "oci-image", {"cpu": 4})
    assert operator.calls("set") == []


# --- the OCI image cache ---------------------------------------------------------------


def test_images_lists_the_cache(operator):
    images = operator.ok("GET", "/images")
    assert [image["ref"] for image in images] == [OCI_NAME]
    (image,) = images
    assert image["size_gb"] == round(tart_list_entry(operator, OCI_NAME)["Size"])
    assert image["accessed"] is not None
    assert not any(image["ref"] in LOCAL_VMS for image in images)


def test_images_are_read_from_the_cached_listing(operator_factory):
    """GET /images costs no Tart call of its own: the VM listing has the images too."""
    op = operator_factory(args=["--cache-ttl", "60"])
    vms = op.ok("GET", "/vms?source=oci")
    images = op.ok("GET", "/images")
    assert [image["ref"] for image in images] == [vm["name"] for vm in vms] == [OCI_NAME]
    assert len(op.calls("list")) == 1
    assert op.request("DELETE", f"/images/{quote(OCI_NAME, safe='')}")[0] == 204
    assert op.ok("GET", "/images") == []  # fresh after a change through the API


def tart_list_entry(op: Operator, name: str) -> dict[str, Any]:
    out = op.tart("list", "--source", "oci", "--format", "json")
    return next(entry for entry in json.loads(out.stdout) if entry["Name"] == name)  # type: ignore[no-any-return]


def test_pull_is_an_operation_whose_progress_rises_to_100(operator_factory):
    op = operator_factory(env=WATCHED_PULL)
    location = submit(op, "/images", {"ref": UBUNTU_IMAGE})
    doc, progress = await_operation(op, location)
    assert doc["state"] == "succeeded", doc
    assert doc["kind"] == "pull" and doc["image"] == UBUNTU_IMAGE and doc["error"] is None
    assert doc["progress"] == 100
    assert progress == sorted(progress) and len(progress) >= 2, progress
    assert UBUNTU_IMAGE in tart_names(op, "oci")
    assert UBUNTU_IMAGE in [image["ref"] for image in op.ok("GET", "/images")]
    (pull,) = op.calls("pull")
    assert pull.argv[-1] == UBUNTU_IMAGE and "--insecure" not in pull.argv


def test_pull_insecure_passes_the_flag(operator_factory):
    op = operator_factory(env=FAST_PULL)
    doc, _ = await_operation(op, submit(op, "/images", {"ref": UBUNTU_IMAGE, "insecure": True}))
    assert doc["state"] == "succeeded", doc
    (pull,) = op.calls("pull")
    assert "--insecure" in pull.argv


def test_a_failed_pull_says_what_tart_said(operator_factory):
    op = operator_factory(env={**FAST_PULL, "TART_SIM_PULL_FAIL": "40:connection reset by peer"})
    doc, _ = await_operation(op, submit(op, "/images", {"ref": UBUNTU_IMAGE}))
    assert doc["state"] == "failed", doc
    assert "connection reset by peer" in json.dumps(doc["error"])
    assert UBUNTU_IMAGE not in tart_names(op, "oci")


def test_pull_of_an_image_the_registry_lacks_fails(operator_factory):
    op = operator_factory(env=FAST_PULL)
    doc, _ = await_operation(op, submit(op, "/images", {"ref": "ghcr.io/nobody/nothing:1"}))
    assert doc["state"] == "failed" and "manifest unknown" in json.dumps(doc["error"]), doc


def test_a_pull_cancelled_midway_kills_tart_and_caches_nothing(operator_factory):
    op = operator_factory(env={**FAST_PULL, "TART_SIM_PULL_HANG": "30"})
    location = submit(op, "/images", {"ref": UBUNTU_IMAGE})
    wait_for(lambda: op.ok("GET", location)["progress"] == 30, message="the pull stalled at 30%")
    assert [call for call in op.calls("pull") if not call.finished]
    op.ok("POST", location + "/cancel", 200)
    doc, _ = await_operation(op, location)
    assert doc["state"] == "cancelled" and doc["cancel_requested"] is True
    wait_for(lambda: not [pid for pid in processes_with_tart_home(op.tart_home) if pid != op.pid],
             message="no Tart process left")
    assert UBUNTU_IMAGE not in tart_names(op, "oci")


@pytest.mark.parametrize(("body", "pointer"), [
    ({}, "/ref"),
    ({"ref": UBUNTU}, "/ref"),  # a local name: Tart would answer "nothing to pull"
    ({"ref": "-ghcr.io/x:y"}, "/ref"),
    ({"ref": UBUNTU_IMAGE, "insecure": "no"}, "/insecure"),
    ({"ref": UBUNTU_IMAGE, "tag": "x"}, "/tag"),
])
def test_a_bad_pull_names_the_field_and_never_reaches_tart(operator, body, pointer):
    status, _, doc = call(operator, "POST", "/images", body)
    assert status == 400, doc
    assert pointer in [error["pointer"] for error in doc["errors"]], doc
    assert operator.calls("pull") == []


def test_delete_an_image_is_204_then_404(operator):
    path = f"/images/{quote(OCI_NAME, safe='')}"
    status, _, body = operator.request("DELETE", path)
    assert status == 204 and body == b""
    assert OCI_NAME not in tart_names(operator, "oci")
    assert operator.ok("GET", "/images") == []
    doc = operator.problem("DELETE", path, 404, "image-not-found")
    assert OCI_NAME in doc["detail"]
    assert len(operator.calls("delete")) == 1


def test_delete_images_never_deletes_a_local_vm(operator):
    doc = operator.problem("DELETE", f"/images/{UBUNTU}", 404, "image-not-found")
    assert f"DELETE /vms/{UBUNTU}" in doc["detail"]
    assert UBUNTU in tart_names(operator)
    assert operator.calls("delete") == []


def test_prune_needs_a_criterion(operator):
    doc = operator.problem("POST", "/images/prune", 400, "invalid-body", {})
    assert "older_than_days, space_budget_gb" in doc["detail"]
    assert operator.calls("prune") == []


@pytest.mark.parametrize(("body", "pointer"), [
    ({"older_than_days": -1}, "/older_than_days"),
    ({"space_budget_gb": "10"}, "/space_budget_gb"),
    ({"older_than_days": 1, "entries": "vms"}, "/entries"),
])
def test_a_bad_prune_names_the_field(operator, body, pointer):
    status, _, doc = call(operator, "POST", "/images/prune", body)
    assert status == 400, doc
    assert pointer in [error["pointer"] for error in doc["errors"]], doc


def test_prune_by_age_keeps_what_is_recent(operator):
    doc, _ = await_operation(operator, submit(operator, "/images/prune", {"older_than_days": 30}))
    assert doc["state"] == "succeeded" and doc["kind"] == "prune", doc
    assert OCI_NAME in tart_names(operator, "oci")
    (prune,) = operator.calls("prune")
    assert prune.argv[prune.argv.index("prune") + 1:] == ("--entries", "caches",
                                                         "--older-than", "30")


def test_prune_by_space_budget_removes_what_does_not_fit(operator_factory):
    op = operator_factory(env=FAST_PULL)
    await_operation(op, submit(op, "/images", {"ref": UBUNTU_IMAGE}))
    assert {OCI_NAME, UBUNTU_IMAGE} <= tart_names(op, "oci")
    doc, _ = await_operation(op, submit(op, "/images/prune", {"space_budget_gb": 0}))
    assert doc["state"] == "succeeded", doc
    assert doc["phase"] == "pruning"
    assert tart_names(op, "oci") == set()
    assert op.ok("GET", "/images") == []
    assert OCI_NAME in doc["result"], doc
    assert set(LOCAL_VMS) <= tart_names(op)  # caches only: never a VM


# --- GET /host ---------------------------------------------------------------------------


def test_host_says_what_a_scheduler_checks(operator):
    host = operator.ok("GET", "/host")
    assert host["tart"]["version"] == "2.31.0" and host["tart"]["path"]
    assert host["tart_home"] == str(operator.tart_home)
    real = shutil.disk_usage(operator.tart_home)
    assert host["disk"]["total_bytes"] == real.total
    assert abs(host["disk"]["free_bytes"] - real.free) <= max(real.total // 100, 64 << 20)
    assert host["macos_guests"] == {"running": 0, "limit": 2}
    assert host["operations"]["running"] == 0 and host["operations"]["queued"] == 0
    assert host["operations"]["max_queued"] >= 1
    start(operator, SEQUOIA)
    start(operator, UBUNTU)  # a Linux guest does not count
    assert operator.ok("GET", "/host")["macos_guests"] == {"running": 1, "limit": 2}


def test_host_counts_the_operations_running_and_queued(operator_factory):
    op = operator_factory(env={**FAST_PULL, "TART_SIM_PULL_HANG": "30"})
    pulling = submit(op, "/images", {"ref": UBUNTU_IMAGE})
    wait_for(lambda: op.ok("GET", pulling)["progress"] == 30, message="the pull stalled at 30%")
    waiting = submit(op, "/images/prune", {"older_than_days": 1})
    operations = op.ok("GET", "/host")["operations"]
    assert (operations["running"], operations["queued"]) == (1, 1)
    for location in (waiting, pulling):
        op.ok("POST", location + "/cancel", 200)
    assert await_operation(op, pulling)[0]["state"] == "cancelled"
    operations = op.ok("GET", "/host")["operations"]
    assert (operations["running"], operations["queued"]) == (0, 0)
    assert op.calls("prune") == []


def test_host_without_a_guest_limit(operator_factory):
    op = operator_factory(args=["--max-running", "0"])
    assert op.ok("GET", "/host")["macos_guests"]["limit"] is None


# --- the description -----------------------------------------------------------------


def test_every_new_route_is_in_openapi(operator):
    paths = operator.ok("GET", "/openapi.json")["paths"]
    for path, method in (("/vms/{name}", "delete"), ("/vms/{name}", "patch"),
                         ("/images", "get"), ("/images", "post"), ("/images/{ref}", "delete"),
                         ("/images/prune", "post"), ("/host", "get")):
        assert method in paths.get(path, {}), (path, method)
        assert paths[path][method]["operationId"]
    patch = paths["/vms/{name}"]["patch"]
    assert {"409", "422"} <= set(patch["responses"]) and "requestBody" in patch
    assert set(patch["requestBody"]["content"]) == {"application/json", "application/merge-patch+json"}
    deleted = paths["/vms/{name}"]["delete"]["responses"]
    assert {"204", "404", "409"} <= set(deleted) and "content" not in deleted["204"]
    assert "202" in paths["/images"]["post"]["responses"]
