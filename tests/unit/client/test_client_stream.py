"""The client's new pure pieces, table-driven: the SSE parser, event lines, the request bodies
of create and set, how a followed operation is shown, and its exit code."""

from __future__ import annotations

import argparse
import io
from typing import Any

import pytest

from vm_operator.client.console import Console
from vm_operator.client.events import (
    event_line,
    resume_from_reset,
    resume_id,
    retry_delay,
    summary,
)
from vm_operator.client.follow import OperationProgress, outcome, stage_of
from vm_operator.client.main import build_parser
from vm_operator.client.manage import create_body, patch_body
from vm_operator.client.records import BadAnswer, Event, Host, Operation
from vm_operator.client.sse import Message, SseParser

# --- the SSE parser -------------------------------------------------------------------------------


def feed(lines: list[str]) -> tuple[list[Message], SseParser]:
    parser = SseParser()
    messages = [m for m in (parser.feed(line) for line in lines) if m is not None]
    return messages, parser


@pytest.mark.parametrize("lines, messages", [
    # the operator's shape: id, event, data, blank line
    (["id: 12\n", "event: vm.state\n", 'data: {"id":12}\n', "\n"],
     [Message("vm.state", '{"id":12}', "12")]),
    # CRLF and lone line ends are line ends
    (["id: 1\r\n", "data: x\r\n", "\r\n"], [Message("message", "x", "1")]),
    # data lines are joined with \n; one space after the colon is dropped, not two
    (["data: a\n", "data:  b\n", "data:c\n", "\n"], [Message("message", "a\n b\nc", None)]),
    # a comment (the heartbeat) and the retry field dispatch nothing
    ([": heartbeat\n", "\n", "retry: 2000\n", "\n"], []),
    # no blank line yet: nothing dispatched
    (["data: pending\n"], []),
    # a field without a colon has an empty value; unknown fields are ignored
    (["data\n", "foo: bar\n", "\n"], [Message("message", "", None)]),
    # the event name does not carry over to the next message
    (["event: reset\n", 'data: {"last_id": 7}\n', "\n", "data: next\n", "\n"],
     [Message("reset", '{"last_id": 7}', None), Message("message", "next", None)]),
    # the id does carry over (it is the stream's last event id)
    (["id: 5\n", "data: a\n", "\n", "data: b\n", "\n"],
     [Message("message", "a", "5"), Message("message", "b", "5")]),
    # an id holding NUL is ignored
    (["id: 3\n", "data: a\n", "\n", "id: 4\0\n", "data: b\n", "\n"],
     [Message("message", "a", "3"), Message("message", "b", "3")]),
    # a colon in the value stays
    (["data: {\"a\": 1}\n", "\n"], [Message("message", '{"a": 1}', None)]),
])
def test_sse_parser(lines: list[str], messages: list[Message]) -> None:
    assert feed(lines)[0] == messages


@pytest.mark.parametrize("lines, last_id, retry_ms", [
    (["retry: 2000\n"], None, 2000),
    (["retry: soon\n"], None, None),        # not digits: ignored
    (["retry: -5\n"], None, None),
    (["id: 9\n", "\n"], "9", None),          # an id without data still counts
    (["id: 9\n", "id:\n", "\n"], "", None),  # an empty id resets it
])
def test_sse_parser_state(lines: list[str], last_id: str | None, retry_ms: int | None) -> None:
    _, parser = feed(lines)
    assert (parser.last_id, parser.retry_ms) == (last_id, retry_ms)


@pytest.mark.parametrize("lines, resume", [
    ([], None), (["id: 41\n"], 41), (["id: \n"], None), (["id: x1\n"], None),
    (["id: ٣\n"], None),  # a non-ASCII digit is no event id of the operator's
])
def test_resume_id(lines: list[str], resume: int | None) -> None:
    assert resume_id(feed(lines)[1]) == resume


@pytest.mark.parametrize("data, resume", [
    ('{"last_id": 1796578201123457}', 1796578201123457),  # the server's newest id
    ('{"last_id": 0}', 0),
    ('{"last_id": "12"}', 41), ('{"last_id": -3}', 41), ('{"last_id": true}', 41),  # not an id
    ("[1]", 41), ("not json", 41), ("{}", 41),
])
def test_after_a_reset_the_client_resumes_from_the_servers_newest_id(data: str,
                                                                      resume: int) -> None:
    """An earlier process's id (41) would be told reset again at the next reconnection."""
    _, parser = feed(["id: 41\n", "data: x\n", "\n"])
    resume_from_reset(parser, Message("reset", data, "41"))
    assert resume_id(parser) == resume


@pytest.mark.parametrize("lines, delay", [
    ([], 2.0), (["retry: 2000\n"], 2.0), (["retry: 0\n"], 0.1), (["retry: 999999\n"], 30.0),
])
def test_retry_delay(lines: list[str], delay: float) -> None:
    assert retry_delay(feed(lines)[1]) == delay


