"""Starting, stopping and suspending VMs (api/vm_power.py), end to end: a real operator over
loopback HTTP driving the Tart simulator, each test in its own TART_HOME. What reached Tart is
read from the simulator's call log; what Tart holds afterwards is asked of it directly.

A precondition (not started suspendable, a VM that is not running, an OCI image) is a 409 that
says how to fix it, never a 502; Tart's own refusals are mapped to the same problems."""

from __future__ import annotations

import re

from conftest import LOCAL_VMS, OCI_NAME, OCI_PATH, VM_KEYS
from support import REPO_ROOT, assert_utc_timestamp, wait_for

SEQUOIA, SONOMA, UBUNTU = LOCAL_VMS
NOT_SUSPENDABLE_TITLE = "The VM was not started suspendable"
README = REPO_ROOT / "README.md"


# --- start / stop / suspend ---------------------------------------------------------------------------


def test_start_is_202_then_running_and_second_start_is_unchanged(operator):
    vm = operator.start_vm(SEQUOIA)
    assert set(vm) >= VM_KEYS and vm["running"] is True and vm["status"] == "running"
    detail = operator.ok("GET", f"/vms/{SEQUOIA}")
    assert detail["state"] == detail["status"] == "running" and detail["running"] is True
    assert_utc_timestamp(detail["last_run"]["started_at"])
    assert detail["last_run"]["exit_code"] is None and detail["last_run"]["error"] is None
    assert operator.tart_state(SEQUOIA) == "running"
    again = operator.ok("POST", f"/vms/{SEQUOIA}/start", 200)
    assert again["changed"] is False and again["state"] == "running"
    assert len(operator.calls("run")) == 1


def test_stop_is_200_and_stop_again_is_unchanged(operator):
    operator.start_vm(SEQUOIA)
    operator.stop_vm(SEQUOIA)
    assert operator.tart_state(SEQUOIA) == "stopped"
    again = operator.ok("POST", f"/vms/{SEQUOIA}/stop")
    assert again["changed"] is False and again["state"] == "stopped"
    assert len(operator.calls("stop")) == 1
    last_run = operator.ok("GET", f"/vms/{SEQUOIA}")["last_run"]
    assert last_run["exit_code"] == 0 and last_run["error"] is None


def test_stop_timeout_is_0_to_300(operator):
    operator.start_vm(SEQUOIA)
    for value in ("-1", "301", "abc", "", "1.5", "1e2"):
        operator.problem("POST", f"/vms/{SEQUOIA}/stop?timeout={value}", 400, "invalid-parameter")
    assert operator.calls("stop") == []
    assert operator.tart_state(SEQUOIA) == "running"
    assert operator.ok("POST", f"/vms/{SEQUOIA}/stop?timeout=300")["changed"] is True
    assert [c.argv for c in operator.calls("stop")] == [("stop", "--timeout", "300", SEQUOIA)]
    for value in ("0", "300"):  # the bounds are accepted
        assert operator.ok("POST", f"/vms/{SONOMA}/stop?timeout={value}")["changed"] is False


def test_start_suspendable_must_be_boolean(operator):
    for value in ("maybe", ""):
        operator.problem("POST", f"/vms/{SEQUOIA}/start?suspendable={value}", 400, "invalid-parameter")
    assert operator.calls("run") == []


def test_suspend_a_suspendable_vm(operator):
    operator.start_vm(SEQUOIA, "?suspendable=true")
    assert "--suspendable" in operator.calls("run")[0].argv
    vm = operator.ok("POST", f"/vms/{SEQUOIA}/suspend")
    assert vm["state"] == vm["status"] == "suspended" and vm["running"] is False
    assert operator.ok("GET", f"/vms/{SEQUOIA}")["state"] == "suspended"
    assert operator.tart_state(SEQUOIA) == "suspended"
    assert [vm["name"] for vm in operator.ok("GET", "/vms?state=suspended")] == [SEQUOIA]


def test_suspend_of_a_stopped_vm_is_409(operator):
    operator.problem("POST", f"/vms/{SEQUOIA}/suspend", 409, "not-running")
    assert operator.calls("suspend") == []


