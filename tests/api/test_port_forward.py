"""GET /vms/{name}/port-forward?port=N: a WebSocket carrying a TCP connection to a guest's port,
spoken to by a WebSocket client nobody here wrote (the ``websockets`` package), through a real
operator driving the simulator, whose guests' ports are real loopback listeners
(TART_SIM_GUEST_SERVICES: an echo port)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from collections.abc import Iterator

import pytest
from conftest import Operator, free_port, wait_for
from support import round_trip
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

TOKEN = "tunnel-write-token-0123456789"
READ_TOKEN = "tunnel-read-token-0123456789"
VM = "ubuntu-runner"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def echo_port() -> int:
    return free_port()


@pytest.fixture
def op(operator_factory, echo_port: int) -> Iterator[Operator]:
    operator = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN,
                                     "VM_OPERATOR_READ_TOKEN": READ_TOKEN,
                                     "TART_SIM_GUEST_SERVICES": f"{echo_port}=echo"})
    status, body = operator.json("POST", f"/vms/{VM}/start?wait=ready&timeout=60", AUTH,
                                 timeout=90)
    assert status == 200, body
    yield operator


def tunnel(op: Operator, name: str, port: int | str, token: str = TOKEN) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{op.port}/vms/{name}/port-forward?port={port}",
                   additional_headers={"Authorization": f"Bearer {token}"},
                   max_size=None, open_timeout=20, close_timeout=5, legacy=True)


def refusal(op: Operator, name: str, port: int | str, token: str = TOKEN) -> tuple[int, dict]:
    with pytest.raises(InvalidStatus) as caught:
        tunnel(op, name, port, token).close()
    response = caught.value.response
    return response.status_code, json.loads(response.body or b"{}")


def test_megabytes_round_trip_through_a_guest_echo_port_intact(op: Operator,
                                                                echo_port: int) -> None:
    payload = os.urandom(4 * 1024 * 1024 + 7)
    with tunnel(op, VM, echo_port) as ws:
        back = round_trip(ws, payload)
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_twenty_tunnels_at_once_each_carry_their_own_stream(op: Operator,
                                                            echo_port: int) -> None:
    sockets = [tunnel(op, VM, echo_port) for _ in range(20)]
    results: dict[int, bytes] = {}
    payloads = {i: os.urandom(64 * 1024 + i) for i in range(20)}

    def use(i: int) -> None:
        results[i] = round_trip(sockets[i], payloads[i], 4096)

    threads = [threading.Thread(target=use, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ws in sockets:
        ws.close()
    assert results == payloads


def test_a_ping_gets_its_pong(op: Operator, echo_port: int) -> None:
    with tunnel(op, VM, echo_port) as ws:
        assert ws.ping(b"are you there").wait(10)


@pytest.mark.parametrize(("name", "port", "status", "slug"), [
    ("no-such-vm", "22", 404, "vm-not-found"),
    ("macos-sonoma-xcode", "22", 409, "not-running"),
    ("ghcr.io%2Fcirruslabs%2Fmacos-sequoia-base:latest", "22", 409, "oci-image"),
    (VM, "0", 400, "invalid-parameter"),
    (VM, "65536", 400, "invalid-parameter"),
    (VM, "ssh", 400, "invalid-parameter"),
])
def test_refusals_come_before_the_upgrade_as_problems(op: Operator, name: str, port: str,
                                                      status: int, slug: str) -> None:
    got, problem = refusal(op, name, port)
    assert (got, problem["type"].rsplit("/", 1)[-1]) == (status, slug), problem


def test_a_port_the_guest_does_not_accept_is_a_502_before_the_upgrade(op: Operator) -> None:
    status, problem = refusal(op, VM, free_port())
    assert status == 502 and problem["type"].endswith("/guest-refused"), problem


def test_a_missing_port_is_refused(op: Operator) -> None:
    status, body = op.json("GET", f"/vms/{VM}/port-forward", {
        **AUTH, "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert status == 400 and body is not None and "port" in body["detail"]


def test_a_plain_get_is_told_to_upgrade(op: Operator, echo_port: int) -> None:
    status, headers, _ = op.request("GET", f"/vms/{VM}/port-forward?port={echo_port}", AUTH)
    assert status == 426 and headers["Upgrade"] == "websocket"
    handshake = {**AUTH, "Upgrade": "websocket", "Connection": "Upgrade",
                 "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    status, _, _ = op.request("HEAD", f"/vms/{VM}/port-forward?port={echo_port}", handshake)
    assert status == 426  # a WebSocket opens with a GET only


def test_the_read_token_may_not_open_a_tunnel(op: Operator, echo_port: int) -> None:
    status, problem = refusal(op, VM, echo_port, READ_TOKEN)
    assert status == 403, problem
    status, _ = refusal(op, VM, echo_port, "not-a-token")
    assert status == 401


def test_past_the_cap_a_tunnel_is_refused_with_503(op: Operator, echo_port: int) -> None:
    held = [tunnel(op, VM, echo_port) for _ in range(64)]
    try:
        status, problem = refusal(op, VM, echo_port)
        assert status == 503 and problem["type"].endswith("/too-many-tunnels"), problem
    finally:
        for ws in held:
            ws.close()
    with tunnel(op, VM, echo_port) as ws:  # one ended: room again
        assert round_trip(ws, b"again") == b"again"


def test_a_tunnel_closes_when_its_vm_stops(op: Operator, echo_port: int) -> None:
    ws = tunnel(op, VM, echo_port)
    assert round_trip(ws, b"before") == b"before"
    status, body = op.json("POST", f"/vms/{VM}/stop", AUTH)
    assert status == 200, body
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=20)


def test_a_tunnel_that_ends_is_told_as_vm_connect(op: Operator, echo_port: int) -> None:
    with tunnel(op, VM, echo_port) as ws:
        round_trip(ws, b"x" * 1000)

    def told() -> dict | None:
        _, body = op.json("GET", f"/vms/{VM}/events", AUTH)
        found = [e for e in (body or {}).get("events", []) if e["type"] == "vm.connect"]
        return found[-1] if found else None

    event = wait_for(told, message="no vm.connect event")
    data = event["data"]
    assert data["port"] == echo_port and data["client"] == "127.0.0.1"
    assert data["bytes_to_guest"] == 1000 and data["bytes_from_guest"] == 1000
    assert data["duration_s"] >= 0


def test_shutdown_ends_a_tunnel_with_a_close_frame(op: Operator, echo_port: int) -> None:
    ws = tunnel(op, VM, echo_port)
    assert round_trip(ws, b"hello") == b"hello"
    op.proc.send_signal(signal.SIGTERM)
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_without_tokens_a_cross_site_page_may_not_open_a_tunnel(operator_factory,
                                                                 echo_port: int) -> None:
    # a browser opens a WebSocket to any site (no CORS): the tunnel counts as a write
    op = operator_factory(env={"TART_SIM_GUEST_SERVICES": f"{echo_port}=echo"})
    status, body = op.json("POST", f"/vms/{VM}/start?wait=ready&timeout=60", timeout=90)
    assert status == 200, body
    url = f"ws://127.0.0.1:{op.port}/vms/{VM}/port-forward?port={echo_port}"
    with pytest.raises(InvalidStatus) as caught:
        connect(url, origin="http://evil.example", open_timeout=20, legacy=True).close()
    assert caught.value.response.status_code == 403
    with connect(url, open_timeout=20, legacy=True) as ws:  # no Origin: not a browser's page
        assert round_trip(ws, b"ok") == b"ok"