# --- event lines -----------------------------------------------------------------------------------


def event(kind: str, data: dict[str, Any], vm: str | None = "ci") -> Event:
    return Event.from_json({"id": 1, "type": kind, "time": "2026-11-29T18:00:00Z", "vm": vm,
                            "data": data})


@pytest.mark.parametrize("kind, data, text", [
    ("vm.created", {"operation": "abc"}, "created by operation abc"),
    ("vm.created", {"operation": None}, "created"),
    ("vm.deleted", {"cause": "api"}, "deleted (api)"),
    ("vm.state", {"from": "stopped", "to": "running", "cause": "outside", "exit_code": None},
     "stopped -> running (outside)"),
    ("vm.state", {"from": "running", "to": "stopped", "cause": "exited", "exit_code": 1},
     "running -> stopped (exited, exit code 1)"),
    ("vm.state", {"from": None, "to": "stopped", "cause": "api", "exit_code": None},
     "- -> stopped (api)"),
    ("vm.ready", {"ip": "192.168.64.3", "port": 22}, "ready at 192.168.64.3:22"),
    ("operation.progress", {"id": "op1", "kind": "pull", "vm": None, "image": "img:1",
                            "state": "running", "phase": "pulling", "progress": 42},
     "pull img:1: running, pulling 42% (op1)"),
    ("operation.failed", {"id": "op2", "kind": "create", "vm": "ci", "image": "x",
                          "state": "failed", "phase": "cloning", "progress": None,
                          "error": {"detail": "no such image"}},
     "create ci: failed, cloning: no such image (op2)"),
    ("reconcile.waiting", {"condition": "crash-loop"}, "condition=crash-loop"),
    ("config.refused", {"file": "/etc/vms.toml", "error": {"line": 3}},
     'error={"line": 3} file=/etc/vms.toml'),
])
def test_summary(kind: str, data: dict[str, Any], text: str) -> None:
    assert summary(event(kind, data)) == text


def test_event_line_is_aligned_and_safe() -> None:
    line = event_line(event("vm.state", {"from": "stopped", "to": "running\x1b[2J",
                                         "cause": "api", "exit_code": None}, vm="evil\x07"))
    assert line == ("2026-11-29T18:00:00Z  vm.state               evil\\x07  "
                    "stopped -> running\\x1b[2J (api)")
    assert event_line(event("config.applied", {}, vm=None)).split()[2] == "-"


@pytest.mark.parametrize("data", [
    {"id": "1", "type": "vm.state", "time": "t", "vm": None, "data": {}},   # id not a number
    {"id": 1, "type": "vm.state", "time": "t", "vm": None, "data": []},     # data not an object
    {"id": 1, "time": "t", "vm": None, "data": {}},                         # no type
    [],
])
def test_event_refuses_what_is_not_an_event(data: Any) -> None:
    with pytest.raises(BadAnswer):
        Event.from_json(data)


# --- request bodies ------------------------------------------------------------------------------


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv, body", [
    (["create", "ci", "--from", "ghcr.io/o/i:1"], {"name": "ci", "from": "ghcr.io/o/i:1"}),
    (["create", "ci", "--from", "base", "--cpu", "4", "--memory", "8192", "--disk", "80",
      "--display", "1920x1080", "--start", "--ephemeral", "--restart", "on-failure",
      "--insecure"],
     {"name": "ci", "from": "base", "cpu": 4, "memory_mb": 8192, "disk_gb": 80,
      "display": "1920x1080", "start": True, "ephemeral": True, "restart": "on-failure",
      "insecure": True}),
    (["create", "ci", "--from", "base", "--restart", "always"],
     {"name": "ci", "from": "base", "restart": "always"}),
])
def test_create_body(argv: list[str], body: dict[str, object]) -> None:
    assert create_body(args(*argv)) == body


@pytest.mark.parametrize("argv, body", [
    (["set", "ci"], {}),
    (["set", "ci", "--cpu", "2"], {"cpu": 2}),
    (["set", "ci", "--memory", "1048576", "--random-mac", "--restart", "never"],
     {"memory_mb": 1048576, "random_mac": True, "restart": "never"}),
])
def test_patch_body(argv: list[str], body: dict[str, object]) -> None:
    assert patch_body(args(*argv)) == body


# --- following an operation -----------------------------------------------------------------------


def operation(state: str = "running", phase: str | None = None, progress: int | None = None,
              error: dict[str, Any] | None = None, result: str | None = None) -> Operation:
    return Operation.from_json({
        "id": "op1", "kind": "create", "vm": "ci", "image": "img", "state": state,
        "phase": phase, "progress": progress, "cancel_requested": False,
        "created_at": "2026-11-29T18:00:00Z", "started_at": None,
        "finished_at": None if state in ("queued", "running") else "2026-11-29T18:01:00Z",
        "error": error, "result": result})


