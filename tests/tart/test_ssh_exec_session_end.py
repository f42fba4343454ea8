"""The exec WebSocket over SSH: when the WebSocket closes, the command stops on the host even
when it neither reads its input nor writes (an idle ``sleep``), with a terminal or without.
Killing the local ssh alone ends the session, but the host's Tart would learn of it only at its
next read or write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import sshd_env
from conftest import Operator, wait_for
from support import guest_processes
from websockets.sync.client import connect

VM = "ubuntu-runner"


@pytest.fixture(scope="module")
def sshd() -> Iterator[sshd_env.SshdEnv]:
    yield from sshd_env.for_module()


@pytest.fixture
def remote(sshd: sshd_env.SshdEnv, operator_factory: Any) -> Iterator[Operator]:
    op: Operator = operator_factory(env=sshd.settings_env(), args=["--tart", "tart"])
    status, vm = op.json("POST", f"/vms/{VM}/start")
    assert status == 202, vm
    yield op
    op.json("POST", f"/vms/{VM}/stop?timeout=2")


@pytest.mark.parametrize("extra", ["&interactive=true", "&interactive=true&tty=true", ""],
                         ids=["stdin", "terminal", "no-stdin"])
def test_closing_the_websocket_stops_an_idle_command_on_the_host(
        remote: Operator, sshd: sshd_env.SshdEnv, extra: str) -> None:
    guest = sshd.tart_home / "vms" / VM / "guest"
    command = ["sh", "-c", "sleep 300"]
    ws = connect(f"ws://127.0.0.1:{remote.port}/vms/{VM}/exec?command="
                 f"{quote(json.dumps(command))}{extra}", open_timeout=30, close_timeout=5)
    try:
        wait_for(lambda: guest_processes(guest), timeout=30,
                 message="the command runs in the guest")
    finally:
        ws.close()
    wait_for(lambda: guest_processes(guest) == [], timeout=15,
             message="the command stopped on the host once its WebSocket closed")
