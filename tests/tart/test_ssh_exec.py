"""Commands in a guest over the SSH transport: a real operator whose Tart is the simulator on a
real ``sshd`` standing as the Mac (tests/sshd_env.py), ``POST /vms/{name}/exec`` all the way.

The command's words reach the host as parameters of a fixed script (hostile words stay words),
its stdin goes first on the session's stdin, its exit code comes back (255 included, which is
also ssh's own failure code), and its timeout kills Tart's process group on the host. The exec
WebSocket (``GET /vms/{name}/exec``, spoken to by the ``websockets`` package) brings output,
stdin and the exit code through the shared connection too; when it closes, the command stops on
the host even when it neither reads its input nor writes (an idle ``sleep``), with a terminal or
without: killing the local ssh alone ends the session, but the host's Tart would learn of it
only at its next read or write.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import sshd_env
from conftest import Operator, wait_for
from support import guest_processes
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from vm_operator.tart.guest_exec import OUTPUT_CAP

VM = "ubuntu-runner"
VANILLA = "ghcr.io/cirruslabs/macos-sequoia-vanilla:latest"
JSON = {"Content-Type": "application/json"}


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


def run(op: Operator, body: dict[str, Any]) -> tuple[int, Any]:
    return op.json("POST", f"/vms/{VM}/exec", JSON, json.dumps(body), timeout=60)


def test_exit_codes_output_and_stdin_come_back_over_ssh(remote: Operator) -> None:
    status, answer = run(remote, {"command": ["sh", "-c", "echo out; echo err >&2; exit 255"]})
    assert status == 200, answer
    assert answer == {"exit_code": 255, "stdout": "out\n", "stderr": "err\n", "truncated": False}
    text = "first\nsecond\n" * 5000
    status, answer = run(remote, {"command": ["cat"], "stdin": text})
    assert (status, answer["stdout"], answer["exit_code"]) == (200, text, 0)
    status, answer = run(remote, {"command": ["cat"]})
    assert (status, answer["stdout"]) == (200, "")
    status, answer = run(remote, {"command": ["sh", "-c", "exit 127"]})
    assert (status, answer["exit_code"]) == (200, 127)


def test_hostile_words_stay_words_on_the_host(remote: Operator, sshd: sshd_env.SshdEnv) -> None:
    words = ["a'b", "$(touch pwned-1)", "`touch pwned-2`", "x;touch pwned-3", '"$HOME"', ""]
    status, answer = run(remote, {"command": ["printf", "[%s]\n", *words]})
    assert status == 200, answer
    assert answer["stdout"] == "".join(f"[{word}]\n" for word in words)
    guest = sshd.tart_home / "vms" / VM / "guest"
    for n in (1, 2, 3):
        assert not (guest / f"pwned-{n}").exists()
        assert not (sshd.home / f"pwned-{n}").exists()


def test_the_timeout_kills_the_command_on_the_host(remote: Operator,
                                                    sshd: sshd_env.SshdEnv) -> None:
    guest = sshd.tart_home / "vms" / VM / "guest"
    status, answer = run(remote, {"command": ["sh", "-c", "sleep 300 & sleep 301; wait"],
                                  "timeout": 2})
    assert status == 504, answer
    assert answer["type"] == "/problems/exec-timeout"
    wait_for(lambda: guest_processes(guest) == [], timeout=10,
             message="the host killed the guest command once the local ssh was gone")
    status, answer = run(remote, {"command": ["true"]})  # the transport still works
    assert (status, answer["exit_code"]) == (200, 0)


def test_the_cap_counts_the_command_s_output_only(remote: Operator) -> None:
    status, answer = run(remote, {"command": ["sh", "-c", f"head -c {OUTPUT_CAP} /dev/zero"]})
    assert (status, len(answer["stdout"]), answer["truncated"]) == (200, OUTPUT_CAP, False)
    script = f"head -c {OUTPUT_CAP + 1} /dev/zero >&2"
    status, answer = run(remote, {"command": ["sh", "-c", script]})
    assert (status, len(answer["stderr"]), answer["truncated"]) == (200, OUTPUT_CAP, True)


def test_refusals_come_back_as_the_host_s_tart_said_them(remote: Operator) -> None:
    status, made = remote.json("POST", "/vms", JSON, json.dumps(
        {"name": "plain", "from": VANILLA, "start": True}))
    assert status == 202, made
    wait_for(lambda: remote.json("GET", f"/operations/{made['id']}")[1]["state"] == "succeeded",
             timeout=60, message="the vanilla VM is created and started on the host")
    try:
        status, problem = remote.json("POST", "/vms/plain/exec", JSON,
                                      json.dumps({"command": ["true"]}))
        assert (status, problem["type"]) == (409, "/problems/guest-agent-unreachable")
        assert "Tart Guest Agent" in problem["detail"]
    finally:
        assert remote.request("DELETE", "/vms/plain?force=true&timeout=2")[0] in (202, 204)
    assert remote.json("POST", f"/vms/{VM}/stop?timeout=2")[0] == 200
    status, problem = run(remote, {"command": ["true"]})
    assert (status, problem["type"]) == (409, "/problems/not-running")


# --- the exec WebSocket ---------------------------------------------------------------------


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
