"""The exec WebSocket (``GET /vms/{name}/exec``) over the SSH transport: a real operator whose
Tart is the simulator on a real ``sshd`` standing as the Mac (tests/sshd_env.py), spoken to by
the ``websockets`` package.

Output, stdin and the exit code come through the shared connection.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import sshd_env
from conftest import Operator
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

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


def session(op: Operator, command: list[str], extra: str = "") -> ClientConnection:
    return connect(f"ws://127.0.0.1:{op.port}/vms/{VM}/exec?command="
                   f"{quote(json.dumps(command))}{extra}", open_timeout=30, close_timeout=5)


def rest(ws: ClientConnection) -> list[dict[str, Any]]:
    got = []
    try:
        while True:
            got.append(json.loads(ws.recv(timeout=30)))
    except ConnectionClosed:
        pass
    return got


def test_output_stdin_and_exit_code_come_through_the_shared_connection(remote: Operator) -> None:
    with session(remote, ["sh", "-c", "echo err >&2; cat; exit 4"]) as ws:
        ws.send(json.dumps({"type": "stdin", "data": base64.b64encode(b"over ssh\n").decode(),
                            "eof": True}))
        got = rest(ws)
    out = b"".join(base64.b64decode(m["data"]) for m in got if m["type"] == "stdout")
    err = b"".join(base64.b64decode(m["data"]) for m in got if m["type"] == "stderr")
    assert (out, err, got[-1]) == (b"over ssh\n", b"err\n", {"type": "exit", "code": 4})

