"""GET /vms/{name}/exec?command=[…]: a command in a guest over a WebSocket, for interactive use,
spoken to by a WebSocket client nobody here wrote (the ``websockets`` package), through a real
operator driving the simulator, whose ``tart exec`` runs the command as a real process.

Output messages in order, stdin carried to the command (``cat`` echoes it), the exit message
then a close, a terminal (``tty=true``: one output stream, the size asked, resizes), the
refusals before the upgrade, the read
token refused, the command killed when the client goes away mid-command or the operator
drains, and the audit event.
"""

from __future__ import annotations

import base64
import json
import signal
from typing import Any
from urllib.parse import quote

import pytest
from conftest import Operator, wait_for
from support import guest_processes
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

VM = "ubuntu-runner"
TOKEN = "wsexec-write-token-0123456789abcdef"
READ_TOKEN = "wsexec-read-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def op(operator_factory: Any) -> Operator:
    operator: Operator = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN,
                                               "VM_OPERATOR_READ_TOKEN": READ_TOKEN})
    status, vm = operator.json("POST", f"/vms/{VM}/start?wait=ready&timeout=60", AUTH,
                               timeout=90)
    assert status == 200, vm
    return operator


def url(op: Operator, command: list[str] | str, name: str = VM, **query: str) -> str:
    words = command if isinstance(command, str) else json.dumps(command)
    extra = "".join(f"&{key}={value}" for key, value in query.items())
    return f"ws://127.0.0.1:{op.port}/vms/{name}/exec?command={quote(words)}{extra}"


def session(op: Operator, command: list[str] | str, name: str = VM, token: str = TOKEN,
            **query: str) -> ClientConnection:
    return connect(url(op, command, name, **query),
                   additional_headers={"Authorization": f"Bearer {token}"},
                   open_timeout=20, close_timeout=5)


