"""The typed records and the JSON schemas /openapi.json publishes for them say the same keys."""

from __future__ import annotations

from typing import Any

from vm_operator.api.operations import OperationDoc
from vm_operator.api.schemas import SCHEMAS
from vm_operator.api.system import Health
from vm_operator.core.records import (
    ChangedVm,
    CreatingVm,
    DesiredStatus,
    LastExit,
    ManagedVmDetail,
    ReadyVmDetail,
    SpecView,
    StartedReadyVm,
    TartStatus,
)
from vm_operator.store.state import RunRecord
from vm_operator.tart.records import Vm, VmInfo


def properties(schema: Any) -> set[str]:
    return set(schema["properties"])


def test_vm() -> None:
    assert set(SCHEMAS["VM"]["required"]) == set(Vm.__required_keys__)  # type: ignore[index]
    assert properties(SCHEMAS["VM"]) == (set(ChangedVm.__required_keys__)
                                         | set(CreatingVm.__required_keys__))


def test_operation() -> None:
    keys = set(OperationDoc.__required_keys__)
    assert set(SCHEMAS["Operation"]["required"]) == keys == properties(SCHEMAS["Operation"])


def test_vm_detail() -> None:
    vm, extra, desired = SCHEMAS["VMDetail"]["allOf"]  # type: ignore[index]
    assert vm == {"$ref": "#/components/schemas/VM"}
    assert properties(extra) == set(VmInfo.__required_keys__) | {"last_run", "ready", "ip"}
    assert set(ReadyVmDetail.__required_keys__) == set(Vm.__required_keys__) | properties(extra)
    last_run = extra["properties"]["last_run"]["oneOf"][1]
    assert properties(last_run) == set(RunRecord.__required_keys__)
    assert set(desired["required"]) == properties(desired) == set(DesiredStatus.__required_keys__)
    assert set(ManagedVmDetail.__required_keys__) == (set(ReadyVmDetail.__required_keys__)
                                                      | properties(desired))
    spec = desired["properties"]["spec"]["oneOf"][1]
    assert set(spec["required"]) == properties(spec) == set(SpecView.__required_keys__)
    last_exit = desired["properties"]["last_exit"]["oneOf"][1]
    assert set(last_exit["required"]) == properties(last_exit) == set(LastExit.__required_keys__)


def test_started_ready_vm() -> None:
    detail, extra = SCHEMAS["StartedReadyVM"]["allOf"]  # type: ignore[index]
    assert detail == {"$ref": "#/components/schemas/VMDetail"}
    assert set(StartedReadyVm.__required_keys__) == (set(ManagedVmDetail.__required_keys__)
                                                     | properties(extra))
    assert set(extra["required"]) == {"ready", "ip", "changed"}


def test_health() -> None:
    assert set(SCHEMAS["Health"]["required"]) == set(Health.__required_keys__)  # type: ignore[index]
    assert properties(SCHEMAS["Health"]["properties"]["tart"]) == set(  # type: ignore[index]
        TartStatus.__required_keys__)
