"""The HTTP API of vm-operator, end to end: a real server process over loopback, driving the
Tart simulator as a real subprocess, each test in its own TART_HOME and state dir.

Every status code of the route table is produced here for real; TART_SIM_CALL_LOG proves
what did (and did not) reach Tart.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from conftest import LOCAL_VMS, OCI_NAME, OCI_PATH, VM_KEYS, Operator
from support import assert_utc_timestamp, children_of, processes_with_tart_home, wait_for

SEQUOIA, SONOMA, UBUNTU = LOCAL_VMS
PROBLEM = "application/problem+json"
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


def api_states(op: Operator, query: str = "") -> dict[str, str]:
    return {vm["name"]: vm["state"] for vm in op.ok("GET", "/vms" + query)}


# --- GET /vms ----------------------------------------------------------------------------


def test_list_vms_fields(operator):
    vms = operator.ok("GET", "/vms")
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
    operator.start_vm(SEQUOIA)
    assert list(api_states(operator, "?state=running")) == [SEQUOIA]
    assert list(api_states(operator, "?state=stopped")) == [SONOMA, UBUNTU, OCI_NAME]
    assert api_states(operator, "?state=suspended") == {}
    assert list(api_states(operator, "?source=oci")) == [OCI_NAME]
    assert list(api_states(operator, "?source=local")) == list(LOCAL_VMS)
    assert list(api_states(operator, "?state=stopped&source=local")) == [SONOMA, UBUNTU]


def test_list_filter_unknown_value_is_400(operator):
    for query in ("state=bogus", "state=", "state=RUNNING", "source=remote", "source=",
                  "source=OCI", "state=running&source=remote"):
        operator.problem("GET", f"/vms?{query}", 400, "invalid-parameter")


@pytest.mark.parametrize("shape", ["1.7", "2.15", "2.31"])
def test_list_parses_every_tart_shape(operator_factory, shape):
    op = operator_factory(env={"TART_SIM_LIST_SHAPE": shape})
    raw = json.loads(op.tart("list", "--format", "json", env={"TART_SIM_LIST_SHAPE": shape}).stdout)
    assert ("State" in raw[0]) == (shape != "1.7")  # the simulator really prints that shape
    assert ("SizeOnDisk" in raw[0]) == (shape == "2.15")
    assert ("Accessed" in raw[0]) == (shape == "2.31")
    op.start_vm(SEQUOIA)
    vms = op.ok("GET", "/vms")
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
    op.problem("GET", path, 502, "tart-bad-output")
    assert op.ok("GET", "/health")["status"] == "healthy"


# --- GET /vms/{name} --------------------------------------------------------------------


def test_get_vm_details(operator):
    mac = operator.ok("GET", f"/vms/{SEQUOIA}")
    assert set(mac) >= DETAIL_KEYS
    assert (mac["name"], mac["source"], mac["state"], mac["status"]) == (SEQUOIA, "local", "stopped", "stopped")
    assert (mac["os"], mac["cpu"], mac["memory_mb"]) == ("darwin", 4, 8192)
    assert (mac["disk_format"], mac["display"], mac["disk_gb"]) == ("raw", "1024x768", 50)
    assert mac["last_run"] is None
    linux = operator.ok("GET", f"/vms/{UBUNTU}")
    assert (linux["os"], linux["cpu"], linux["memory_mb"], linux["disk_gb"]) == ("linux", 2, 4096, 20)


def test_unknown_vm_is_404_on_every_name_route(operator):
    for method, template in NAME_ROUTES:
        slug = "no-logs" if template.endswith("/logs") else "vm-not-found"
        doc = operator.problem(method, template.format("no-such-vm"), 404, slug)
        assert "no-such-vm" in doc["detail"], (method, template, doc)
    assert not [c for c in operator.calls() if c.command in ("run", "stop", "suspend", "ip")]


def test_oci_name_percent_encoded(operator):
    vm = operator.ok("GET", f"/vms/{OCI_PATH}")
    assert vm["name"] == OCI_NAME and vm["source"] == "oci" and vm["state"] == "stopped"
    doc = operator.problem("POST", f"/vms/{OCI_PATH}/start", 409, "oci-image")
    assert OCI_NAME in doc["detail"]
    operator.problem("GET", f"/vms/{OCI_PATH}/logs", 409, "oci-image")  # like every action on an image
    assert operator.calls("run") == []
    # unencoded, the slashes make it another (unknown) route
    operator.problem("GET", f"/vms/{OCI_NAME}", 404, "no-route")


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
    operator.problem("GET", "/vms/" + "a" * 255, 404, "vm-not-found")  # valid, just unknown
    operator.problem("GET", "/vms/" + "a" * 256, 400, "invalid-name")


def test_unknown_route_is_404(operator):
    for method, path in (("GET", "/nope"), ("GET", "/ui/nope.js"), ("GET", "/healthz"),
                         ("GET", "/vms/x/reboot"), ("POST", "/vms/x/reboot"),
                         ("GET", "/vms/x/start/now"), ("GET", "/vms/a/b/c/d")):
        operator.problem(method, path, 404, "no-route")


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
        operator.problem(method, path, 405, "method-not-allowed")
        headers = operator.request(method, path)[1]
        allow = {m.strip() for m in (headers.get("Allow") or "").split(",")}
        assert allowed in allow and method not in allow, (method, path, headers.get("Allow"))
    assert [c for c in operator.calls() if c.command not in ("--version", "list")] == []


# --- ip, logs ----------------------------------------------------------------------------


def test_ip_of_running_and_stopped_vm(operator):
    operator.start_vm(SEQUOIA)
    body = operator.ok("GET", f"/vms/{SEQUOIA}/ip")
    assert isinstance(ipaddress.ip_address(body["ip"]), ipaddress.IPv4Address)
    assert body["ip"] == operator.tart("ip", SEQUOIA).stdout.strip()
    assert operator.ok("GET", f"/vms/{SEQUOIA}/ip?wait=120")["ip"] == body["ip"]
    operator.problem("GET", f"/vms/{SONOMA}/ip?wait=0", 409, "not-running")
    for value in ("-1", "121", "abc", ""):
        operator.problem("GET", f"/vms/{SONOMA}/ip?wait={value}", 400, "invalid-parameter")


def test_logs_are_text_with_the_simulators_output(operator):
    operator.problem("GET", f"/vms/{SEQUOIA}/logs", 404, "no-logs")  # never started
    operator.start_vm(SEQUOIA)

    def log_text() -> str:
        status, headers, body = operator.request("GET", f"/vms/{SEQUOIA}/logs")
        assert status == 200 and headers.get_content_type() == "text/plain"
        return body.decode()

    wait_for(lambda: f"[tart-sim] starting VM {SEQUOIA}" in log_text())
    operator.stop_vm(SEQUOIA)
    wait_for(lambda: f"[tart-sim] VM {SEQUOIA} shut down" in log_text())
    operator.problem("GET", f"/vms/{SONOMA}/logs", 404, "no-logs")


def test_logs_and_last_run_survive_a_restart(operator_factory):
    first = operator_factory()
    first.start_vm(SEQUOIA)
    first.stop_vm(SEQUOIA)
    logs = first.request("GET", f"/vms/{SEQUOIA}/logs")[2]
    last_run = first.ok("GET", f"/vms/{SEQUOIA}")["last_run"]
    assert b"[tart-sim] starting VM" in logs and last_run["exit_code"] == 0
    assert first.stop()[0] == 0
    second = operator_factory(tart_home=first.tart_home, state_dir=first.state_dir)
    status, headers, body = second.request("GET", f"/vms/{SEQUOIA}/logs")
    assert status == 200 and headers.get_content_type() == "text/plain" and body == logs
    assert second.ok("GET", f"/vms/{SEQUOIA}")["last_run"] == last_run


# --- Tart that hangs -----------------------------------------------------------------------


def test_hanging_tart_is_504_in_time_and_leaves_nothing_behind(operator_factory):
    op = operator_factory(env={"TART_SIM_HANG": "list"}, args=["--tart-timeout", "1"])
    with ThreadPoolExecutor(1) as pool:
        sent = time.monotonic()
        pending = pool.submit(op.problem, "GET", "/vms", 504, "tart-timeout")
        wait_for(lambda: op.calls("list"), message="tart list is running")
        status, health = op.json("GET", "/health")  # while tart list hangs
        assert status == 200 and health["status"] == "healthy"
        assert not pending.done(), "/health must answer while a Tart call hangs"
        pending.result(timeout=10)
        elapsed = time.monotonic() - sent
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
    assert operator.tart_state(SEQUOIA) == final
    assert operator.ok("GET", f"/vms/{SEQUOIA}")["state"] == final


def test_no_zombies_after_start_stop_cycles(operator):
    for _ in range(5):
        operator.start_vm(SEQUOIA)
        operator.stop_vm(SEQUOIA)
    assert len(operator.calls("run")) == 5
    wait_for(lambda: not [c for c in children_of(operator.pid) if c[1] == "Z"],
             message=f"no zombie children of the operator: {children_of(operator.pid)}")
    assert children_of(operator.pid) == []  # and no tart run left behind either


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_shutdown_finishes_requests_and_leaves_vms_running(operator_factory, sig):
    op = operator_factory(env={"TART_SIM_DELAY": "0.5"})  # every Tart call takes 0.5 s
    op.start_vm(SEQUOIA)
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
    assert op.tart_state(SEQUOIA) == "running"  # the VM outlives the operator
    successor = operator_factory(tart_home=op.tart_home, state_dir=op.state_dir)
    assert successor.ok("GET", f"/vms/{SEQUOIA}")["state"] == "running"
    successor.stop_vm(SEQUOIA)
    assert op.tart_state(SEQUOIA) == "stopped"


# --- freshness --------------------------------------------------------------------------------


def test_change_made_outside_shows_within_one_second(operator):
    assert api_states(operator)[SEQUOIA] == "stopped"  # the cache now holds "stopped"
    operator.spawn_run(SEQUOIA)
    wait_for(lambda: operator.tart_state(SEQUOIA) == "running")
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
    operator.start_vm(SEQUOIA)
    assert api_states(operator)[SEQUOIA] == "running"
    assert operator.ok("GET", f"/vms/{SEQUOIA}")["state"] == "running"
    operator.stop_vm(SEQUOIA)
    assert api_states(operator)[SEQUOIA] == "stopped"
    assert api_states(operator, "?state=running") == {}


# --- logs, refused ----------------------------------------------------------------------------


def test_logs_of_an_unknown_vm_and_of_a_vm_never_started_are_404(operator):
    doc = operator.problem("GET", "/vms/no-such-vm/logs", 404, "no-logs")
    assert "no-such-vm" in doc["detail"]
    operator.problem("GET", f"/vms/{SONOMA}/logs", 404, "no-logs")
    # a valid name whose state folder would be longer than a file name (found by schemathesis)
    long_name = quote("0/" * 127 + "0", safe="")
    operator.problem("GET", f"/vms/{long_name}/logs", 404, "no-logs")


# --- query booleans: accepted as their refusal says -------------------------------------------


def test_a_boolean_query_value_is_exactly_one_of_the_words_its_refusal_names(operator):
    for name, path in (("suspendable", f"/vms/{SEQUOIA}/start"), ("force", f"/vms/{SONOMA}")):
        method = "POST" if name == "suspendable" else "DELETE"
        for value in ("1", "0", "TRUE", "False", "yes", "on", ""):
            doc = operator.problem(method, f"{path}?{name}={value}", 400, "invalid-parameter")
            assert doc["detail"] == f"{name} must be true or false", doc
    assert [c for c in operator.calls() if c.command in ("run", "stop", "delete")] == []
    operator.ok("POST", f"/vms/{SEQUOIA}/start?suspendable=false", 202)
    assert "--suspendable" not in operator.calls("run")[0].argv
    assert operator.request("DELETE", f"/vms/{SONOMA}?force=true")[0] == 204