@pytest.mark.parametrize("state, phase, stage", [
    ("queued", None, "queued"), ("running", "pulling", "pulling"), ("running", None, None),
    ("succeeded", "configuring", "configuring"),
])
def test_stage_of(state: str, phase: str | None, stage: str | None) -> None:
    assert stage_of(operation(state, phase)) == stage


@pytest.mark.parametrize("seen, shown", [
    # a create: queued, a pull seen at a few percentages, then cloning and configuring
    ([("queued", None, None), ("running", "pulling", None), ("running", "pulling", 0),
      ("running", "pulling", 0), ("running", "pulling", 37), ("running", "pulling", 94),
      ("running", "configuring", 100), ("succeeded", "configuring", 100)],
     ["queued...", "pulling...", "pulling: 0%", "pulling: 37%", "pulling: 94%",
      "pulling: 100%", "configuring..."]),
    # the last percentage seen before the end
    ([("running", "pulling", 50), ("succeeded", "pulling", 100)],
     ["pulling...", "pulling: 50%", "pulling: 100%"]),
    # failed on the way: the bar stays where it was
    ([("running", "pulling", 10), ("failed", "pulling", 30)],
     ["pulling...", "pulling: 10%", "pulling: 30%"]),
    # no progress at all (a local clone): only the stages
    ([("running", "cloning", None), ("running", "configuring", None),
      ("succeeded", "configuring", None)], ["cloning...", "configuring..."]),
])
def test_watch_plain(seen: list[tuple[str, str | None, int | None]], shown: list[str]) -> None:
    out = io.StringIO()
    watch = OperationProgress(out, terminal=False, width=80)
    for state, phase, progress in seen:
        watch.show(operation(state, phase, progress))
    watch.end(succeeded=seen[-1][0] == "succeeded")
    assert out.getvalue().splitlines() == shown


def test_watch_terminal_redraws_one_line_per_stage() -> None:
    out = io.StringIO()
    watch = OperationProgress(out, terminal=True, width=40)
    for progress in (0, 50, 100):
        watch.show(operation("running", "pulling", progress))
    watch.show(operation("running", "configuring", 100))
    watch.end(succeeded=True)
    text = out.getvalue()
    assert text.startswith("pulling...\n\r")
    assert text.count("\n") == 3  # the stage lines and the end of the bar's line
    assert text.endswith("] 100%\nconfiguring...\n")


PROBLEM = {"type": "/problems/tart-timeout", "title": "Tart did not answer in time",
           "status": 504, "detail": "tart set took longer than 1 s"}


@pytest.mark.parametrize("op, json_mode, code, out, err", [
    (operation("succeeded"), False, 0, "created ci\n", ""),
    (operation("succeeded", result="a note"), False, 0, "created ci\n", "vm-operator: a note\n"),
    (operation("succeeded"), True, 0, "", ""),  # the JSON is printed by the caller
    (operation("cancelled"), False, 1, "",
     "vm-operator: create ci: the operation op1 was cancelled\n"),
    (operation("failed", error=PROBLEM), False, 4, "",
     "vm-operator: create ci failed: 504 tart-timeout: tart set took longer than 1 s\n"),
    (operation("failed", error={**PROBLEM, "status": 409, "type": "/problems/tart-refused",
                                "tart_message": "Error: no"}), True, 1, "",
     ("vm-operator: create ci failed: 409 tart-refused: tart set took longer than 1 s\n"
      "vm-operator: tart said: Error: no\n")),
])
def test_outcome(op: Operation, json_mode: bool, code: int, out: str, err: str) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    console = Console(stdout, stderr, terminal=False, width=None, json=json_mode)
    assert outcome(op, console, lambda done: f"created {done.vm}") == code
    assert (stdout.getvalue(), stderr.getvalue()) == (out, err)


def test_host_record() -> None:
    host = Host.from_json({
        "tart": {"path": "/usr/bin/tart", "version": None}, "tart_home": "/h",
        "disk": {"total_bytes": 10, "free_bytes": 4}, "macos_guests": {"running": 1, "limit": None},
        "operations": {"running": 0, "queued": 2, "max_queued": 16}})
    assert (host.tart_version, host.macos_limit, host.operations_queued) == (None, None, 2)
    with pytest.raises(BadAnswer):
        Host.from_json({"tart": {"path": "/t"}, "tart_home": "/h"})


@pytest.mark.parametrize("argv", [
    ["images", "--url", "http://127.0.0.1:1", "pull", "r"],   # before the action
    ["images", "pull", "r", "--url", "http://127.0.0.1:1"],   # after it
])
def test_options_before_or_after_an_action(argv: list[str]) -> None:
    parsed = args(*argv)
    assert (parsed.url, parsed.ref, parsed.entry.name) == ("http://127.0.0.1:1", "r", "pull")
