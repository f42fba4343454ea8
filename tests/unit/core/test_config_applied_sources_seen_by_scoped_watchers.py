"""What a watcher limited to VM patterns is told of a ``config.applied`` step that creates one
of its VMs from a local VM (``StepOutcome.about``, ``Event.seen_by``): the line without that
source, nor the error, when it may not touch the source; else the line as it is."""

from __future__ import annotations

from typing import Any

import pytest

from vm_operator.core.event_catalogue import CONFIG_APPLIED
from vm_operator.core.events import Event
from vm_operator.core.fleet import Step, VmEntry
from vm_operator.core.fleet_apply import StepOutcome
from vm_operator.tart.names import VmName


def _create(source: str, outcome: Any = "queued", error: str | None = None) -> StepOutcome:
    entry = VmEntry(VmName("ci-1"), VmName(source))
    return StepOutcome(Step("create", "ci-1", entry), outcome, error=error)


def _applied(*steps: StepOutcome) -> Event:
    new = CONFIG_APPLIED.about(None, {"file": "vms.toml", "cause": "api",
                                      "steps": [done.line() for done in steps],
                                      "failed": sum(done.outcome == "failed" for done in steps),
                                      "error": None},
                               tuple(done.about() for done in steps))
    return Event(4, new.type, "2026-12-07T10:00:00.000Z", None, dict(new.data), new.steps)


def _ci(name: str) -> bool:
    return name.startswith("ci-")


FAILED = _create("prod-base", "failed", 'the specified VM "prod-base" does not exist')


@pytest.mark.parametrize(("done", "may_touch", "told"), [
    (_create("prod-base"), _ci, "create ci-1 from a VM not shown: queued"),
    (FAILED, _ci, "create ci-1 from a VM not shown: failed"),
    (_create("prod-base"), lambda name: True, "create ci-1 from prod-base: queued"),
    (_create("ci-base"), _ci, "create ci-1 from ci-base: queued"),
    (_create("ghcr.io/org/prod-base:1"), _ci, "create ci-1 from ghcr.io/org/prod-base:1: queued"),
])
def test_a_create_step_names_its_source_only_to_a_watcher_that_may_touch_it(
        done: StepOutcome, may_touch: Any, told: str) -> None:
    event = _applied(done, StepOutcome(Step("start", "prod-1"), "done"))
    seen = event.seen_by(may_touch)
    assert seen is not None and seen.data["steps"][0] == told
    assert seen.data["failed"] == (1 if done.outcome == "failed" else 0)
    if may_touch("prod-1"):
        assert seen.data == event.data
