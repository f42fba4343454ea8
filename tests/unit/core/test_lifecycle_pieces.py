"""The pure pieces of creating VMs: the create body's types, the operation document,
what a restart cleans up, the spec records of the VMs the operator created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vm_operator.api.operations import OperationId, operation_document
from vm_operator.api.params import DISPLAY, LOCAL_VM_NAME
from vm_operator.api.vm_create import CREATE, CreateVm
from vm_operator.core.create import CreateRequest
from vm_operator.core.lifecycle import remove_leftovers
from vm_operator.edge.errors import ApiError
from vm_operator.store.operation_records import Operation, OperationError
from vm_operator.store.specs import SpecStore, VmSpec
from vm_operator.tart.errors import TartVmMissing
from vm_operator.tart.names import LOCAL_NAME_PATTERN, VmName


@pytest.mark.parametrize("name", ["ci", "macos-15.1_base", "a.b", "..x", "x" * 255])
def test_a_local_name(name: str) -> None:
    assert LOCAL_VM_NAME.from_json("name", name) == name


@pytest.mark.parametrize("name", ["a/b", "ghcr.io/org/img:1", "-rf", "..", "", "a b", 7])
def test_not_a_local_name(name: object) -> None:
    with pytest.raises(ValueError, match="name"):
        LOCAL_VM_NAME.from_json("name", name)


def test_the_local_name_pattern_says_the_same() -> None:
    import re

    pattern = re.compile(LOCAL_NAME_PATTERN)
    assert pattern.match("ci") and pattern.match("a.b")
    assert not pattern.match("a/b") and not pattern.match("-x") and not pattern.match("..")


@pytest.mark.parametrize(("value", "ok"), [
    ("1920x1080", True), ("800x600", True), ("99999x1", True),
    ("1920X1080", False), ("0x600", False), ("1920x", False), ("x", False), ("1920x1080pt", False),
    ("100000x1", False), (" 800x600", False), (1920, False),
])
def test_display(value: object, ok: bool) -> None:
    if ok:
        assert DISPLAY.from_json("display", value) == value
    else:
        with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
            DISPLAY.from_json("display", value)


def test_the_create_body_reads_from_and_defaults() -> None:
    body = CREATE.parse(b'{"name": "ci", "from": "ghcr.io/org/img:1"}', "application/json")
    assert body == CreateVm(VmName("ci"), VmName("ghcr.io/org/img:1"))
    assert body.request() == CreateRequest(VmName("ci"), VmName("ghcr.io/org/img:1"),
                                           random_mac=True, start=False, ephemeral=False)
    schema = CREATE.schema()
    assert schema["required"] == ["name", "from"]
    assert "from_" not in schema["properties"]  # type: ignore[operator]


def test_a_create_body_with_from_under_its_attribute_name_is_refused() -> None:
    with pytest.raises(ApiError) as caught:
        CREATE.parse(b'{"name": "ci", "from_": "base"}', "application/json")
    pointers = sorted(e["pointer"] for e in caught.value.extra["errors"])  # type: ignore[attr-defined]
    assert pointers == ["/from", "/from_"]


@pytest.mark.parametrize(("request_", "configures"), [
    (CreateRequest(VmName("a"), VmName("b")), True),  # random_mac
    (CreateRequest(VmName("a"), VmName("b"), random_mac=False), False),
    (CreateRequest(VmName("a"), VmName("b"), random_mac=False, disk_gb=80), True),
])
def test_set_is_called_only_with_something_to_set(request_: CreateRequest,
                                                   configures: bool) -> None:
    assert request_.configures() is configures


def op(**changes: object) -> Operation:
    base = {"id": "abc", "kind": "create", "state": "failed", "created_at": "t", "seq": 1,
            "vm": "ci", "started_at": "t", "phase": "cloning"}
    return Operation(**{**base, **changes})  # type: ignore[arg-type]


def test_an_operation_error_is_a_problem_document_with_tarts_message() -> None:
    doc = operation_document(op(error=OperationError(
        "image-not-found", "no such image", "manifest unknown", 1)))
    assert doc["error"] == {"type": "/problems/image-not-found", "title": "No such OCI image",
                            "status": 404, "detail": "no such image",
                            "tart_message": "manifest unknown", "tart_exit_code": 1}
    interrupted = operation_document(op(error=OperationError("interrupted", "interrupted by a "
                                                             "restart")))["error"]
    assert interrupted is not None and interrupted["type"] == "/problems/interrupted"
    assert "tart_message" not in interrupted
    unknown = operation_document(op(error=OperationError("from-the-future", "x")))["error"]
    assert unknown is not None and unknown["type"] == "/problems/internal-error"
    assert operation_document(op(state="succeeded"))["error"] is None
    json.dumps(doc)


@pytest.mark.parametrize(("text", "ok"), [("AbC-_9", True), ("x" * 64, True), ("x" * 65, False),
                                          ("", False), ("a.b", False), ("%2F", False)])
def test_operation_ids(text: str, ok: bool) -> None:
    if ok:
        assert OperationId().from_text("id", text) == text
    else:
        with pytest.raises(ValueError):
            OperationId().from_text("id", text)


class Deleting:
    """Records the deletes it is asked for; ``identity``: which VM carries the name (None:
    none); ``missing``: Tart says the VM does not exist when asked to delete it."""

    def __init__(self, identity: str | None = "7:1.5", missing: bool = False) -> None:
        self.deleted: list[str] = []
        self.identity = identity
        self.missing = missing

    def vm_identity(self, name: VmName) -> str | None:
        return self.identity

    def delete(self, name: VmName) -> None:
        self.deleted.append(name)
        if self.missing:
            raise TartVmMissing("does not exist", 2)


MADE = VmSpec("ci", True, "2026-01-01T00:00:00.000Z", "abc", vm_id="7:1.5")  # op()'s clone


@pytest.mark.parametrize(("operation", "deletes"), [
    (op(phase="pulling"), True),
    (op(phase="cloning"), True),
    (op(phase="configuring"), True),
    (op(phase=None), True),
    (op(phase="starting"), False),  # made whole: kept
    (op(started_at=None, phase=None), False),  # never began: what has the name is not its
    (op(kind="delete", phase="deleting"), False),
    (op(vm=None), False),
])
def test_what_a_restart_removes(operation: Operation, deletes: bool, tmp_path: Path) -> None:
    tart = Deleting()
    specs = SpecStore(tmp_path / "specs")
    specs.save(MADE)
    remove_leftovers(tart, specs, operation)  # type: ignore[arg-type]
    assert tart.deleted == (["ci"] if deletes else [])
    # the record of a VM a restart removed goes with it: a later VM of that name is not ephemeral
    assert (specs.load("ci") is None) == deletes


@pytest.mark.parametrize(("kept", "why"), [
    (None, "the clone was cut short: the create wrote no identity"),
    (VmSpec("ci", True, "t", "abc", vm_id=None), "its identity could not be read"),
    (VmSpec("ci", True, "t", "abc", vm_id="7:0.9"), "another VM replaced the one it made"),
    (VmSpec("ci", True, "t", "another-op", vm_id="7:1.5"), "an earlier create's spec"),
])
def test_a_vm_a_restart_cannot_show_the_create_made_is_left_alone(
        kept: VmSpec | None, why: str, tmp_path: Path) -> None:
    tart = Deleting(identity="7:1.5")
    specs = SpecStore(tmp_path / "specs")
    if kept is not None:
        specs.save(kept)
    remove_leftovers(tart, specs, op(phase="cloning"))  # type: ignore[arg-type]
    assert tart.deleted == [], why
    # this create's own spec goes (its VM is not there); an earlier create's is not its to drop
    assert (specs.load("ci") is None) == (kept is None or kept.operation == "abc"), why


def test_a_leftover_already_gone_is_fine(tmp_path: Path) -> None:
    specs = SpecStore(tmp_path / "specs")
    specs.save(MADE)
    remove_leftovers(Deleting(identity=None), specs, op())  # type: ignore[arg-type]
    assert specs.load("ci") is None
    specs.save(MADE)  # gone between the look and the delete
    remove_leftovers(Deleting(missing=True), specs, op())  # type: ignore[arg-type]
    assert specs.load("ci") is None


def test_specs_round_trip_whole_files(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "specs")
    assert store.load("ci") is None and store.all() == []
    spec = VmSpec("ci", True, "2026-01-01T00:00:00.000Z", "op1")
    store.save(spec)
    store.save(VmSpec("ghcr.io/x:1", False, "t"))
    assert store.load("ci") == spec
    assert sorted(s.name for s in store.all()) == ["ci", "ghcr.io/x:1"]
    (tmp_path / "specs" / "%tmp-crashed").write_text("{")
    (tmp_path / "specs" / "junk.json").write_text("not json")
    assert len(store.all()) == 2
    assert not (tmp_path / "specs" / "%tmp-crashed").exists()
    # a VM whose name looks like a temporary file keeps its record through a sweep
    store.save(VmSpec(".tmp-ci", True, "t"))
    assert len(store.all()) == 3 and store.load(".tmp-ci") is not None
    store.delete(".tmp-ci")
    store.delete("ci")
    store.delete("ci")
    assert store.load("ci") is None


def test_the_pull_timeout_setting() -> None:
    from vm_operator.config import load_config

    assert load_config([], {}).pull_timeout == 3600.0
    assert load_config([], {"VM_OPERATOR_PULL_TIMEOUT": "120"}).pull_timeout == 120.0
    assert load_config(["--pull-timeout", "60"],
                       {"VM_OPERATOR_PULL_TIMEOUT": "120"}).pull_timeout == 60.0
    with pytest.raises(SystemExit, match="VM_OPERATOR_PULL_TIMEOUT: must be from 1 to 86400"):
        load_config([], {"VM_OPERATOR_PULL_TIMEOUT": "0"})