def test_start_failure_is_502_with_tarts_message(operator_factory):
    message = "VZErrorDomain Code=1: Internal Virtualization error. The virtual machine failed to start."
    op = operator_factory(env={"TART_SIM_RUN_FAIL": message})
    doc = op.problem("POST", f"/vms/{SEQUOIA}/start", 502, "tart-failed")
    assert message in doc["detail"]
    detail = op.ok("GET", f"/vms/{SEQUOIA}")
    assert detail["state"] == "stopped"
    assert detail["last_run"]["exit_code"] == 1
    assert message in detail["last_run"]["error"]


def test_start_refused_by_tart_as_already_running_is_409(operator_factory):
    """A VM "already running elsewhere": someone else's `tart run` took the VM's lock between
    the operator's check and its own `tart run`, which Tart refuses with its own message."""
    message = f'VM "{SEQUOIA}" is already running!'
    op = operator_factory(env={"TART_SIM_RUN_FAIL": message})
    doc = op.problem("POST", f"/vms/{SEQUOIA}/start", 409, "already-running")
    assert doc["detail"] == message
    assert len(op.calls("run")) == 1


def test_vm_limit_from_tart_when_cap_disabled(operator_factory):
    op = operator_factory(env={"TART_SIM_VM_LIMIT": "2"}, args=["--max-running", "0"])
    assert op.tart("clone", SEQUOIA, "macos-third").returncode == 0
    op.start_vm(SEQUOIA)
    op.start_vm(SONOMA)
    doc = op.problem("POST", "/vms/macos-third/start", 409, "vm-limit")
    assert doc["detail"] == "The number of VMs exceeds the system limit"
    assert len(op.calls("run")) == 3  # Tart itself refused the third
    assert op.tart_state("macos-third") == "stopped"


def test_vm_limit_enforced_before_tart_is_asked(operator):
    assert operator.tart("clone", SEQUOIA, "macos-third").returncode == 0
    operator.start_vm(SEQUOIA)
    operator.start_vm(SONOMA)
    doc = operator.problem("POST", "/vms/macos-third/start", 409, "vm-limit")
    assert re.search(r"\b2\b", doc["detail"]), doc  # names the limit
    assert "exceeds the system limit" not in doc["detail"]
    assert [c.argv[-1] for c in operator.calls("run")] == [SEQUOIA, SONOMA]


def test_vm_started_outside_the_api(operator):
    outside = operator.spawn_run(SEQUOIA)
    wait_for(lambda: operator.tart_state(SEQUOIA) == "running")
    vm = operator.ok("POST", f"/vms/{SEQUOIA}/start", 200)
    assert vm["changed"] is False and vm["state"] == "running"
    assert operator.calls("run") == []
    assert outside.poll() is None
    operator.stop_vm(SEQUOIA)  # the API can stop what it did not start
    assert outside.wait(timeout=5) == 0


# --- suspend: a precondition is a 409 that says how to fix it ---------------------------------


def test_suspend_of_a_vm_the_operator_started_without_suspendable_is_409(operator):
    operator.ok("POST", f"/vms/{SEQUOIA}/start", 202)
    doc = operator.problem("POST", f"/vms/{SEQUOIA}/suspend", 409, "not-suspendable")
    assert doc["title"] == NOT_SUSPENDABLE_TITLE
    assert "stop it" in doc["detail"] and "/start?suspendable=true" in doc["detail"], doc
    # known from the run's own record: Tart is not asked, the VM runs on
    assert operator.calls("suspend") == []
    assert operator.tart_state(SEQUOIA) == "running"
    assert operator.ok("GET", f"/vms/{SEQUOIA}")["last_run"]["suspendable"] is False


def test_suspend_of_a_vm_started_outside_without_suspendable_maps_tarts_refusal(operator):
    operator.spawn_run(SEQUOIA)  # `tart run` typed by someone, without --suspendable
    wait_for(lambda: operator.tart_state(SEQUOIA) == "running")
    doc = operator.problem("POST", f"/vms/{SEQUOIA}/suspend", 409, "not-suspendable")
    assert doc["title"] == NOT_SUSPENDABLE_TITLE
    assert "not started with --suspendable" in doc["detail"], doc  # Tart's own words
    assert "/start?suspendable=true" in doc["detail"], doc
    assert len(operator.calls("suspend")) == 1


