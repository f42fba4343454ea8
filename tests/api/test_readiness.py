"""Readiness, end to end: a real operator driving the simulator, whose guests "boot"
(TART_SIM_BOOT_DELAY until `tart ip` answers, then TART_SIM_SSH_DELAY until the `tart run`
process listens on the guest's loopback address, on the operator's ready port).

A VM is ready when Tart reports its IP address and a TCP connection to IP:port succeeds. Every
address probed here, by the operator and by the tests, is a loopback one (asserted).
"""

from __future__ import annotations

import ipaddress
import socket

from conftest import LOCAL_VMS
from sse_client import EventReader
from support import wait_for

SEQUOIA, SONOMA, UBUNTU = LOCAL_VMS
PROBLEM = "application/problem+json"


def loopback(ip: str) -> str:
    assert ipaddress.ip_address(ip).is_loopback, f"{ip} is not a loopback address"
    return ip


def banner(ip: str, port: int) -> bytes:
    """Connect to the guest (a loopback address only) and read its greeting."""
    with socket.create_connection((loopback(ip), port), timeout=5) as sock:
        return sock.recv(64)


def refused(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((loopback(ip), port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def test_a_booting_vm_is_running_but_not_ready_then_ready(operator_factory):
    # generous delays: a Tart call takes up to a second on a busy test host
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "6", "TART_SIM_SSH_DELAY": "6"})
    assert op.detail(UBUNTU)["ready"] is False and op.detail(UBUNTU)["ip"] is None  # stopped
    status, body = op.json("POST", f"/vms/{UBUNTU}/start")
    assert status == 202 and body["state"] == "running"
    booting = op.detail(UBUNTU)
    assert booting["state"] == "running" and booting["ready"] is False
    # the IP address comes first, while the guest's port is still closed; then the port
    with_ip = wait_for(lambda: (found := op.detail(UBUNTU))["ip"] and found, timeout=30,
                       message="the booting VM never got an IP address")
    ip = loopback(with_ip["ip"])
    assert with_ip["ready"] is False
    ready = wait_for(lambda: (found := op.detail(UBUNTU))["ready"] and found, timeout=30,
                     message="the VM never became ready")
    assert ready["ip"] == ip and ready["state"] == "running"
    assert banner(ip, op.guest_port).startswith(b"SSH-2.0-")


def test_start_wait_ready_answers_once_the_guest_accepts_connections(operator_factory):
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "1", "TART_SIM_SSH_DELAY": "2"})
    status, body = op.json("POST", f"/vms/{UBUNTU}/start?wait=ready&timeout=60", timeout=90)
    assert status == 200, body
    assert body["ready"] is True and body["state"] == "running" and body["changed"] is True
    assert body["os"] == "linux" and body["last_run"]["finished_at"] is None  # the detail
    # the answer came once the guest listens: its port accepts now
    assert banner(body["ip"], op.guest_port).startswith(b"SSH-2.0-")
    assert op.detail(UBUNTU)["ready"] is True and op.detail(UBUNTU)["ip"] == body["ip"]
    # again, on a VM that runs and is ready: 200 at once, changed false
    status, again = op.json("POST", f"/vms/{UBUNTU}/start?wait=ready", timeout=90)
    assert status == 200 and again["ready"] is True and again["changed"] is False


def test_a_stopped_vm_is_not_ready_and_its_guest_port_is_gone(operator_factory):
    op = operator_factory()
    status, body = op.json("POST", f"/vms/{UBUNTU}/start?wait=ready&timeout=60", timeout=90)
    assert status == 200 and body["ready"] is True
    ip = body["ip"]
    status, _ = op.json("POST", f"/vms/{UBUNTU}/stop")
    assert status == 200
    stopped = op.detail(UBUNTU)
    assert stopped["state"] == "stopped" and stopped["ready"] is False and stopped["ip"] is None
    assert refused(ip, op.guest_port)  # the listener died with the run


def test_waiting_in_vain_for_an_ip_address_is_a_504_naming_it(operator_factory):
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "3600"})
    doc = op.problem("POST", f"/vms/{UBUNTU}/start?wait=ready&timeout=2", 504, "ready-timeout",
                     timeout=60)
    assert doc["type"] == "/problems/ready-timeout"
    assert doc["waiting_for"] == "ip" and doc["ip"] is None and doc["port"] == op.guest_port
    assert "no IP address" in doc["detail"] and "2 s" in doc["detail"]
    left = op.detail(UBUNTU)  # left running
    assert left["state"] == "running" and left["ready"] is False and left["ip"] is None


