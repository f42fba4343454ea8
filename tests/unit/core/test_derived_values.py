"""Values made from others (``cache.Derived``): kept while what they were made from is equal,
made again from the new sources as soon as one of them changes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vm_operator.core.cache import Derived


@dataclass(frozen=True)
class Spec:
    desired: str


def merged(vm: dict[str, object], ready: bool, spec: Spec | None) -> dict[str, object]:
    made.append((vm, ready, spec))
    return {**vm, "ready": ready, "desired": None if spec is None else spec.desired}


made: list[tuple[object, ...]] = []


@pytest.fixture(autouse=True)
def _fresh() -> None:
    made.clear()


def test_the_same_sources_give_the_value_made_the_first_time() -> None:
    derived: Derived[dict[str, object]] = Derived()
    vm = {"name": "a", "state": "running"}
    first = derived.get("a", merged, vm, True, Spec("running"))
    again = derived.get("a", merged, vm, True, Spec("running"))  # an equal spec, a new object
    again_copied = derived.get("a", merged, dict(vm), True, Spec("running"))
    assert again is first and again_copied is first
    assert len(made) == 1


@pytest.mark.parametrize(("before", "after"), [
    (({"name": "a", "state": "running"}, True, None), ({"name": "a", "state": "stopped"}, True, None)),
    (({"name": "a"}, False, None), ({"name": "a"}, True, None)),
    (({"name": "a"}, True, None), ({"name": "a"}, True, Spec("running"))),
    (({"name": "a"}, True, Spec("running")), ({"name": "a"}, True, Spec("stopped"))),
])
def test_a_changed_source_makes_the_value_again_from_the_new_sources(
        before: tuple[dict[str, object], bool, Spec | None],
        after: tuple[dict[str, object], bool, Spec | None]) -> None:
    derived: Derived[dict[str, object]] = Derived()
    old = derived.get("a", merged, *before)
    new = derived.get("a", merged, *after)
    assert new == merged(*after) != old
    assert derived.get("a", merged, *before) == old  # and back again


def test_each_key_keeps_its_own_value() -> None:
    derived: Derived[dict[str, object]] = Derived()
    a = derived.get("a", merged, {"name": "a"}, True, None)
    b = derived.get("b", merged, {"name": "b"}, True, None)
    assert (a["name"], b["name"]) == ("a", "b")
    assert derived.get("a", merged, {"name": "a"}, True, None) is a


def test_past_its_limit_it_forgets_and_still_answers_right() -> None:
    derived: Derived[dict[str, object]] = Derived(limit=2)
    values = [derived.get(str(n), merged, {"n": n}, False, None) for n in range(5)]
    assert [v["n"] for v in values] == list(range(5))
    assert len(derived._kept) <= 2
