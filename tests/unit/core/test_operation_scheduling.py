"""Which waiting operations may start now (core/scheduling.py): a pure rule, table-driven."""

from __future__ import annotations

import pytest

from vm_operator.core.scheduling import Claim, claim_of, conflict, startable

SEQUOIA = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
SONOMA = "ghcr.io/cirruslabs/macos-sonoma-base:latest"
XCODE = "ghcr.io/cirruslabs/macos-sequoia-xcode:latest"
UBUNTU = "ghcr.io/cirruslabs/ubuntu:latest"


def pull(image: str) -> Claim:
    return claim_of("pull", None, image, pulls=True)


def create(vm: str, source: str, pulls: bool = False) -> Claim:
    return claim_of("create", vm, source, pulls=pulls)


def delete(vm: str) -> Claim:
    return claim_of("delete", vm, None, pulls=False)


PRUNE = claim_of("prune", None, None, pulls=False)

CASES = [
    # (what it shows, running, waiting, the indices of waiting that start)
    ("nothing waits", [pull(SEQUOIA)], [], []),
    ("an idle queue starts the first", [], [pull(SEQUOIA)], [0]),
    ("a create from a cached image beside a pull of another",
     [pull(SEQUOIA)], [create("a", SONOMA)], [0]),
    ("a create from a local VM beside a pull", [pull(SEQUOIA)], [create("a", "base")], [0]),
    ("two pulls of different images side by side", [], [pull(SEQUOIA), pull(SONOMA)], [0, 1]),
    ("a third download waits for the bound", [pull(SEQUOIA), pull(SONOMA)],
     [pull(XCODE), create("a", UBUNTU, pulls=True)], []),
    ("a create from a cached image passes downloads held by the bound",
     [pull(SEQUOIA), pull(SONOMA)], [pull(XCODE), create("a", UBUNTU)], [1]),
    ("downloads take a freed slot in arrival order", [pull(SEQUOIA)],
     [pull(XCODE), pull(UBUNTU)], [0]),
    ("a create from an image waits for that image's pull", [pull(SEQUOIA)],
     [create("a", SEQUOIA, pulls=True)], []),
    ("a pull waits for a create pulling that image", [create("a", SEQUOIA, pulls=True)],
     [pull(SEQUOIA)], []),
    ("two creates from one image: one at a time", [],
     [create("a", SEQUOIA), create("b", SEQUOIA)], [0]),
    ("a create from a local VM waits for that VM's delete", [delete("base")],
     [create("a", "base")], []),
    ("a delete of a VM waits for a create copying it", [create("a", "base")],
     [delete("base")], []),
    ("a delete beside a pull", [pull(SEQUOIA)], [delete("old")], [0]),
    ("a prune waits for a pull", [pull(SEQUOIA)], [PRUNE], []),
    ("a prune waits for a create from an image", [create("a", SEQUOIA)], [PRUNE], []),
    ("a prune beside a create from a local VM and a delete",
     [create("a", "base"), delete("old")], [PRUNE], [0]),
    ("a pull waits for a prune", [PRUNE], [pull(SEQUOIA)], []),
    ("a create from a local VM beside a prune", [PRUNE], [create("a", "base")], [0]),
    ("a pull arriving after a waiting prune does not overtake it", [pull(SEQUOIA)],
     [PRUNE, pull(SONOMA), create("a", "base")], [2]),
    ("a create arriving after a waiting create on its image does not overtake it",
     [pull(SEQUOIA), pull(SONOMA)], [create("a", XCODE, pulls=True), create("b", XCODE)], []),
    ("at most the running bound", [],
     [create(f"vm{n}", f"base{n}") for n in range(6)], [0, 1, 2, 3]),
    ("none past the running bound", [create(f"vm{n}", f"base{n}") for n in range(4)],
     [delete("old")], []),
]


@pytest.mark.parametrize(("running", "waiting", "started"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_what_may_start_now(running: list[Claim], waiting: list[Claim],
                            started: list[int]) -> None:
    assert startable(running, waiting) == started


def test_the_bounds_are_parameters() -> None:
    waiting = [pull(SEQUOIA), pull(SONOMA), pull(XCODE), create("a", "base")]
    assert startable([], waiting, max_pulls=1) == [0, 3]
    assert startable([], waiting, max_pulls=3, max_running=2) == [0, 1]


@pytest.mark.parametrize(("a", "b", "expected"), [
    (pull(SEQUOIA), pull(SEQUOIA), True),
    (pull(SEQUOIA), pull(SONOMA), False),
    (create("a", SEQUOIA), create("a", SONOMA), True),  # one VM name
    (create("a", "base"), create("b", "base"), True),  # one source VM
    (PRUNE, PRUNE, True),
    (PRUNE, delete("x"), False),
    (PRUNE, create("a", UBUNTU), True),
])
def test_conflict_is_symmetric(a: Claim, b: Claim, expected: bool) -> None:
    assert conflict(a, b) is expected and conflict(b, a) is expected