def refusal(op: Operator, command: list[str] | str, name: str = VM,
            token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as caught:
        session(op, command, name, token).close()
    response = caught.value.response
    return response.status_code, json.loads(response.body or b"{}")


def stdin(data: bytes, eof: bool = False) -> str:
    return json.dumps({"type": "stdin", "data": base64.b64encode(data).decode(), "eof": eof})


def messages(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message until the operator closes the WebSocket."""
    got = []
    try:
        while True:
            message = ws.recv(timeout=30)
            assert isinstance(message, str), "the messages are JSON text frames"
            got.append(json.loads(message))
    except ConnectionClosed:
        pass
    return got


def output(got: list[dict[str, Any]], kind: str) -> bytes:
    return b"".join(base64.b64decode(m["data"]) for m in got if m["type"] == kind)


def test_output_comes_as_messages_in_order_then_the_exit_code_then_a_close(op: Operator) -> None:
    script = "for i in 1 2 3; do echo out$i; echo err$i >&2; done; exit 7"
    with session(op, ["sh", "-c", script]) as ws:
        got = messages(ws)
        assert ws.close_code == 1000
    assert output(got, "stdout") == b"out1\nout2\nout3\n"
    assert output(got, "stderr") == b"err1\nerr2\nerr3\n"
    assert got[-1] == {"type": "exit", "code": 7}
    assert [m["type"] for m in got[:-1]] == [m["type"] for m in got[:-1]
                                             if m["type"] in ("stdout", "stderr")]


def test_stdin_messages_reach_the_command_and_its_echo_comes_back(op: Operator) -> None:
    with session(op, ["cat"]) as ws:
        ws.send(stdin(b"hello "))
        first = json.loads(ws.recv(timeout=30))
        assert (first["type"], base64.b64decode(first["data"])) == ("stdout", b"hello ")
        ws.send(stdin(b"world\n", eof=True))
        got = messages(ws)
    assert output(got, "stdout") == b"world\n"
    assert got[-1] == {"type": "exit", "code": 0}


def test_a_terminal_has_the_size_asked_and_merges_stderr_into_stdout(op: Operator) -> None:
    with session(op, ["sh", "-c", "stty size; echo err >&2; exit 3"], tty="true", rows="33",
                 cols="101") as ws:
        got = messages(ws)
    assert output(got, "stdout").split() == [b"33", b"101", b"err"]
    assert got[-1] == {"type": "exit", "code": 3}


def test_a_resize_message_reaches_the_guests_terminal(op: Operator) -> None:
    with session(op, ["sh", "-c", "read line; stty size"], tty="true") as ws:
        ws.send(json.dumps({"type": "resize", "rows": 50, "cols": 132}))
        ws.send(stdin(b"go\r"))
        got = messages(ws)
    assert output(got, "stdout").split()[-2:] == [b"50", b"132"]


def test_a_message_that_is_not_ours_closes_with_1007(op: Operator) -> None:
    with session(op, ["cat"]) as ws:
        ws.send(json.dumps({"type": "signal", "name": "INT"}))
        messages(ws)
        assert ws.close_code == 1007


@pytest.mark.parametrize(("name", "command", "status", "slug"), [
    ("no-such-vm", ["true"], 404, "vm-not-found"),
    ("macos-sonoma-xcode", ["true"], 409, "not-running"),
    ("ghcr.io%2Fcirruslabs%2Fmacos-sequoia-base:latest", ["true"], 409, "oci-image"),
    (VM, [], 400, "invalid-parameter"),
    (VM, ["-rf"], 400, "invalid-parameter"),
    (VM, "ls -la", 400, "invalid-parameter"),
    (VM, ["ls", "a\u0000b"], 400, "invalid-parameter"),
])
def test_refusals_come_before_the_upgrade_as_problems(op: Operator, name: str,
                                                      command: list[str] | str, status: int,
                                                      slug: str) -> None:
    got, problem = refusal(op, command, name)
    assert (got, problem["type"].rsplit("/", 1)[-1]) == (status, slug), problem


def test_the_read_token_may_not_exec(op: Operator) -> None:
    status, problem = refusal(op, ["true"], token=READ_TOKEN)
    assert status == 403, problem


@pytest.mark.parametrize("tty", ["false", "true"])
def test_closing_mid_command_kills_it_and_the_event_says_closed(op: Operator, tty: str) -> None:
    guest = op.tart_home / "vms" / VM / "guest"
    with session(op, ["sh", "-c", "echo started; sleep 300 & sleep 301; wait"], tty=tty) as ws:
        first = json.loads(ws.recv(timeout=30))
        assert base64.b64decode(first["data"]).strip() == b"started"
        assert guest_processes(guest)
    wait_for(lambda: guest_processes(guest) == [],
             message="tart exec's process group is killed once the client has gone")

    def execs() -> list[dict[str, Any]]:
        history = op.json("GET", f"/vms/{VM}/events", AUTH)[1]
        return [e["data"] for e in history["events"] if e["type"] == "vm.exec"]

    wait_for(execs, message="the exec's event")
    data = execs()[-1]
    assert (data["command"], data["exit_code"], data["outcome"]) == ("sh", None, "closed")
    assert "sleep" not in json.dumps(data)


def test_the_document_declares_the_websocket_route(op: Operator) -> None:
    _, doc = op.json("GET", "/openapi.json", AUTH)
    route = doc["paths"]["/vms/{name}/exec"]["get"]
    assert {"101", "400", "403", "404", "409"} <= set(route["responses"])
    assert {p["name"] for p in route["parameters"]} >= {"command", "interactive", "tty",
                                                         "rows", "cols"}


def test_the_operator_draining_closes_with_1001_and_kills_the_command(op: Operator) -> None:
    guest = op.tart_home / "vms" / VM / "guest"
    with session(op, ["sh", "-c", "echo started; sleep 300"]) as ws:
        assert base64.b64decode(json.loads(ws.recv(timeout=30))["data"]) == b"started\n"
        op.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    wait_for(lambda: guest_processes(guest) == [], message="the command killed at shutdown")
