"""The client's records and options hold to the server's published schemas.

The client imports nothing of the server, so nothing but this test ties its records
(client/records.py) to what the server answers: each field a record reads is a property of the
schema /openapi.json gives for that answer, reading every JSON type the schema allows there (null
too when the property may be absent) and nothing else but null (what an older server left out);
and each required property is read, unless listed below as left aside on purpose. The client's options take the values and bounds the server's
request schemas do.
"""

from __future__ import annotations

import argparse
import dataclasses
from types import NoneType, UnionType
from typing import Any, get_args, get_origin, get_type_hints

import pytest

from vm_operator import api
from vm_operator.client import records
from vm_operator.client.main import build_parser
from vm_operator.store.operation_records import Operation as ServerOperation

DOCUMENT = api.openapi()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]  # type: ignore[index]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return resolve(SCHEMAS[ref.rsplit("/", 1)[-1]]) if ref else schema


def merged(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema with its ``allOf`` parts merged: properties and required."""
    schema = resolve(schema)
    if "allOf" not in schema:
        return schema
    parts = [merged(part) for part in schema["allOf"]]
    return {"properties": {k: v for part in parts for k, v in part.get("properties", {}).items()},
            "required": [k for part in parts for k in part.get("required", [])]}


def member(schema: dict[str, Any], *path: str) -> dict[str, Any]:
    """The object schema of a nested member (the non-null branch of its ``oneOf``)."""
    for key in path:
        prop = merged(schema)["properties"][key]
        branches = [b for b in prop.get("oneOf", [prop]) if b.get("type") != "null"]
        schema = resolve(branches[0])
    return schema


def answer(method: str, path: str, status: str = "200") -> dict[str, Any]:
    operation = DOCUMENT["paths"][path][method]  # type: ignore[index]
    return resolve(operation["responses"][status]["content"]["application/json"]["schema"])


VMDETAIL = SCHEMAS["VMDetail"]

# (client record, the schema of the JSON it reads, required properties it leaves aside: why)
CASES: list[tuple[type, dict[str, Any], set[str]]] = [
    (records.Problem, SCHEMAS["Problem"], set()),
    (records.Vm, SCHEMAS["VM"], {"status"}),  # the same as state, for the original API's clients
    (records.VmDetail, VMDETAIL, {"status"}),  # its list fields are read as a Vm (field vm)
    (records.LastRun, member(VMDETAIL, "last_run"), set()),
    (records.Spec, member(VMDETAIL, "spec"), {"created_at"}),  # the client does not show it
    (records.LastExit, member(VMDETAIL, "last_exit"), set()),
    (records.Operation, SCHEMAS["Operation"], set()),
    (records.Image, SCHEMAS["Image"], set()),
    (records.Event, SCHEMAS["Event"], set()),
    (records.VmIp, answer("get", "/vms/{name}/ip"), set()),
    (records.HealthDetails, SCHEMAS["Health"], {"status"}),  # read into Health.status
    (records.TartStatus, member(SCHEMAS["Health"], "tart"), set()),
]
COMPOSED = {(records.VmDetail, "vm")}  # a record read from the same object, not a member

PY_TO_JSON = {str: "string", int: "integer", bool: "boolean", dict: "object", NoneType: "null"}


def json_types_of(hint: Any) -> set[str]:
    """The JSON types a client field's annotation accepts."""
    kinds = get_args(hint) if isinstance(hint, UnionType) else (hint,)
    found = set()
    for kind in kinds:
        kind = get_origin(kind) or kind
        found.add("object" if dataclasses.is_dataclass(kind) else PY_TO_JSON[kind])
    return found


def json_types_in(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema property allows."""
    if "$ref" in schema or "allOf" in schema:
        return {"object"}
    if "oneOf" in schema:
        return set().union(*(json_types_in(branch) for branch in schema["oneOf"]))
    if "enum" in schema:
        return {PY_TO_JSON[type(value)] for value in schema["enum"]}
    kind = schema["type"]
    return {kind} if isinstance(kind, str) else set(kind)


@pytest.mark.parametrize(("record", "schema", "aside"), CASES,
                         ids=[record.__name__ for record, _, _ in CASES])
def test_a_client_record_reads_the_fields_of_its_schema(
        record: type, schema: dict[str, Any], aside: set[str]) -> None:
    schema = merged(schema)
    properties, required = schema["properties"], set(schema.get("required", []))
    hints = get_type_hints(record)
    wrong = []
    read = set()
    for field in dataclasses.fields(record):
        if (record, field.name) in COMPOSED:
            continue
        read.add(field.name)
        if field.name not in properties:
            wrong.append(f"{field.name}: no such property")
            continue
        client, server = json_types_of(hints[field.name]), json_types_in(properties[field.name])
        if field.name not in required:
            server = server | {"null"}  # it may be absent: the client must read None
        # all the server may send, and at most null besides (a field an older server left out)
        if not server <= client or not client - server <= {"null"}:
            wrong.append(f"{field.name}: the client reads {sorted(client)}, the server sends "
                         f"{sorted(server)}")
    unread = required - read - aside
    if record is records.VmDetail:  # its Vm reads these
        unread -= {f.name for f in dataclasses.fields(records.Vm)}
    assert not wrong, "\n".join(wrong)
    assert not unread, f"required properties the client does not read: {sorted(unread)}"


def test_every_operation_field_of_the_server_reaches_the_client() -> None:
    """The server's operation record (but ``seq``, the store's order) is what the client reads."""
    server = {field.name for field in dataclasses.fields(ServerOperation)} - {"seq"}
    assert {field.name for field in dataclasses.fields(records.Operation)} == server


# --- the client's options against the server's request schemas ------------------------------


def options(command: str) -> dict[str, argparse.Action]:
    parser = build_parser()
    sub = next(action for action in parser._actions
               if isinstance(action, argparse._SubParsersAction))
    return {action.dest: action for action in sub.choices[command]._actions}


def accepts(action: argparse.Action, text: str) -> bool:
    assert callable(action.type)
    try:
        action.type(text)
    except argparse.ArgumentTypeError:
        return False
    return True


@pytest.mark.parametrize("command", ["create", "set"])
@pytest.mark.parametrize(("option", "prop"), [("cpu", "cpu"), ("memory", "memory_mb"),
                                              ("disk", "disk_gb")])
def test_a_resource_option_takes_the_bounds_of_the_api(command: str, option: str,
                                                       prop: str) -> None:
    bounds = SCHEMAS["CreateVm"]["properties"][prop]
    assert SCHEMAS["PatchBody"]["properties"][prop]["minimum"] == bounds["minimum"]
    assert SCHEMAS["PatchBody"]["properties"][prop]["maximum"] == bounds["maximum"]
    low, high = bounds["minimum"], bounds["maximum"]
    action = options(command)[option]
    assert [accepts(action, str(n)) for n in (low - 1, low, high, high + 1)] == [
        False, True, True, False]
    assert f"({low}-{high})" in (action.help or "")


@pytest.mark.parametrize("command", ["create", "set"])
def test_the_restart_option_takes_the_policies_of_the_api(command: str) -> None:
    for body in ("CreateVm", "PatchBody"):
        enum = [value for value in SCHEMAS[body]["properties"]["restart"]["enum"] if value]
        assert list(options(command)["restart"].choices or ()) == enum
    assert list(options(command)["restart"].choices or ()) == [
        value for value in member(VMDETAIL, "spec")["properties"]["restart"]["enum"]]


@pytest.mark.parametrize("command", ["create", "set"])
@pytest.mark.parametrize(("text", "valid"), [("1920x1080", True), ("1x1", True),
                                             ("99999x99999", True), ("0x10", False),
                                             ("100000x1", False), ("1920X1080", False),
                                             ("1920x", False)])
def test_the_display_option_takes_what_the_api_does(command: str, text: str,
                                                    valid: bool) -> None:
    import re
    pattern = SCHEMAS["CreateVm"]["properties"]["display"]["pattern"]
    assert bool(re.fullmatch(pattern, text)) is valid
    assert accepts(options(command)["display"], text) is valid
