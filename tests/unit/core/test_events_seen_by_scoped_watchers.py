"""What a watcher limited to VM patterns is told of an event (``Event.seen_by``): events of
other VMs not at all, nor an operation's about no VM; events about no VM whole but for the
steps about other VMs."""

from __future__ import annotations

from typing import Any

import pytest

from vm_operator.core.event_catalogue import StepAbout
from vm_operator.core.events import Event

APPLIED = Event(7, "config.applied", "2026-12-07T10:00:00.000Z", None,
                {"file": "vms.toml", "cause": "api", "steps": ["start ci-1: done",
                                                               "set prod: failed (no)",
                                                               "delete ci-2: failed (busy)"],
                 "failed": 2, "error": None},
                (StepAbout("ci-1", False), StepAbout("prod", True), StepAbout("ci-2", True)))
STATE = Event(8, "vm.state", "2026-12-07T10:00:00.000Z", "prod", {"to": "running"})
PULL = Event(9, "operation.queued", "2026-12-07T10:00:00.000Z", None, {"kind": "pull"})


def _ci(name: str) -> bool:
    return name.startswith("ci-")


@pytest.mark.parametrize(("event", "may_touch", "steps", "failed"), [
    (APPLIED, lambda name: True, APPLIED.data["steps"], 2),
    (APPLIED, _ci, ["start ci-1: done", "delete ci-2: failed (busy)"], 1),
    (APPLIED, lambda name: name == "prod", ["set prod: failed (no)"], 1),
    (APPLIED, lambda name: False, [], 0),
])
def test_config_applied_keeps_only_the_watchers_steps(event: Event, may_touch: Any,
                                                      steps: list[str], failed: int) -> None:
    seen = event.seen_by(may_touch)
    assert seen is not None
    assert seen.data["steps"] == steps and seen.data["failed"] == failed
    assert (seen.id, seen.type, seen.data["file"]) == (event.id, event.type, "vms.toml")
    assert [step.vm for step in seen.steps] == [
        step.vm for step in event.steps if may_touch(step.vm)]


def test_other_events_are_told_whole_or_not_at_all() -> None:
    assert STATE.seen_by(_ci) is None
    assert STATE.seen_by(lambda name: name == "prod") is STATE


def test_an_operation_about_no_vm_is_not_told_as_it_cannot_be_read() -> None:
    # a pull's or a prune's: GET /operations hides it from the token, GET /operations/{id} 403
    assert PULL.seen_by(_ci) is None
    assert PULL.seen_by(lambda name: True) is None
