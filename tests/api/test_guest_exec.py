"""Commands in a guest: ``POST /vms/{name}/exec`` over loopback HTTP, through a real operator
driving the Tart simulator, whose ``tart exec`` runs the command as a real process in the VM's
``guest/`` directory.

Exit codes passed through, stdin given (and not given), stdout and stderr apart, the output cap,
the timeout (Tart's process group killed: no guest process left), a guest without the Tart
Guest Agent, the refusals (409, 404, 400, 403) and the audit event.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from typing import Any

import pytest
from conftest import Operator, wait_for
from support import guest_processes

from vm_operator.tart.guest_exec import OUTPUT_CAP

VM = "ubuntu-runner"  # a Linux guest: no macOS slot taken
VANILLA = "ghcr.io/cirruslabs/macos-sequoia-vanilla:latest"
TOKEN = "exec-write-token-0123456789abcdef"
READ_TOKEN = "exec-read-token-0123456789abcdef"
JSON = {"Content-Type": "application/json"}


def run(op: Operator, body: dict[str, Any], name: str = VM,
        headers: dict[str, str] | None = None) -> tuple[int, Any]:
    return op.json("POST", f"/vms/{name}/exec", {**JSON, **(headers or {})},
                   json.dumps(body), timeout=60)


def started(op: Operator, name: str = VM, headers: dict[str, str] | None = None) -> Operator:
    status, vm = op.json("POST", f"/vms/{name}/start", headers)
    assert status == 202, vm
    return op


@pytest.fixture
def running(operator: Operator) -> Operator:
    return started(operator)


def test_the_exit_code_passes_through_and_stdout_and_stderr_come_apart(running: Operator) -> None:
    status, answer = run(running, {"command": ["sh", "-c", "echo out; echo err >&2; exit 7"]})
    assert status == 200, answer
    assert answer == {"exit_code": 7, "stdout": "out\n", "stderr": "err\n", "truncated": False}
    status, answer = run(running, {"command": ["true"]})
    assert (status, answer["exit_code"]) == (200, 0)


def test_the_words_reach_the_command_as_they_are_sent(running: Operator) -> None:
    words = ["a b", "$(touch pwned)", "'\"", "*", ""]
    status, answer = run(running, {"command": ["printf", "[%s]\n", *words]})
    assert status == 200, answer
    assert answer["stdout"] == "".join(f"[{word}]\n" for word in words)
    guest = running.tart_home / "vms" / VM / "guest"
    assert not (guest / "pwned").exists()


def test_the_command_runs_in_the_guest_without_the_callers_environment(running: Operator) -> None:
    status, answer = run(running, {"command": ["sh", "-c", "pwd; env"]})
    assert status == 200, answer
    lines = answer["stdout"].splitlines()
    assert lines[0] == str(running.tart_home / "vms" / VM / "guest")
    assert not [line for line in lines if line.startswith(("TART_", "VM_OPERATOR_"))]


def test_stdin_is_given_when_asked_and_only_then(running: Operator) -> None:
    text = "line one\nünïcode line\n" * 1000
    status, answer = run(running, {"command": ["cat"], "stdin": text})
    assert (status, answer["stdout"], answer["exit_code"]) == (200, text, 0)
    status, answer = run(running, {"command": ["cat"], "stdin": ""})
    assert (status, answer["stdout"]) == (200, "")
    status, answer = run(running, {"command": ["cat"], "timeout": 10})  # reads nothing: ends
    assert (status, answer["stdout"], answer["exit_code"]) == (200, "", 0)


def test_output_past_the_cap_is_cut_and_says_so(running: Operator) -> None:
    script = f"head -c {3 * OUTPUT_CAP} /dev/zero | tr '\\0' x; echo small >&2"
    status, answer = run(running, {"command": ["sh", "-c", script]})
    assert status == 200
    assert answer["stdout"] == "x" * OUTPUT_CAP
    assert answer["stderr"] == "small\n"
    assert answer["truncated"] is True
    status, answer = run(running, {"command": ["sh", "-c", f"head -c {OUTPUT_CAP} /dev/zero"]})
    assert (len(answer["stdout"]), answer["truncated"]) == (OUTPUT_CAP, False)


def test_a_command_past_its_timeout_is_killed_with_all_it_started(running: Operator) -> None:
    guest = running.tart_home / "vms" / VM / "guest"
    status, answer = run(running, {"command": ["sh", "-c", "sleep 300 & sleep 301; wait"],
                                   "timeout": 1})
    assert status == 504, answer
    assert answer["type"] == "/problems/exec-timeout"
    assert guest_processes(guest) == []
    assert running.json("GET", f"/vms/{VM}")[1]["state"] == "running"  # the VM runs on


def test_a_guest_without_the_agent_is_a_problem_naming_it(operator_factory: Any) -> None:
    op = operator_factory(env={"TART_SIM_PULL_SECONDS": "0"})
    status, made = op.json("POST", "/vms", JSON, json.dumps(
        {"name": "plain", "from": VANILLA, "start": True}))
    assert status == 202, made
    wait_for(lambda: op.json("GET", f"/operations/{made['id']}")[1]["state"] == "succeeded",
             message="the vanilla VM is created and started")
    status, problem = run(op, {"command": ["true"]}, name="plain")
    assert status == 409, problem
    assert problem["type"] == "/problems/guest-agent-unreachable"
    assert "Tart Guest Agent" in problem["detail"]


def test_refusals_before_anything_runs(operator: Operator) -> None:
    status, problem = run(operator, {"command": ["true"]})
    assert (status, problem["type"]) == (409, "/problems/not-running")
    status, problem = run(operator, {"command": ["true"]}, name="no-such-vm")
    assert (status, problem["type"]) == (404, "/problems/vm-not-found")
    for bad in ({"command": []}, {"command": "ls -la"}, {"command": ["ls", 1]},
                {"command": ["-rf"]}, {"command": [""]}, {"command": ["ls", "a\u0000b"]},
                {}, {"command": ["ls"], "timeout": 0}, {"command": ["ls"], "timeout": 3601},
                {"command": ["ls"], "stdin": 5}, {"command": ["ls"], "shell": True}):
        status, problem = run(operator, bad)
        assert (status, problem["type"]) == (400, "/problems/invalid-body"), bad


def test_the_read_token_may_not_exec(operator_factory: Any) -> None:
    op = started(operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN,
                                       "VM_OPERATOR_READ_TOKEN": READ_TOKEN}),
                 headers={"Authorization": f"Bearer {TOKEN}"})
    status, problem = run(op, {"command": ["true"]},
                          headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert status == 403, problem
    assert run(op, {"command": ["true"]})[0] == 401
    status, answer = run(op, {"command": ["true"]}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, answer["exit_code"]) == (200, 0)


def test_every_exec_is_an_event_without_its_words_or_output(running: Operator) -> None:
    run(running, {"command": ["sh", "-c", "echo secret-output; exit 3"], "stdin": "secret-in"})
    status, history = running.json("GET", f"/vms/{VM}/events")
    assert status == 200
    execs = [event for event in history["events"] if event["type"] == "vm.exec"]
    assert len(execs) == 1, history
    data = execs[0]["data"]
    assert (data["command"], data["client"], data["exit_code"], data["outcome"]) == \
        ("sh", "127.0.0.1", 3, "exited")
    assert isinstance(data["duration_ms"], int)
    assert "secret" not in json.dumps(execs[0])


def test_the_document_declares_the_route(operator: Operator) -> None:
    _, doc = operator.json("GET", "/openapi.json")
    route = doc["paths"]["/vms/{name}/exec"]["post"]
    assert {"200", "400", "404", "409", "504"} <= set(route["responses"])
    body = route["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in body:
        body = doc["components"]["schemas"][body["$ref"].rpartition("/")[2]]
    assert body["required"] == ["command"]


def test_a_command_ends_with_the_operator(running: Operator) -> None:
    """Killed (SIGKILL: no clean-up of its own), the operator takes tart exec and the command
    with it, as it takes a pull: nothing runs on for nobody."""
    guest = running.tart_home / "vms" / VM / "guest"
    def ask() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):  # the operator dies
            run(running, {"command": ["sleep", "300"], "stdin": "x"})

    asked = threading.Thread(target=ask, daemon=True)
    asked.start()
    wait_for(lambda: guest_processes(guest), message="the command runs in the guest")
    running.proc.kill()
    wait_for(lambda: guest_processes(guest) == [],
             message="the guard killed tart exec's process group once the operator was gone")
