"""The catalogue of events (vm_operator/core/event_catalogue.py): complete, consistent, documented.

The catalogue is the one list of event types: the README's Events table, the client's
summaries and the page's ``describeEvent`` say the same types; no part of the server writes a
type as a bare string; the operations queue's changes become ``operation.*`` events by the
core's rule.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from support import REPO_ROOT

from vm_operator.client.events import SUMMARIES, summary
from vm_operator.client.records import Event as ClientEvent
from vm_operator.core.event_catalogue import CATALOGUE, EVENT_TYPES, EventType
from vm_operator.core.events import EventBus
from vm_operator.core.operation_events import OperationEvents, operation_event, told
from vm_operator.core.records import OperationDoc
from vm_operator.store.operation_records import Operation, OperationEvent

ROOT = REPO_ROOT
PACKAGE = ROOT / "vm_operator"
README = ROOT / "README.md"
OPERATION_DATA = "the operation, as `GET /operations/{id}` answers it"
# The server's parts; the client and the page speak the contract from outside (checked below),
# the simulator is Tart.
SERVER = [path for path in sorted(PACKAGE.rglob("*.py"))
          if path.relative_to(PACKAGE).parts[0] not in ("client", "simulator")]


def test_the_types_are_unique_and_named_kind_dot_what() -> None:
    types = [entry.type for entry in CATALOGUE]
    assert len(types) == len(set(types)) == len(EVENT_TYPES)
    for kind in types:
        assert re.fullmatch(r"[a-z]+\.[a-z]+", kind), kind


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda entry: entry.type)
def test_each_example_has_its_shape_and_is_json(entry: EventType[Any]) -> None:
    assert tuple(entry.example) == entry.fields
    assert json.loads(json.dumps(entry.example)) == entry.example


def test_the_readme_lists_every_event_type_with_its_data_and_meaning() -> None:
    text = README.read_text()
    section = text.split("\n### Events\n", 1)[1].split("\n### ", 1)[0]
    rows = {kind: (data, meaning) for kind, data, meaning in re.findall(
        r"^\| `([a-z]+\.[a-z]+)` \| (.+?) \| (.+?) \|$", section, re.MULTILINE)}
    expected = {entry.type: (OPERATION_DATA if entry.data is OperationDoc else
                             ", ".join(f"`{field}`" for field in entry.fields), entry.meaning)
                for entry in CATALOGUE}
    assert rows == expected


def _strings(path: Path) -> list[tuple[int, str]]:
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_no_part_of_the_server_writes_an_event_type_as_a_bare_string() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}: {value!r}"
             for path in SERVER if path.name != "event_catalogue.py"
             for line, value in _strings(path) if value in EVENT_TYPES]
    assert not found, "use the catalogue's entry: " + ", ".join(found)


def test_events_are_made_only_by_the_catalogue() -> None:
    """A ``NewEvent`` (what the bus publishes) is built by an entry's ``about`` only."""
    made = [f"{path.relative_to(ROOT)}:{node.lineno}"
            for path in SERVER if path.name != "event_catalogue.py"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "NewEvent"]
    assert not made


def test_the_client_summarises_every_catalogued_type() -> None:
    assert set(SUMMARIES) == set(EVENT_TYPES)


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda entry: entry.type)
def test_the_client_summary_of_each_type_reads_its_data(entry: EventType[Any]) -> None:
    event = ClientEvent.from_json({"id": 1, "type": entry.type, "time": "t", "vm": None,
                                   "data": json.loads(json.dumps(entry.example))})
    text = summary(event)
    assert text and "-" not in text.split()  # no member it reads is missing from the data


def _describe_event() -> str:
    """The page's ``describeEvent`` function, in whichever of its modules it lives."""
    for path in sorted((PACKAGE / "ui").glob("*.js")):
        text = path.read_text()
        start = text.find("function describeEvent(")
        if start >= 0:
            return text[start:text.index("\n}\n", start)]
    raise AssertionError("no describeEvent in vm_operator/ui/*.js")


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda entry: entry.type)
def test_the_page_describes_every_catalogued_type(entry: EventType[Any]) -> None:
    assert f'case "{entry.type}":' in _describe_event()


# --- the operations queue's changes as events ---------------------------------------------------

QUEUED = Operation("op1", "create", "queued", "2026-01-01T00:00:00.000Z", 1, vm="ci")
RUNNING = Operation("op1", "create", "running", "2026-01-01T00:00:00.000Z", 1, vm="ci",
                    phase="cloning")
HALF = Operation("op1", "create", "running", "2026-01-01T00:00:00.000Z", 1, vm="ci",
                 phase="cloning", progress=50)
NOTED = Operation("op1", "create", "running", "2026-01-01T00:00:00.000Z", 1, vm="ci",
                  phase="cloning", progress=50, result="a note")
DONE = Operation("op1", "create", "succeeded", "2026-01-01T00:00:00.000Z", 1, vm="ci")
FAILED = Operation("op1", "create", "failed", "2026-01-01T00:00:00.000Z", 1, vm="ci")
CANCELLED = Operation("op1", "create", "cancelled", "2026-01-01T00:00:00.000Z", 1, vm="ci")


@pytest.mark.parametrize(("before", "op", "kind"), [
    (None, QUEUED, "operation.queued"),
    (told(QUEUED), RUNNING, "operation.started"),
    (None, RUNNING, "operation.started"),
    (told(RUNNING), HALF, "operation.progress"),
    (told(HALF), NOTED, None),  # only its result note changed
    (told(HALF), DONE, "operation.succeeded"),
    (None, FAILED, "operation.failed"),
    (told(RUNNING), CANCELLED, "operation.cancelled"),
])
def test_each_change_of_an_operation_makes_its_event(before: Any, op: Operation,
                                                     kind: str | None) -> None:
    made = operation_event(before, op)
    assert (None if made is None else made.type) == kind


def test_the_queue_listener_publishes_the_document_it_is_given() -> None:
    bus = EventBus(lambda: "2026-01-01T00:00:00.000Z", first_id=1)
    documents: list[Operation] = []

    def document(op: Operation) -> OperationDoc:
        documents.append(op)
        return {**EVENT_TYPES["operation.queued"].example, "state": op.state}

    listen = OperationEvents(bus, document)
    for op in (QUEUED, RUNNING, HALF, NOTED, DONE):
        listen(OperationEvent(op))
    events = bus.history("ci")
    assert [e.type for e in events] == ["operation.queued", "operation.started",
                                        "operation.progress", "operation.succeeded"]
    assert [e.data["state"] for e in events] == ["queued", "running", "running", "succeeded"]
    assert documents == [QUEUED, RUNNING, HALF, DONE]
