"""The HTTP API of vm-operator, end to end: a real server process over loopback, driving the
Tart simulator as a real subprocess, each test in its own TART_HOME and state dir.

Every status code of the route table is produced here for real; TART_SIM_CALL_LOG proves
what did (and did not) reach Tart.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import math
import re
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from conftest import (
    LOCAL_VMS,
    OCI_NAME,
    SIMULATOR,
    Operator,
    processes_with_tart_home,
    wait_for,
)

SEQUOIA, SONOMA, UBUNTU = LOCAL_VMS
OCI_PATH = "ghcr.io%2Fcirruslabs%2Fmacos-sequoia-base%3Alatest"
PROBLEM = "application/problem+json"
VM_KEYS = {"name", "source", "state", "status", "running", "disk_gb", "size_gb", "accessed"}
DETAIL_KEYS = VM_KEYS | {"os", "cpu", "memory_mb", "disk_format", "display", "last_run"}
NAME_ROUTES = (
    ("GET", "/vms/{}"),
    ("POST", "/vms/{}/start"),
    ("POST", "/vms/{}/stop"),
    ("POST", "/vms/{}/suspend"),
    ("GET", "/vms/{}/ip"),
    ("GET", "/vms/{}/logs"),
)


# --- helpers -------------------------------------------------------------------------


def problem_of(status: int, headers: Any, body: bytes, expected: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem document with the expected status; return it."""
    assert status == expected, f"expected {expected}, got {status}: {body[:600]!r}"
    assert headers.get_content_type() == PROBLEM, headers.get("Content-Type")
    doc = json.loads(body)
    assert {"type", "title", "status", "detail"} <= doc.keys(), doc
    assert doc["status"] == expected
    for key in ("type", "title", "detail"):
        assert isinstance(doc[key], str) and doc[key], (key, doc)
    return doc


def expect_problem(op: Operator, method: str, path: str, expected: int, **kw: Any) -> dict[str, Any]:
    status, headers, body = op.request(method, path, **kw)
    return problem_of(status, headers, body, expected)


def expect_json(op: Operator, method: str, path: str, expected: int = 200, **kw: Any) -> Any:
    status, headers, body = op.request(method, path, **kw)
    assert status == expected, f"{method} {path}: expected {expected}, got {status}: {body[:600]!r}"
    assert headers.get_content_type() == "application/json", headers.get("Content-Type")
    return json.loads(body)


def direct_states(op: Operator) -> dict[str, str]:
    """What Tart itself says, asked directly (not through the API)."""
    out = op.tart("list", "--format", "json")
    assert out.returncode == 0, out.stderr
    return {entry["Name"]: entry["State"] for entry in json.loads(out.stdout)}


def api_states(op: Operator, query: str = "") -> dict[str, str]:
    return {vm["name"]: vm["state"] for vm in expect_json(op, "GET", "/vms" + query)}


