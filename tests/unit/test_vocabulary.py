"""Each enum and bound of the API's contract is declared once (vm_operator/vocabulary.py) and
the rest is derived: the published schemas, the store's checks, the declarative file's, the
client's options. A second spelling of one of them in the package is a drift waiting to happen.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from vm_operator import api, vocabulary
from vm_operator.core.fleet import FleetError, parse_fleet
from vm_operator.store.operation_records import Operation, OperationJson
from vm_operator.store.specs import BadSpec, spec_from_json

PACKAGE = Path(vocabulary.__file__).parent
SCHEMAS: dict[str, Any] = api.openapi()["components"]["schemas"]  # type: ignore[index]
DETAIL = SCHEMAS["VMDetail"]["allOf"]

# How a declaration would be spelled again: its values, comma-separated, or its bound.
SPELLINGS = [
    '"never", "on-failure", "always"',
    '"backing-off", "crash-loop"',
    '"queued", "running", "succeeded"',
    '"succeeded", "failed", "cancelled"',
    '"create", "delete", "pull", "prune"',
    '"running", "suspended", "stopped"',
    '"local", "oci"',
    "[1-9][0-9]{0,4}x[1-9][0-9]{0,4}",
    "1048576",
    "36500",
]


def python_sources() -> list[Path]:
    """The package's modules, but the simulator: a program of its own (it imitates Tart)."""
    return [path for path in sorted(PACKAGE.rglob("*.py"))
            if "simulator" not in path.relative_to(PACKAGE).parts]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_declaration_of_the_contract_is_spelled_once(spelling: str) -> None:
    found = [str(path.relative_to(PACKAGE)) for path in python_sources()
             if spelling in path.read_text()]
    assert found == ["vocabulary.py"]


def test_the_published_enums_are_the_declared_ones() -> None:
    spec = DETAIL[2]["properties"]["spec"]["oneOf"][1]["properties"]
    assert spec["restart"]["enum"] == list(vocabulary.RESTART_POLICIES)
    assert spec["desired"]["enum"] == [*vocabulary.DESIRED, None]
    assert DETAIL[2]["properties"]["condition"]["enum"] == [None, *vocabulary.CONDITIONS]
    for body in ("CreateVm", "PatchBody"):
        restart = SCHEMAS[body]["properties"]["restart"]["enum"]
        assert [value for value in restart if value is not None] == list(
            vocabulary.RESTART_POLICIES)
    operation = SCHEMAS["Operation"]["properties"]
    assert operation["kind"]["enum"] == list(vocabulary.OPERATION_KINDS)
    assert operation["state"]["enum"] == list(vocabulary.OPERATION_STATES)
    assert set(vocabulary.FINISHED_STATES) < set(vocabulary.OPERATION_STATES)
    assert SCHEMAS["VM"]["properties"]["state"]["enum"] == [*vocabulary.VM_STATES, "creating"]
    assert SCHEMAS["VM"]["properties"]["source"]["enum"] == list(vocabulary.VM_SOURCES)


@pytest.mark.parametrize(("key", "bounds"), [("cpu", vocabulary.CPU),
                                             ("memory_mb", vocabulary.MEMORY_MB),
                                             ("disk_gb", vocabulary.DISK_GB)])
def test_the_resource_bounds_are_the_declared_ones_everywhere(key: str,
                                                              bounds: tuple[int, int]) -> None:
    low, high = bounds
    for body in ("CreateVm", "PatchBody"):
        prop = SCHEMAS[body]["properties"][key]
        assert (prop["minimum"], prop["maximum"]) == bounds
    parse_fleet(f'[vms.ci]\nfrom = "x"\n{key} = {low}\n')
    parse_fleet(f'[vms.ci]\nfrom = "x"\n{key} = {high}\n')
    with pytest.raises(FleetError, match=f"from {low} to {high}"):
        parse_fleet(f'[vms.ci]\nfrom = "x"\n{key} = {high + 1}\n')


def test_the_display_pattern_is_the_declared_one() -> None:
    for body in ("CreateVm", "PatchBody"):
        assert SCHEMAS[body]["properties"]["display"]["pattern"] == (
            f"^{vocabulary.DISPLAY_PATTERN}$")
    assert re.fullmatch(vocabulary.DISPLAY_PATTERN, vocabulary.DISPLAY_EXAMPLE)


def test_the_store_and_the_file_take_the_declared_restart_policies() -> None:
    for policy in vocabulary.RESTART_POLICIES:
        record = {"format": 2, "name": "ci", "ephemeral": False, "created_at": None,
                  "operation": None, "desired": None, "restart": policy, "source": "api"}
        assert spec_from_json(record).restart == policy
        assert parse_fleet(f'[vms.ci]\nfrom = "x"\nrestart = "{policy}"\n').vms[0].restart == (
            policy)
    with pytest.raises(BadSpec):
        spec_from_json({"format": 2, "name": "ci", "ephemeral": False, "created_at": None,
                        "operation": None, "desired": None, "restart": "sometimes",
                        "source": "api"})


def test_an_operations_json_is_its_record_and_its_schema() -> None:
    """The record's fields (but ``seq``, the store's order) are its JSON's keys, in the order
    the schema publishes them, every one required."""
    op = Operation("op1", "pull", "queued", "2025-01-01T00:00:00Z", 3, image="a/b")
    keys = list(op.to_json())
    assert keys == list(OperationJson.__annotations__)
    assert set(keys) == {field.name for field in dataclasses.fields(Operation)} - {"seq"}
    assert keys == list(SCHEMAS["Operation"]["properties"]) == SCHEMAS["Operation"]["required"]
