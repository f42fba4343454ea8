"""The ``vm-operator`` command as a user meets it, run as a real subprocess (``python -m
vm_operator``, the console script's entry) against a real operator driving the simulator: the
top-level help lists every command, grouped; ``help [COMMAND]``; the client's options before
or after the command; ``get``'s details for people; ``create``'s phases, none missed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import REPO_ROOT, Operator
from support import (
    CLIENT_TOKEN,
    QuietHandler,
    StandIn,
    cli,
    client_env,
    free_port,
    succeeded,
    wait_for,
)

from vm_operator.cli import PROGRAMS
from vm_operator.client.main import TABLE
from vm_operator.command_line import GROUPS

Factory = Callable[..., Operator]
VM_OPERATOR = [sys.executable, "-m", "vm_operator"]


def vm_operator(*args: str, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*VM_OPERATOR, *args], cwd=REPO_ROOT, env=env or client_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                          check=False)


def listed_groups(text: str) -> dict[str, list[str]]:
    """The help's groups (a line ``TITLE:`` at the left margin) and the command names listed
    under each (the first words of its two-space-indented lines, up to the summary)."""
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.endswith(":") and not line.startswith(" ") and line[:-1] in GROUPS:
            current = groups.setdefault(line[:-1], [])
        elif current is not None and re.match(r"  [a-z]", line):
            current.append(re.split(r"\s{2,}", line.strip())[0])
        elif not line.startswith("    "):
            current = None
    return groups


# --- help ------------------------------------------------------------------------------------


def test_help_lists_every_command_grouped() -> None:
    expected: dict[str, list[str]] = {group: [] for group in GROUPS}
    for program in PROGRAMS.values():
        expected[program.topic.group].append(program.topic.name)
    for command in TABLE:
        expected[command.group].append(command.name)
        expected[command.group].extend(f"{command.name} {action.name}"
                                       for action in command.actions)
    shown = succeeded(vm_operator("--help"))
    assert succeeded(vm_operator("help")) == shown == succeeded(vm_operator("-h"))
    groups = listed_groups(shown)
    assert list(groups) == list(GROUPS)  # every group, in its order
    assert groups == expected
    for name in ("serve", "create", "delete", "set", "images pull", "ops cancel", "host",
                 "events", "plan", "launchd", "health", "vms", "get"):
        assert any(name in names for names in groups.values()), name
    assert "exit codes:" in shown and "--url URL" in shown
    assert "--max-running" not in shown  # the server's flags are serve's help


def test_help_of_one_command_is_its_own_help() -> None:
    for topic in (["get"], ["images", "pull"], ["ops", "cancel"], ["events"]):
        via_help = vm_operator("help", *topic)
        assert succeeded(via_help) == succeeded(vm_operator(*topic, "--help"))
        assert via_help.stdout.startswith(f"usage: vm-operator {' '.join(topic)} ".encode())
    serve = succeeded(vm_operator("help", "serve"))
    assert "--max-running" in serve and "VM_OPERATOR_TOKEN_FILE" in serve
    assert serve == succeeded(vm_operator("serve", "--help"))
    assert succeeded(vm_operator("help", "plan")).startswith("usage: vm-operator plan ")
    assert "install" in succeeded(vm_operator("help", "launchd"))
    for args in (["help", "frobnicate"], ["frobnicate"], ["--json", "frobnicate"]):
        unknown = vm_operator(*args)
        assert unknown.returncode == 2 and unknown.stdout == b"", args
        assert unknown.stderr == b"vm-operator: no command 'frobnicate'; 'vm-operator help' " \
            b"lists them\n", args


# --- the client's options, before or after the command -------------------------------------------


def test_client_options_go_before_or_after_the_command(operator: Operator,
                                                      tmp_path: Path) -> None:
    listed = operator.ok("GET", "/vms")
    for args in (["--url", operator.url, "vms", "--json"],
                 [f"--url={operator.url}", "--json", "vms"],
                 ["--json", "--request-timeout", "20", "vms", "--url", operator.url],
                 ["vms", "--json", "--url", operator.url]):
        assert json.loads(succeeded(vm_operator(*args))) == listed, args
    detail = operator.detail("ubuntu-runner")
    got = json.loads(succeeded(vm_operator("--url", operator.url, "--json", "get", "ubuntu-runner")))
    assert got["name"] == detail["name"] == "ubuntu-runner"
    # the command after the options is the client's, not the server's usage
    gone = vm_operator("--url", f"http://127.0.0.1:{free_port()}", "events")
    assert gone.returncode == 3 and b"refused" in gone.stderr, gone.stderr
    text_only = vm_operator("--url", operator.url, "--json", "logs", "ubuntu-runner")
    assert text_only.returncode == 2 and b"logs prints text" in text_only.stderr


def test_the_token_file_goes_before_the_command(operator_factory: Factory,
                                                tmp_path: Path) -> None:
    guarded = operator_factory(env={"VM_OPERATOR_TOKEN": CLIENT_TOKEN})
    token_file = tmp_path / "token"
    token_file.write_text(CLIENT_TOKEN + "\n")
    token_file.chmod(0o600)
    shown = vm_operator("--token-file", str(token_file), "--url", guarded.url, "vms", "--json")
    expected = guarded.json("GET", "/vms", {"Authorization": f"Bearer {CLIENT_TOKEN}"})[1]
    assert json.loads(succeeded(shown)) == expected
    refused = vm_operator("--url", guarded.url, "vms")
    assert refused.returncode == 1 and b"401 unauthorized" in refused.stderr


# --- get, for people ------------------------------------------------------------------------------


def pairs_of(text: str) -> dict[str, str]:
    return {key: value.strip() for key, value in (line.split(":  ", 1)
                                                  for line in text.splitlines())}


def exit_shown(ended: dict[str, Any]) -> str:
    if ended["exit_code"] is not None:
        return f"exit code {ended['exit_code']} at {ended['at']}"
    if ended["signal"] is not None:
        return f"signal {ended['signal']} at {ended['at']}"
    return f"unknown at {ended['at']}"


def test_get_shows_readiness_address_desired_state_and_last_exit(operator_factory: Factory) -> None:
    op = operator_factory(args=["--reconcile-interval", "0.2"])
    succeeded(cli(op, "set", "ubuntu-runner", "--restart", "always"))
    succeeded(cli(op, "start", "ubuntu-runner"))
    pid = op.detail("ubuntu-runner")["last_run"]["pid"]
    op.guest_exits("ubuntu-runner", 3)  # its run ends with 3: always brings it back
    op.running_again("ubuntu-runner", pid)
    detail = wait_for(lambda: (vm := op.detail("ubuntu-runner"))["ready"] and vm,
                      timeout=20, message="ubuntu-runner ready again")
    shown = pairs_of(succeeded(cli(op, "get", "ubuntu-runner")))
    after = op.detail("ubuntu-runner")
    assert shown["ready"] == "yes"
    assert shown["ip"] == detail["ip"] and detail["ip"]
    assert shown["desired"] == "running"
    assert shown["restart policy"] == "always"
    assert shown["condition"] == "-"
    assert shown["restart count"] == "1" == str(detail["restart_count"])
    # as the API tells it, read just before or just after (the operator may record this end
    # twice: exit code 3, and at times an unknown exit a moment later)
    assert shown["last exit"] in {exit_shown(detail["last_exit"]), exit_shown(after["last_exit"])}
    observed = pairs_of(succeeded(cli(op, "get", "macos-sequoia-base")))
    assert observed["ready"] == "no" and observed["ip"] == "-"
    assert observed["desired"].startswith("- (not managed")
    assert "restart count" not in observed


# --- create's phases --------------------------------------------------------------------------


def test_create_prints_its_phases_in_order(operator: Operator) -> None:
    result = cli(operator, "create", "one", "--from", "ubuntu-runner", "--start")
    assert succeeded(result) == "created and started one\n"
    stages = result.stderr.decode().splitlines()
    assert stages == ["queued...", "cloning...", "configuring...", "starting..."], stages


def _operation(state: str, phase: str | None) -> dict[str, Any]:
    return {"id": "op1", "kind": "create", "vm": "ci", "image": "base", "state": state,
            "phase": phase, "progress": None, "cancel_requested": False,
            "created_at": "2026-12-07T06:00:00Z", "started_at": None,
            "finished_at": "2026-12-07T06:00:01Z" if state == "succeeded" else None,
            "error": None, "result": None}


class QuickCreate(StandIn):
    """A loopback stand-in for the operator whose create goes through all its phases between
    two looks of a client that polls: ``POST /vms`` answers the operation queued, ``GET
    /operations/op1`` answers it finished, and its event stream tells every change (as the
    operator's does, one ``operation.*`` event per phase)."""

    CHANGES = (("operation.queued", "queued", None), ("operation.started", "running", None),
               ("operation.progress", "running", "cloning"),
               ("operation.progress", "running", "configuring"),
               ("operation.succeeded", "succeeded", "configuring"))

    def __init__(self) -> None:
        self.posted = threading.Event()
        outer = self

        class Handler(QuietHandler):
            def _json(self, status: int, doc: object) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._json(202, _operation("queued", None))
                outer.posted.set()

            def do_GET(self) -> None:
                if self.path.startswith("/operations/"):
                    self._json(200, _operation("succeeded", "configuring"))
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.flush()
                outer.posted.wait(30)
                for number, (kind, state, phase) in enumerate(outer.CHANGES, 1):
                    doc = {"id": number, "type": kind, "time": "2026-12-07T06:00:00Z",
                           "vm": "ci", "data": _operation(state, phase)}
                    self.wfile.write(f"id: {number}\nevent: {kind}\ndata: {json.dumps(doc)}"
                                     "\n\n".encode())
                self.wfile.flush()
                outer.done.wait(30)

        super().__init__(Handler)


def test_create_prints_a_phase_shorter_than_a_poll() -> None:
    """Phases as short as a configuring without settings (a spec written: milliseconds) pass
    between two polls: the client learns each from the event stream it opened first."""
    stand_in = QuickCreate()
    try:
        result = vm_operator("create", "ci", "--from", "base", "--url", stand_in.url)
    finally:
        stand_in.close()
    assert succeeded(result) == "created ci\n"
    stages = result.stderr.decode().splitlines()
    assert stages == ["queued...", "cloning...", "configuring..."], stages
