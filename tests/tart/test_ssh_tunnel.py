"""Tunnels over the SSH transport: the connection to the guest's port is made on the Mac's side,
by ``ssh -W`` through the one shared (multiplexed) SSH connection, with no new login per tunnel.

The "Mac" is the throw-away sshd of tests/sshd_env.py; its simulated guests have an echo port
(TART_SIM_GUEST_SERVICES in its environment).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sshd_env
from conftest import free_port
from support import round_trip
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

UBUNTU = "ubuntu-runner"


@pytest.fixture(scope="module")
def sshd() -> Iterator[sshd_env.SshdEnv]:
    yield from sshd_env.for_module()


@pytest.fixture
def op(operator_factory: Callable[..., Any], sshd: sshd_env.SshdEnv) -> Iterator[Any]:
    env = {**sshd.settings_env(), "VM_OPERATOR_READY_PORT": str(sshd.guest_port)}
    operator = operator_factory(env=env, args=["--tart", "tart"])
    status, body = operator.json("POST", f"/vms/{UBUNTU}/start?wait=ready&timeout=60", timeout=90)
    assert status == 200, body
    try:
        yield operator
    finally:
        operator.json("POST", f"/vms/{UBUNTU}/stop?timeout=2")


def tunnel(op: Any, port: int) -> ClientConnection:
    return connect(f"ws://127.0.0.1:{op.port}/vms/{UBUNTU}/port-forward?port={port}",
                   max_size=None, open_timeout=60, close_timeout=5, legacy=True)


def logins(sshd: sshd_env.SshdEnv) -> int:
    return sshd.sshd_log.read_text(errors="replace").count("Accepted publickey")


def test_over_ssh_a_tunnel_carries_megabytes_intact_without_a_login_per_tunnel(
        op: Any, sshd: sshd_env.SshdEnv) -> None:
    with tunnel(op, sshd.guest_echo_port) as ws:  # the shared connection is up from here
        assert round_trip(ws, b"warm", 65536, timeout=60) == b"warm"
    before = logins(sshd)
    assert before >= 1  # the log tells each login
    payload = os.urandom(2 * 1024 * 1024 + 3)
    with tunnel(op, sshd.guest_echo_port) as ws:
        back = round_trip(ws, payload, 65536, timeout=60)
    assert hashlib.sha256(back).digest() == hashlib.sha256(payload).digest()
    for _ in range(3):
        with tunnel(op, sshd.guest_echo_port) as ws:
            assert round_trip(ws, b"again", 65536, timeout=60) == b"again"
    assert logins(sshd) == before


def test_over_ssh_a_port_nothing_accepts_on_the_host_is_a_502(op: Any) -> None:
    with pytest.raises(InvalidStatus) as caught:
        tunnel(op, free_port()).close()
    assert caught.value.response.status_code == 502
    assert b"guest-refused" in (caught.value.response.body or b"")


def test_over_ssh_a_tunnel_closes_when_its_vm_stops(op: Any, sshd: sshd_env.SshdEnv) -> None:
    ws = tunnel(op, sshd.guest_echo_port)
    assert round_trip(ws, b"before", 65536, timeout=60) == b"before"
    status, body = op.json("POST", f"/vms/{UBUNTU}/stop?timeout=2", timeout=60)
    assert status == 200, body
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=30)