def assert_utc_timestamp(value: Any) -> None:
    assert isinstance(value, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)", value), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0)


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, state letter) of every process whose parent is ``pid``, from /proc/*/stat."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # comm may hold spaces and parentheses
        if int(fields[1]) == pid:
            found.append((int(entry.name), fields[0]))
    return found


def start_vm(op: Operator, name: str, query: str = "") -> dict[str, Any]:
    vm = expect_json(op, "POST", f"/vms/{name}/start{query}", 202)
    assert vm["state"] == "running" and vm["changed"] is True, vm
    return vm


def stop_vm(op: Operator, name: str) -> dict[str, Any]:
    vm = expect_json(op, "POST", f"/vms/{name}/stop")
    assert vm["state"] == "stopped" and vm["changed"] is True, vm
    return vm


# --- /health, /ready -------------------------------------------------------------------


def test_health_reports_healthy_with_tart_details(operator):
    status, headers, body = operator.request("GET", "/health")
    assert status == 200 and headers.get_content_type() == "application/json"
    health = json.loads(body)
    assert {"status", "message", "timestamp", "version", "tart"} <= health.keys()
    assert health["status"] == "healthy"
    assert isinstance(health["message"], str) and health["message"]
    assert_utc_timestamp(health["timestamp"])
    assert isinstance(health["version"], str) and health["version"]
    assert health["tart"]["path"] == str(SIMULATOR)
    assert health["tart"]["available"] is True
    # Tart's version is fetched without blocking the probe: it shows up shortly.
    wait_for(lambda: operator.json("GET", "/health")[1]["tart"]["version"] == "2.31.0",
             message="/health reports the simulator's version 2.31.0")


def test_ready_is_200_when_tart_lists(operator):
    ready = expect_json(operator, "GET", "/ready")
    assert ready["status"] == "ready"


def test_missing_binary_is_degraded_and_503(operator_factory):
    op = operator_factory(args=["--tart", "/nonexistent/tart"], seed=False)
    health = expect_json(op, "GET", "/health")
    assert health["status"] == "degraded"
    assert health["tart"]["available"] is False
    assert health["tart"]["path"] == "/nonexistent/tart"
    assert health["tart"]["version"] is None
    assert "brew install cirruslabs/cli/tart" in health["message"]  # what to do, not only what
    expect_problem(op, "GET", "/ready", 503)
    expect_problem(op, "GET", "/vms", 503)
    expect_problem(op, "GET", f"/vms/{SEQUOIA}", 503)
    expect_problem(op, "POST", f"/vms/{SEQUOIA}/start", 503)


def test_non_executable_binary_is_503(operator_factory, tmp_path):
    binary = tmp_path / "tart-not-executable"
    shutil.copyfile(SIMULATOR, binary)
    binary.chmod(0o644)
    op = operator_factory(args=["--tart", str(binary)])
    health = expect_json(op, "GET", "/health")
    assert health["status"] == "degraded" and health["tart"]["available"] is False
    expect_problem(op, "GET", "/vms", 503)
    expect_problem(op, "GET", "/ready", 503)


# --- GET /vms ----------------------------------------------------------------------------


def test_list_vms_fields(operator):
    vms = expect_json(operator, "GET", "/vms")
    assert [vm["name"] for vm in vms] == [*LOCAL_VMS, OCI_NAME]
    for vm in vms:
        assert set(vm) == VM_KEYS, vm
        assert vm["state"] == vm["status"] == "stopped"
        assert vm["running"] is False
        assert isinstance(vm["disk_gb"], int) and isinstance(vm["size_gb"], int)
        assert_utc_timestamp(vm["accessed"])
    assert [vm["source"] for vm in vms] == ["local", "local", "local", "oci"]
    assert [vm["disk_gb"] for vm in vms] == [50, 100, 20, 50]


def test_list_filters(operator):
    start_vm(operator, SEQUOIA)
    assert list(api_states(operator, "?state=running")) == [SEQUOIA]
    assert list(api_states(operator, "?state=stopped")) == [SONOMA, UBUNTU, OCI_NAME]
    assert api_states(operator, "?state=suspended") == {}
    assert list(api_states(operator, "?source=oci")) == [OCI_NAME]
    assert list(api_states(operator, "?source=local")) == list(LOCAL_VMS)
    assert list(api_states(operator, "?state=stopped&source=local")) == [SONOMA, UBUNTU]


def test_list_filter_unknown_value_is_400(operator):
    for query in ("state=bogus", "state=", "state=RUNNING", "source=remote", "source=",
                  "source=OCI", "state=running&source=remote"):
        expect_problem(operator, "GET", f"/vms?{query}", 400)


@pytest.mark.parametrize("shape", ["1.7", "2.15", "2.31"])
def test_list_parses_every_tart_shape(operator_factory, shape):
    op = operator_factory(env={"TART_SIM_LIST_SHAPE": shape})
    raw = json.loads(op.tart("list", "--format", "json", env={"TART_SIM_LIST_SHAPE": shape}).stdout)
    assert ("State" in raw[0]) == (shape != "1.7")  # the simulator really prints that shape
    assert ("SizeOnDisk" in raw[0]) == (shape == "2.15")
    assert ("Accessed" in raw[0]) == (shape == "2.31")
    start_vm(op, SEQUOIA)
    vms = expect_json(op, "GET", "/vms")
    assert [vm["name"] for vm in vms] == [*LOCAL_VMS, OCI_NAME]
    for vm in vms:
        assert set(vm) == VM_KEYS
        expected = "running" if vm["name"] == SEQUOIA else "stopped"
        assert vm["state"] == vm["status"] == expected, vm
        assert vm["running"] is (expected == "running")
        if shape == "2.31":
            assert_utc_timestamp(vm["accessed"])
    assert list(api_states(op, "?state=running")) == [SEQUOIA]


@pytest.mark.parametrize("command, path", [("list", "/vms"), ("get", f"/vms/{SEQUOIA}")])
def test_garbage_output_is_502(operator_factory, command, path):
    op = operator_factory(env={"TART_SIM_GARBAGE": command})
    expect_problem(op, "GET", path, 502)
    assert expect_json(op, "GET", "/health")["status"] == "healthy"


# --- GET /vms/{name} --------------------------------------------------------------------


def test_get_vm_details(operator):
    mac = expect_json(operator, "GET", f"/vms/{SEQUOIA}")
    assert set(mac) >= DETAIL_KEYS
    assert (mac["name"], mac["source"], mac["state"], mac["status"]) == (SEQUOIA, "local", "stopped", "stopped")
    assert (mac["os"], mac["cpu"], mac["memory_mb"]) == ("darwin", 4, 8192)
    assert (mac["disk_format"], mac["display"], mac["disk_gb"]) == ("raw", "1024x768", 50)
    assert mac["last_run"] is None
    linux = expect_json(operator, "GET", f"/vms/{UBUNTU}")
    assert (linux["os"], linux["cpu"], linux["memory_mb"], linux["disk_gb"]) == ("linux", 2, 4096, 20)


def test_unknown_vm_is_404_on_every_name_route(operator):
    for method, template in NAME_ROUTES:
        doc = expect_problem(operator, method, template.format("no-such-vm"), 404)
        assert "no-such-vm" in doc["detail"], (method, template, doc)
    assert not [c for c in operator.calls() if c.command in ("run", "stop", "suspend", "ip")]


def test_oci_name_percent_encoded(operator):
    vm = expect_json(operator, "GET", f"/vms/{OCI_PATH}")
    assert vm["name"] == OCI_NAME and vm["source"] == "oci" and vm["state"] == "stopped"
    doc = expect_problem(operator, "POST", f"/vms/{OCI_PATH}/start", 409)
    assert OCI_NAME in doc["detail"]
    expect_problem(operator, "GET", f"/vms/{OCI_PATH}/logs", 409)  # like every action on an image
    assert operator.calls("run") == []
    # unencoded, the slashes make it another (unknown) route
    expect_problem(operator, "GET", f"/vms/{OCI_NAME}", 404)


# --- names and routing -------------------------------------------------------------------

INVALID_NAMES = {
    "empty": "",
    "whitespace": "%20",
    "inner whitespace": "mac%20os",
    "tab": "%09",
    "leading dash": "-rf",
    "leading dashes": "--help",
    "control char": "%01",
    "nul": "vm%00x",
    "newline": "vm%0Aother",
    "dot": ".",
    "dot-dot": "..",
    "encoded dot-dot": "%2E%2E",
    "dot-dot segment": "a%2F..%2Fb",
    "too long": "a" * 256,
    "bad percent-encoding": "vm%zz",
    "not UTF-8": "vm%FF",
}


def test_invalid_names_are_400_and_never_reach_tart(operator):
    failures = []
    for label, raw in INVALID_NAMES.items():
        for method, template in NAME_ROUTES:
            status, headers, body = operator.request(method, template.format(raw))
            if status != 400 or headers.get_content_type() != PROBLEM:
                failures.append(f"{label}: {method} {template.format(raw)[:60]} -> {status} {body[:120]!r}")
    assert not failures, "\n".join(failures)
    decoded = [unquote(raw) for raw in INVALID_NAMES.values() if raw]
    for call in operator.calls():
        assert call.command in ("--version", "list"), call
        for arg in call.argv:
            assert arg not in decoded and not arg.startswith("-rf"), call
            assert not any(name.strip() and name in arg for name in decoded if len(name) > 2), call


def test_name_length_boundary(operator):
    expect_problem(operator, "GET", "/vms/" + "a" * 255, 404)  # valid, just unknown
    expect_problem(operator, "GET", "/vms/" + "a" * 256, 400)


def test_unknown_route_is_404(operator):
    for method, path in (("GET", "/nope"), ("GET", "/ui/nope.js"), ("GET", "/healthz"),
                         ("GET", "/vms/x/reboot"), ("POST", "/vms/x/reboot"),
                         ("GET", "/vms/x/start/now"), ("GET", "/vms/a/b/c/d")):
        expect_problem(operator, method, path, 404)


def test_wrong_method_is_405_with_allow(operator):
    for method, path, allowed in (
        ("PUT", f"/vms/{SEQUOIA}", "GET"),
        ("GET", f"/vms/{SEQUOIA}/start", "POST"),
        ("PUT", f"/vms/{SEQUOIA}/stop", "POST"),
        ("GET", f"/vms/{SEQUOIA}/suspend", "POST"),
        ("POST", f"/vms/{SEQUOIA}/ip", "GET"),
        ("POST", f"/vms/{SEQUOIA}/logs", "GET"),
        ("PUT", "/vms", "GET"),
        ("POST", "/health", "GET"),
        ("DELETE", "/ready", "GET"),
        ("POST", "/openapi.json", "GET"),
        ("POST", "/metrics", "GET"),
    ):
        status, headers, body = operator.request(method, path)
        problem_of(status, headers, body, 405)
        allow = {m.strip() for m in (headers.get("Allow") or "").split(",")}
        assert allowed in allow and method not in allow, (method, path, headers.get("Allow"))
    assert [c for c in operator.calls() if c.command not in ("--version", "list")] == []


# --- start / stop / suspend ---------------------------------------------------------------


def test_start_is_202_then_running_and_second_start_is_unchanged(operator):
    vm = start_vm(operator, SEQUOIA)
    assert set(vm) >= VM_KEYS and vm["running"] is True and vm["status"] == "running"
    detail = expect_json(operator, "GET", f"/vms/{SEQUOIA}")
    assert detail["state"] == detail["status"] == "running" and detail["running"] is True
    assert_utc_timestamp(detail["last_run"]["started_at"])
    assert detail["last_run"]["exit_code"] is None and detail["last_run"]["error"] is None
    assert direct_states(operator)[SEQUOIA] == "running"
    again = expect_json(operator, "POST", f"/vms/{SEQUOIA}/start", 200)
    assert again["changed"] is False and again["state"] == "running"
    assert len(operator.calls("run")) == 1


def test_stop_is_200_and_stop_again_is_unchanged(operator):
    start_vm(operator, SEQUOIA)
    stop_vm(operator, SEQUOIA)
    assert direct_states(operator)[SEQUOIA] == "stopped"
    again = expect_json(operator, "POST", f"/vms/{SEQUOIA}/stop")
    assert again["changed"] is False and again["state"] == "stopped"
    assert len(operator.calls("stop")) == 1
    last_run = expect_json(operator, "GET", f"/vms/{SEQUOIA}")["last_run"]
    assert last_run["exit_code"] == 0 and last_run["error"] is None


def test_stop_timeout_is_0_to_300(operator):
    start_vm(operator, SEQUOIA)
    for value in ("-1", "301", "abc", "", "1.5", "1e2"):
        expect_problem(operator, "POST", f"/vms/{SEQUOIA}/stop?timeout={value}", 400)
    assert operator.calls("stop") == []
    assert direct_states(operator)[SEQUOIA] == "running"
    assert expect_json(operator, "POST", f"/vms/{SEQUOIA}/stop?timeout=300")["changed"] is True
    assert [c.argv for c in operator.calls("stop")] == [("stop", "--timeout", "300", SEQUOIA)]
    for value in ("0", "300"):  # the bounds are accepted
        assert expect_json(operator, "POST", f"/vms/{SONOMA}/stop?timeout={value}")["changed"] is False


def test_start_suspendable_must_be_boolean(operator):
    for value in ("maybe", ""):
        expect_problem(operator, "POST", f"/vms/{SEQUOIA}/start?suspendable={value}", 400)
    assert operator.calls("run") == []


def test_suspend_a_suspendable_vm(operator):
    start_vm(operator, SEQUOIA, "?suspendable=true")
    assert "--suspendable" in operator.calls("run")[0].argv
    vm = expect_json(operator, "POST", f"/vms/{SEQUOIA}/suspend")
    assert vm["state"] == vm["status"] == "suspended" and vm["running"] is False
    assert expect_json(operator, "GET", f"/vms/{SEQUOIA}")["state"] == "suspended"
    assert direct_states(operator)[SEQUOIA] == "suspended"
    assert list(api_states(operator, "?state=suspended")) == [SEQUOIA]


def test_suspend_of_a_stopped_vm_is_409(operator):
    expect_problem(operator, "POST", f"/vms/{SEQUOIA}/suspend", 409)
    assert operator.calls("suspend") == []


def test_start_failure_is_502_with_tarts_message(operator_factory):
    message = "VZErrorDomain Code=1: Internal Virtualization error. The virtual machine failed to start."
    op = operator_factory(env={"TART_SIM_RUN_FAIL": message})
    doc = expect_problem(op, "POST", f"/vms/{SEQUOIA}/start", 502)
    assert message in doc["detail"]
    detail = expect_json(op, "GET", f"/vms/{SEQUOIA}")
    assert detail["state"] == "stopped"
    assert detail["last_run"]["exit_code"] == 1
    assert message in detail["last_run"]["error"]


def test_start_refused_by_tart_as_already_running_is_409(operator_factory):
    """A VM "already running elsewhere": someone else's `tart run` took the VM's lock between
    the operator's check and its own `tart run`, which Tart refuses with its own message."""
    message = f'VM "{SEQUOIA}" is already running!'
    op = operator_factory(env={"TART_SIM_RUN_FAIL": message})
    doc = expect_problem(op, "POST", f"/vms/{SEQUOIA}/start", 409)
    assert doc["detail"] == message
    assert len(op.calls("run")) == 1


def test_vm_limit_from_tart_when_cap_disabled(operator_factory):
    op = operator_factory(env={"TART_SIM_VM_LIMIT": "2"}, args=["--max-running", "0"])
    assert op.tart("clone", SEQUOIA, "macos-third").returncode == 0
    start_vm(op, SEQUOIA)
    start_vm(op, SONOMA)
    doc = expect_problem(op, "POST", "/vms/macos-third/start", 409)
    assert doc["detail"] == "The number of VMs exceeds the system limit"
    assert len(op.calls("run")) == 3  # Tart itself refused the third
    assert direct_states(op)["macos-third"] == "stopped"


def test_vm_limit_enforced_before_tart_is_asked(operator):
    assert operator.tart("clone", SEQUOIA, "macos-third").returncode == 0
    start_vm(operator, SEQUOIA)
    start_vm(operator, SONOMA)
    doc = expect_problem(operator, "POST", "/vms/macos-third/start", 409)
    assert re.search(r"\b2\b", doc["detail"]), doc  # names the limit
    assert "exceeds the system limit" not in doc["detail"]
    assert [c.argv[-1] for c in operator.calls("run")] == [SEQUOIA, SONOMA]


def test_vm_started_outside_the_api(operator):
    outside = operator.spawn_run(SEQUOIA)
    wait_for(lambda: direct_states(operator)[SEQUOIA] == "running")
    vm = expect_json(operator, "POST", f"/vms/{SEQUOIA}/start", 200)
    assert vm["changed"] is False and vm["state"] == "running"
    assert operator.calls("run") == []
    assert outside.poll() is None
    stop_vm(operator, SEQUOIA)  # the API can stop what it did not start
    assert outside.wait(timeout=5) == 0


# --- ip, logs ----------------------------------------------------------------------------


def test_ip_of_running_and_stopped_vm(operator):
    start_vm(operator, SEQUOIA)
    body = expect_json(operator, "GET", f"/vms/{SEQUOIA}/ip")
    assert isinstance(ipaddress.ip_address(body["ip"]), ipaddress.IPv4Address)
    assert body["ip"] == operator.tart("ip", SEQUOIA).stdout.strip()
    assert expect_json(operator, "GET", f"/vms/{SEQUOIA}/ip?wait=120")["ip"] == body["ip"]
    expect_problem(operator, "GET", f"/vms/{SONOMA}/ip?wait=0", 409)
    for value in ("-1", "121", "abc", ""):
        expect_problem(operator, "GET", f"/vms/{SONOMA}/ip?wait={value}", 400)


def test_logs_are_text_with_the_simulators_output(operator):
    expect_problem(operator, "GET", f"/vms/{SEQUOIA}/logs", 404)  # never started
    start_vm(operator, SEQUOIA)

    def log_text() -> str:
        status, headers, body = operator.request("GET", f"/vms/{SEQUOIA}/logs")
        assert status == 200 and headers.get_content_type() == "text/plain"
        return body.decode()

    wait_for(lambda: f"[tart-sim] starting VM {SEQUOIA}" in log_text())
    stop_vm(operator, SEQUOIA)
    wait_for(lambda: f"[tart-sim] VM {SEQUOIA} shut down" in log_text())
    expect_problem(operator, "GET", f"/vms/{SONOMA}/logs", 404)


def test_logs_and_last_run_survive_a_restart(operator_factory):
    first = operator_factory()
    start_vm(first, SEQUOIA)
    stop_vm(first, SEQUOIA)
    logs = first.request("GET", f"/vms/{SEQUOIA}/logs")[2]
    last_run = expect_json(first, "GET", f"/vms/{SEQUOIA}")["last_run"]
    assert b"[tart-sim] starting VM" in logs and last_run["exit_code"] == 0
    assert first.stop()[0] == 0
    second = operator_factory(tart_home=first.tart_home, state_dir=first.state_dir)
    status, headers, body = second.request("GET", f"/vms/{SEQUOIA}/logs")
    assert status == 200 and headers.get_content_type() == "text/plain" and body == logs
    assert expect_json(second, "GET", f"/vms/{SEQUOIA}")["last_run"] == last_run


# --- Tart that hangs -----------------------------------------------------------------------


def test_hanging_tart_is_504_in_time_and_leaves_nothing_behind(operator_factory):
    op = operator_factory(env={"TART_SIM_HANG": "list"}, args=["--tart-timeout", "1"])
    with ThreadPoolExecutor(1) as pool:
        sent = time.monotonic()
        pending = pool.submit(op.request, "GET", "/vms")
        wait_for(lambda: op.calls("list"), message="tart list is running")
        status, health = op.json("GET", "/health")  # while tart list hangs
        assert status == 200 and health["status"] == "healthy"
        assert not pending.done(), "/health must answer while a Tart call hangs"
        status, headers, body = pending.result(timeout=10)
        elapsed = time.monotonic() - sent
    problem_of(status, headers, body, 504)
    assert elapsed < 1 + 1, f"504 after {elapsed:.2f} s with --tart-timeout 1"
    hung = op.calls("list")
    assert hung and not any(call.finished for call in hung)  # killed, never ended by itself
    for call in hung:
        wait_for(lambda pid=call.pid: not Path(f"/proc/{pid}").exists(),
                 message=f"hung tart list (pid {call.pid}) is gone")
    assert set(processes_with_tart_home(op.tart_home)) == {op.pid}


# --- concurrency, processes ----------------------------------------------------------------


def test_concurrent_starts_launch_one_tart_run(operator):
    barrier = threading.Barrier(8)

    def start() -> tuple[int, Any]:
        barrier.wait(timeout=10)
        return operator.json("POST", f"/vms/{SEQUOIA}/start")

    with ThreadPoolExecutor(8) as pool:
        results = [f.result(timeout=30) for f in [pool.submit(start) for _ in range(8)]]
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 7 + [202], results
    for status, vm in results:
        assert vm["state"] == "running" and vm["changed"] is (status == 202)
    assert len(operator.calls("run")) == 1


def test_concurrent_start_and_stop_are_serialised(operator):
    ops = ["start", "stop"] * 3
    barrier = threading.Barrier(len(ops))

    def call(action: str) -> tuple[str, int, Any]:
        barrier.wait(timeout=10)
        status, vm = operator.json("POST", f"/vms/{SEQUOIA}/{action}")
        return action, status, vm

    with ThreadPoolExecutor(len(ops)) as pool:
        results = [f.result(timeout=60) for f in [pool.submit(call, a) for a in ops]]
    for action, status, vm in results:
        expected = {202} if action == "start" and vm.get("changed") else {200}
        assert status in expected, (action, status, vm)
    changes = [c.command for c in operator.calls() if c.command in ("run", "stop")]
    # one write at a time: Tart sees run, stop, run, stop ... never two of a kind in a row
    assert all(a != b for a, b in itertools.pairwise(changes)), changes
    assert not changes or changes[0] == "run", changes
    assert changes.count("run") == sum(1 for a, s, _ in results if a == "start" and s == 202)
    assert changes.count("stop") == sum(1 for a, _, vm in results if a == "stop" and vm["changed"])
    final = "running" if changes and changes[-1] == "run" else "stopped"
    assert direct_states(operator)[SEQUOIA] == final
    assert expect_json(operator, "GET", f"/vms/{SEQUOIA}")["state"] == final


def test_no_zombies_after_start_stop_cycles(operator):
    for _ in range(5):
        start_vm(operator, SEQUOIA)
        stop_vm(operator, SEQUOIA)
    assert len(operator.calls("run")) == 5
    wait_for(lambda: not [c for c in children(operator.pid) if c[1] == "Z"],
             message=f"no zombie children of the operator: {children(operator.pid)}")
    assert children(operator.pid) == []  # and no tart run left behind either


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_finishes_requests_and_leaves_vms_running(operator_factory, sig):
    op = operator_factory(env={"TART_SIM_DELAY": "0.5"})  # every Tart call takes 0.5 s
    start_vm(op, SEQUOIA)
    lists_before = len(op.calls("list"))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(op.request, "GET", "/vms")
        wait_for(lambda: len(op.calls("list")) > lists_before,
                 message="GET /vms is in flight (its tart list has started)")
        code, seconds = op.stop(sig)
        status, _, body = pending.result(timeout=10)
    assert status == 200, body
    assert {vm["name"]: vm["state"] for vm in json.loads(body)}[SEQUOIA] == "running"
    assert code == 0
    assert seconds < 2, f"exit took {seconds:.2f} s"
    assert direct_states(op)[SEQUOIA] == "running"  # the VM outlives the operator
    successor = operator_factory(tart_home=op.tart_home, state_dir=op.state_dir)
    assert expect_json(successor, "GET", f"/vms/{SEQUOIA}")["state"] == "running"
    stop_vm(successor, SEQUOIA)
    assert direct_states(op)[SEQUOIA] == "stopped"


# --- freshness --------------------------------------------------------------------------------


def test_change_made_outside_shows_within_one_second(operator):
    assert api_states(operator)[SEQUOIA] == "stopped"  # the cache now holds "stopped"
    operator.spawn_run(SEQUOIA)
    wait_for(lambda: direct_states(operator)[SEQUOIA] == "running")
    changed_at = time.monotonic()
    while True:
        sent = time.monotonic()
        state = api_states(operator)[SEQUOIA]
        if state == "running":
            break
        assert sent - changed_at <= 1.0, f"GET /vms sent {sent - changed_at:.2f} s later still says {state}"
        time.sleep(0.05)


def test_change_made_through_the_api_is_visible_at_once(operator):
    assert api_states(operator)[SEQUOIA] == "stopped"  # primes the cache
    start_vm(operator, SEQUOIA)
    assert api_states(operator)[SEQUOIA] == "running"
    assert expect_json(operator, "GET", f"/vms/{SEQUOIA}")["state"] == "running"
    stop_vm(operator, SEQUOIA)
    assert api_states(operator)[SEQUOIA] == "stopped"
    assert api_states(operator, "?state=running") == {}


# --- /metrics -----------------------------------------------------------------------------------

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"')
_VALUE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?Inf|NaN")
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _parse_sample(line: str) -> tuple[str, dict[str, str], float]:
    match = _NAME.match(line)
    assert match, line
    name, i, labels = match.group(), match.end(), {}
    if line[i:i + 1] == "{":
        i += 1
        while True:
            while line[i] in " \t":
                i += 1
            if line[i] == "}":
                i += 1
                break
            label = _LABEL.match(line, i)
            assert label, f"bad label at {i}: {line}"
            key, i, value = label.group(1), label.end(), ""
            while line[i] != '"':
                if line[i] == "\\":
                    assert line[i + 1] in '\\"n', f"bad escape: {line}"
                    value += {"\\": "\\", '"': '"', "n": "\n"}[line[i + 1]]
                    i += 2
                else:
                    value += line[i]
                    i += 1
            i += 1
            assert key not in labels, f"label {key} twice: {line}"
            labels[key] = value
            while line[i] in " \t":
                i += 1
            if line[i] == ",":
                i += 1
            elif line[i] == "}":
                i += 1
                break
            else:
                raise AssertionError(f"bad label list: {line}")
    rest = line[i:]
    parts = rest.split()
    assert rest[:1] in (" ", "\t") and 1 <= len(parts) <= 2, line
    assert _VALUE.fullmatch(parts[0]), line
    if len(parts) == 2:
        assert re.fullmatch(r"-?\d+", parts[1]), line  # timestamp
    return name, labels, float(parts[0])


def parse_prometheus(text: str) -> dict[str, dict[str, Any]]:
    """Parse text format 0.0.4 strictly; return {family: {type, help, samples}}."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    families: dict[str, dict[str, Any]] = {}
    closed: set[str] = set()
    current = None

    def family_of(name: str) -> str:
        if name in families:
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and families.get(base, {}).get("type") in ("histogram", "summary"):
                return base
        raise AssertionError(f"sample {name} has no # TYPE line before it")

    def enter(family: str) -> None:
        nonlocal current
        if family != current:
            assert family not in closed, f"lines of {family} are not grouped together"
            if current is not None:
                closed.add(current)
            current = family

    for line in text.split("\n")[:-1]:
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert _NAME.fullmatch(name), line
                family = families.setdefault(name, {"type": None, "help": None, "samples": []})
                enter(name)
                key = parts[1].lower()
                assert family[key] is None, f"second {parts[1]} for {name}"
                if key == "type":
                    assert len(parts) == 4 and parts[3] in _TYPES, line
                    assert not family["samples"], f"TYPE after samples of {name}"
                    family["type"] = parts[3]
                else:
                    family["help"] = parts[3] if len(parts) == 4 else ""
            continue
        name, labels, value = _parse_sample(line)
        family = family_of(name)
        enter(family)
        families[family]["samples"].append((name, labels, value))
    for name, family in families.items():
        assert family["type"] and family["help"] is not None, f"{name} lacks HELP or TYPE"
        keys = [(n, tuple(sorted(l.items()))) for n, l, _ in family["samples"]]
        assert len(keys) == len(set(keys)), f"duplicate samples in {name}"
        if family["type"] == "histogram":
            check_histogram(name, family["samples"])
    return families


def check_histogram(name: str, samples: list[tuple[str, dict[str, str], float]]) -> None:
    series: dict[tuple, dict[str, Any]] = {}
    for sample_name, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        entry = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sample_name == f"{name}_bucket":
            entry["buckets"].append((labels["le"], value))
        elif sample_name == f"{name}_sum":
            entry["sum"] = value
        elif sample_name == f"{name}_count":
            entry["count"] = value
        else:
            raise AssertionError(f"{sample_name} in histogram {name}")
    assert series, f"histogram {name} has no series"
    for key, entry in series.items():
        bounds = [float(le) for le, _ in entry["buckets"]]
        counts = [count for _, count in entry["buckets"]]
        assert entry["buckets"] and entry["buckets"][-1][0] == "+Inf", (name, key)
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), (name, key, bounds)
        assert all(a <= b for a, b in itertools.pairwise(counts)), f"{name}{key} not cumulative: {counts}"
        assert entry["count"] == counts[-1], (name, key, entry)
        assert entry["sum"] is not None and not math.isnan(entry["sum"]), (name, key)


def test_metrics_are_prometheus_text_with_request_and_tart_counts(operator):
    wait_for(lambda: operator.json("GET", "/health")[1]["tart"]["version"])  # version call done
    for path in ("/vms", "/vms", "/nope", "/vms?state=bogus"):
        operator.request("GET", path)
    start_vm(operator, SEQUOIA)

    def scrape() -> dict[str, dict[str, Any]] | None:
        status, headers, body = operator.request("GET", "/metrics")
        assert status == 200 and headers.get_content_type() == "text/plain"
        assert "version=0.0.4" in headers.get("Content-Type", "").replace(" ", "")
        families = parse_prometheus(body.decode("utf-8"))
        requests = [f for f in families.values() if f["type"] == "counter"
                    and any({"method", "status"} <= set(l) for _, l, _ in f["samples"])]
        tart = [f for f in families.values() if f["type"] == "counter"
                and any("command" in l for _, l, _ in f["samples"])]
        assert len(requests) == 1 and len(tart) == 1, sorted(families)

        def requests_with(**want: str) -> float:
            return sum(v for _, l, v in requests[0]["samples"] if want.items() <= l.items())

        # every finished Tart call is counted (the long-lived `tart run` aside)
        finished = [c for c in operator.calls() if c.finished and c.command != "run"]
        tart_total = sum(v for _, l, v in tart[0]["samples"] if l.get("command") != "run")
        if (requests_with(method="GET", status="200") >= 2 and requests_with(status="404") == 1
                and requests_with(status="400") == 1 and requests_with(method="POST", status="202") == 1
                and tart_total == len(finished)):
            return families
        return None

    families = wait_for(scrape, interval=0.1,
                        message="/metrics counts the requests made and every Tart call")
    assert any(f["type"] == "histogram" for f in families.values())


# --- /openapi.json ---------------------------------------------------------------------------------

def expected_errors(route: Any) -> set[int]:
    """The 4xx/5xx codes a route can answer, read from its declaration: the status of each
    problem it declares (through the catalogue), and 400 when a parameter can be refused."""
    from vm_operator.edge.problems import ProblemType, problem_of

    codes = set()
    for declared in route.problems:
        problem = declared if isinstance(declared, ProblemType) else problem_of(declared)
        assert problem is not None, f"{route.pattern}: {declared!r} is not catalogued"
        codes.add(problem.status)
    if any(param.type.refuses for param in (*route.path, *route.query)):
        codes.add(400)
    return codes


HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def test_openapi_matches_the_route_table(operator):
    from vm_operator.api import ROUTES

    doc = expect_json(operator, "GET", "/openapi.json")
    assert str(doc["openapi"]).startswith("3.1")
    described = {(method.upper(), path) for path, item in doc["paths"].items()
                 for method in item if method in HTTP_METHODS}
    assert described == {(route.method, route.pattern) for route in ROUTES}
    problems = []
    for route in ROUTES:
        operation = doc["paths"][route.pattern][route.method.lower()]
        params = operation.get("parameters", [])
        query = {p["name"] for p in params if p["in"] == "query"}
        if query != set(route.query_names):
            problems.append(f"{route.method} {route.pattern}: query {sorted(query)} != "
                            f"{route.query_names}")
        path_params = {p["name"]: p for p in params if p["in"] == "path"}
        if set(path_params) != set(re.findall(r"\{(\w+)\}", route.pattern)):
            problems.append(f"{route.method} {route.pattern}: path parameters {sorted(path_params)}")
        if any(p.get("required") is not True for p in path_params.values()):
            problems.append(f"{route.method} {route.pattern}: a path parameter is not required")
        codes = {int(code) for code in operation["responses"] if code.isdigit()}
        if not any(200 <= code < 300 for code in codes):
            problems.append(f"{route.method} {route.pattern}: no success response")
        expected = expected_errors(route)
        if expected - codes:
            problems.append(f"{route.method} {route.pattern}: undescribed {sorted(expected - codes)}")
        for code in codes:
            content = operation["responses"][str(code)].get("content", {})
            if code >= 400 and PROBLEM not in content:
                problems.append(f"{route.method} {route.pattern} {code}: not application/problem+json")
    assert not problems, "\n".join(problems)


# --- access log -----------------------------------------------------------------------------------


def test_access_log_is_one_json_line_per_request_without_authorization(operator):
    secret = "s3cr3t-t0ken-value-0123456789"
    auth = {"Authorization": f"Bearer {secret}"}
    sent = [
        ("GET", "/health", {}, 200),
        ("GET", "/vms?source=local", auth, 200),
        ("POST", f"/vms/{SEQUOIA}/start?suspendable=maybe", auth, 400),
        ("GET", "/nope", auth, 404),
    ]
    for method, path, headers, status in sent:
        assert operator.request(method, path, headers=headers)[0] == status

    def access_lines() -> list[dict[str, Any]]:
        return [r for r in operator.log_records() if "method" in r]

    wait_for(lambda: len(access_lines()) >= len(sent), message="one access log line per request")
    records = access_lines()
    assert len(records) == len(sent), records
    # each line is written after its response, so two requests may log in either order
    by_path = {record["path"]: record for record in records}
    for method, path, _, status in sent:
        record = by_path[path.partition("?")[0]]
        assert record["method"] == method
        assert record["path"] == path.partition("?")[0] or record["path"] == path
        assert record["status"] == status
        assert isinstance(record["duration_ms"], int | float) and record["duration_ms"] >= 0
        assert record["client"] == "127.0.0.1"
    stdout = operator.stdout_path.read_text()
    for line in stdout.splitlines():
        assert isinstance(json.loads(line), dict), line  # every stdout line is one JSON object
    assert secret not in stdout and secret not in operator.stderr_path.read_text()