def test_waiting_in_vain_for_a_connection_is_a_504_naming_ip_and_port(operator_factory):
    op = operator_factory(env={"TART_SIM_SSH_DELAY": "3600"})
    doc = op.problem("POST", f"/vms/{UBUNTU}/start?wait=ready&timeout=2", 504, "ready-timeout",
                     timeout=60)
    assert doc["type"] == "/problems/ready-timeout" and doc["waiting_for"] == "connection"
    ip = loopback(doc["ip"])
    assert doc["port"] == op.guest_port and f"{ip}:{op.guest_port}" in doc["detail"]
    assert refused(ip, op.guest_port)
    left = op.detail(UBUNTU)
    assert left["state"] == "running" and left["ready"] is False and left["ip"] == ip


def test_the_ready_port_is_the_operators_setting(operator_factory):
    """The guest listens on its port; an operator probing another port never sees it ready."""
    op = operator_factory(env={"VM_OPERATOR_READY_PORT": "1"})  # nothing listens on port 1
    doc = op.problem("POST", f"/vms/{UBUNTU}/start?wait=ready&timeout=2", 504, "ready-timeout",
                     timeout=60)
    assert doc["waiting_for"] == "connection" and doc["port"] == 1
    assert banner(doc["ip"], op.guest_port).startswith(b"SSH-2.0-")  # yet the guest listens


def test_bad_wait_or_timeout_values_are_refused_and_nothing_starts(operator):
    for query in ("wait=soon", "wait=ready&timeout=0", "wait=ready&timeout=901",
                  "wait=ready&timeout=ten"):
        doc = operator.problem("POST", f"/vms/{UBUNTU}/start?{query}", 400, "invalid-parameter")
        assert doc["type"] == "/problems/invalid-parameter"
    assert operator.detail(UBUNTU)["state"] == "stopped"
    assert operator.calls("run") == []


def test_start_without_wait_answers_before_the_guest_is_ready(operator_factory):
    """`wait` absent keeps today's answer: 202 once Tart reports the VM running (a timeout
    without wait bounds nothing, and is ignored)."""
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "3600"})
    status, body = op.json("POST", f"/vms/{UBUNTU}/start?timeout=5")
    assert status == 202 and body["state"] == "running" and "ready" not in body


def test_openapi_documents_wait_timeout_and_the_504(operator):
    status, doc = operator.json("GET", "/openapi.json")
    assert status == 200
    start = doc["paths"]["/vms/{name}/start"]["post"]
    params = {p["name"]: p for p in start["parameters"] if p["in"] == "query"}
    assert params["wait"]["schema"] == {"enum": ["ready"]}
    assert params["timeout"]["schema"]["minimum"] == 1
    assert params["timeout"]["schema"]["maximum"] == 900
    assert "ready-timeout" in start["responses"]["504"]["description"]
    detail_schema = doc["components"]["schemas"]["VMDetail"]["allOf"][1]["properties"]
    assert detail_schema["ready"]["type"] == "boolean"
    status, _, page = operator.request("GET", "/problems/ready-timeout")
    assert status == 200 and b"The VM did not become ready in time" in page


def test_the_simulators_guests_listen_on_loopback_addresses_of_their_own(operator):
    """Outside the API: each running VM's `tart ip` is a loopback address of its own, where
    its `tart run` accepts connections; a bad TART_SIM_GUEST_PORT fails the run at once."""
    for name in (UBUNTU, SEQUOIA):
        operator.spawn_run(name)
    ips = []
    for name in (UBUNTU, SEQUOIA):
        out = operator.tart("ip", name, "--wait", "20", timeout=30)
        assert out.returncode == 0, out.stderr
        ips.append(loopback(out.stdout.strip()))
    assert ips[0] != ips[1]
    for ip in ips:
        wait_for(lambda ip=ip: not refused(ip, operator.guest_port), timeout=20)
        assert banner(ip, operator.guest_port).startswith(b"SSH-2.0-")
    bad = operator.tart("run", SONOMA, "--no-graphics", env={"TART_SIM_GUEST_PORT": "70000"})
    assert bad.returncode == 1 and "TART_SIM_GUEST_PORT" in bad.stderr


def test_a_watcher_hears_vm_ready_though_nobody_asks_for_the_detail(operator_factory):
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "1", "TART_SIM_SSH_DELAY": "1"})
    with EventReader(op.port, f"/events?vm={UBUNTU}") as reader:
        assert reader.status == 200
        status, _ = op.json("POST", f"/vms/{UBUNTU}/start")  # no wait, no GET of the detail
        assert status == 202
        event = reader.next_event(timeout=40, type_="vm.ready")
        assert event is not None, "no vm.ready on the stream"
        data = event.data["data"]
        assert data["port"] == op.guest_port and ipaddress.ip_address(data["ip"]).is_loopback