def test_start_suspendable_on_a_vm_running_without_it_is_409_stop_first(operator):
    operator.ok("POST", f"/vms/{SEQUOIA}/start", 202)
    doc = operator.problem("POST", f"/vms/{SEQUOIA}/start?suspendable=true", 409, "not-suspendable")
    assert "stopped first" in doc["detail"], doc
    assert len(operator.calls("run")) == 1
    # a plain start of it is still unchanged
    assert operator.ok("POST", f"/vms/{SEQUOIA}/start")["changed"] is False
    # the fix the detail gives works
    operator.ok("POST", f"/vms/{SEQUOIA}/stop")
    operator.ok("POST", f"/vms/{SEQUOIA}/start?suspendable=true", 202)
    again = operator.ok("POST", f"/vms/{SEQUOIA}/start?suspendable=true")
    assert again["changed"] is False and again["state"] == "running"
    suspended = operator.ok("POST", f"/vms/{SEQUOIA}/suspend")
    assert suspended["state"] == "suspended" and suspended["changed"] is True


def test_start_suspendable_of_a_linux_vm_is_409_not_502(operator):
    # Tart refuses --suspendable for Linux guests (a usage error, exit 64): the client's request
    # cannot be met, Tart did not fail
    doc = operator.problem("POST", f"/vms/{UBUNTU}/start?suspendable=true", 409, "suspend-unsupported")
    assert "only suspend macOS VMs" in doc["detail"], doc
    assert operator.tart_state(UBUNTU) == "stopped"
    operator.ok("POST", f"/vms/{UBUNTU}/start", 202)


def test_suspend_of_a_suspended_vm_is_200_unchanged(operator):
    operator.ok("POST", f"/vms/{SEQUOIA}/start?suspendable=true", 202)
    first = operator.ok("POST", f"/vms/{SEQUOIA}/suspend")
    assert first["state"] == "suspended" and first["changed"] is True
    again = operator.ok("POST", f"/vms/{SEQUOIA}/suspend")
    assert again["state"] == "suspended" and again["changed"] is False
    assert len(operator.calls("suspend")) == 1
    assert operator.tart_state(SEQUOIA) == "suspended"
    # a stopped VM is still a precondition failure of its own
    operator.problem("POST", f"/vms/{SONOMA}/suspend", 409, "not-running")


# --- OCI images and the start's timeout -------------------------------------------------------


def test_every_action_on_an_oci_image_is_409_oci_image(operator):
    detail = operator.ok("GET", f"/vms/{OCI_PATH}")
    assert detail["source"] == "oci" and detail["name"] == OCI_NAME
    titles = set()
    for method, action in (("POST", "start"), ("POST", "stop"), ("POST", "suspend"),
                           ("GET", "ip"), ("GET", "ip?wait=30"), ("GET", "logs")):
        doc = operator.problem(method, f"/vms/{OCI_PATH}/{action}", 409, "oci-image")
        assert OCI_NAME in doc["detail"] and "tart clone" in doc["detail"], (action, doc)
        titles.add(doc["title"])
    assert len(titles) == 1, titles
    assert [c for c in operator.calls() if c.command not in ("--version", "list", "get")] == []


def test_the_start_timeout_is_checked_without_wait_ready_and_bounds_nothing_there(operator):
    for value in ("0", "901", "abc"):
        doc = operator.problem("POST", f"/vms/{SEQUOIA}/start?timeout={value}", 400,
                      "invalid-parameter")
        assert "timeout" in doc["detail"], doc
    assert operator.calls("run") == []
    operator.ok("POST", f"/vms/{SEQUOIA}/start?timeout=1", 202)  # started: not bounded by it
    start = operator.ok("GET", "/openapi.json")["paths"]["/vms/{name}/start"]["post"]
    said = next(p["description"] for p in start["parameters"] if p["name"] == "timeout")
    row = next(line for line in README.read_text().splitlines()
               if line.startswith("| `POST /vms/{name}/start` |"))
    for text in (said, row):  # the document and the README say the same, and what is done
        assert "ignored" not in text.lower(), text
        assert "checked" in text.lower() and "bounds nothing" in text, text
