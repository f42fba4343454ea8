"""One way to wait for an operation (``client.follow.await_operation``): ``follow_operation``
shows it on the way, ``run`` creates and removes its VM with it, silently. It reads the event
stream while that tells, polls ``GET /operations/{id}`` otherwise, and returns the operation's
last answer once it has ended."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, cast

import pytest

from vm_operator.client import follow, guest
from vm_operator.client.follow import OperationStream, await_operation
from vm_operator.client.http import Client, Reply
from vm_operator.client.records import Operation


def operation(state: str) -> Reply[Operation]:
    value = Operation.from_json({
        "id": "op1", "kind": "create", "vm": "ci", "image": "img", "state": state,
        "phase": None, "progress": None, "cancel_requested": False,
        "created_at": "2026-11-29T18:00:00Z", "started_at": None,
        "finished_at": None if state in ("queued", "running") else "2026-11-29T18:01:00Z",
        "error": None, "result": None})
    return Reply(value, state.encode(), 200)


class Answers:
    """The answers of ``GET /operations/{id}`` (the client's), or of the stream's events, in turn."""

    def __init__(self, *states: str) -> None:
        self.left = [operation(state) for state in states]
        self.asked: list[str] = []

    def operation(self, op_id: str) -> Reply[Operation]:
        self.asked.append(op_id)
        return self.left.pop(0)

    def next_change(self, op_id: str) -> Reply[Operation] | None:
        return self.left.pop(0) if self.left else None


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "POLL_INTERVAL", 0)


@pytest.mark.parametrize(("first", "polled", "last"), [
    ("queued", ("running", "running", "succeeded"), b"succeeded"),
    ("running", ("failed",), b"failed"),
    ("succeeded", (), b"succeeded"),  # ended already: nothing asked
])
def test_polling_until_the_operation_ends(first: str, polled: tuple[str, ...],
                                          last: bytes) -> None:
    client, seen = Answers(*polled), []
    reply = await_operation(cast(Client, client), operation(first), None,
                            lambda op: seen.append(op.state))
    assert reply.body == last
    assert client.asked == ["op1"] * len(polled)
    assert seen == [first, *polled]


def test_the_stream_is_read_then_polling_when_it_ends() -> None:
    stream, client = Answers("queued", "running"), Answers("succeeded")
    reply = await_operation(cast(Client, client), operation("queued"),
                            cast(OperationStream, stream))
    assert reply.body == b"succeeded"
    assert client.asked == ["op1"]


def test_run_waits_for_its_operations_the_same_way() -> None:
    tree = ast.parse(Path(cast(Any, guest).__file__).read_text())
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    loops_on_finished = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.While)
                         and any(isinstance(part, ast.Attribute) and part.attr == "finished"
                                 for part in ast.walk(node.test))]
    assert "await_operation" in names
    assert loops_on_finished == []  # no second polling loop
