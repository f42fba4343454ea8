"""quick_init: the same record as the dataclass's own __init__ makes, still frozen."""

from __future__ import annotations

import dataclasses

import pytest

from vm_operator.edge.records import quick_init
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request


@dataclasses.dataclass(frozen=True)
class Plain:
    name: str
    tags: tuple[str, ...] = ()
    seen: list[str] = dataclasses.field(default_factory=list)


@quick_init
@dataclasses.dataclass(frozen=True)
class Quick:
    name: str
    tags: tuple[str, ...] = ()
    seen: list[str] = dataclasses.field(default_factory=list)


@pytest.mark.parametrize(("args", "kwargs"), [
    (("a",), {}),
    (("a", ("x",)), {}),
    (("a",), {"seen": ["s"]}),
    ((), {"name": "a", "tags": ("x", "y"), "seen": []}),
])
def test_a_quick_record_holds_what_the_dataclass_init_would(
        args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    quick, plain = Quick(*args, **kwargs), Plain(*args, **kwargs)  # type: ignore[arg-type]
    assert dataclasses.astuple(quick) == dataclasses.astuple(plain)
    assert quick == Quick(*args, **kwargs)  # type: ignore[arg-type]
    assert dataclasses.replace(quick) == quick


def test_a_default_factory_makes_a_new_value_for_each_record() -> None:
    first, second = Quick("a"), Quick("b")
    assert first.seen == [] and first.seen is not second.seen


def test_missing_or_unknown_arguments_are_refused_as_before() -> None:
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick("a", colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize("record", [Quick("a"), Response(200, b"{}"),
                                    Request("GET", "/vms", {}, {}, {})])
def test_a_quick_record_stays_frozen(record: object) -> None:
    field = dataclasses.fields(record)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, None)
