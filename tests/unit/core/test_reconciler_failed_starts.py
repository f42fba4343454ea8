"""A start the reconciler makes that fails, over the fakes (the clock moved by the test): the
failure is counted once, whichever of the start's failure and its run's end is seen first."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import SAFETY, FakeCore, begin

from vm_operator.core.reconcile_rules import later
from vm_operator.core.service import Settings
from vm_operator.tart.names import VmName

SETTINGS = Settings(start_timeout=30.0, poll_interval=0.001)


def failures_told(core: FakeCore, name: str) -> list[dict[str, object]]:
    return [dict(event.data) for event in core.service.events.history(name)
            if event.type == "reconcile.failed"]


@pytest.fixture
def core(tmp_path: Path) -> Iterator[FakeCore]:
    core = FakeCore(tmp_path, SETTINGS)
    yield core
    core.tart.release_all()


def test_a_start_that_timed_out_and_the_end_of_its_run_are_one_failure(core: FakeCore) -> None:
    """The start gives up first (start-timeout: its run is left), then that run ends: the end
    is the same failure, not a second one (the backoff stays at 1 s, not 2 s)."""
    vm = core.tart.add("ci")
    vm.boots = False  # Tart never lists it running: the start times out
    core.service.set_desired(VmName("ci"), "running", "always")
    reconciling = begin("pass", core.reconciler.reconcile_once)
    core.tart.wait_calls("run", caller=reconciling)
    core.tart.wait_calls("list", since=core.tart.mark(), caller=reconciling)  # confirming it
    core.clock.advance(SETTINGS.start_timeout)
    reconciling.outcome()
    told = failures_told(core, "ci")
    assert len(told) == 1 and str(told[0]["error"]).startswith("start: ")
    next_attempt = core.reconciler.status("ci")["next_attempt_at"]
    assert next_attempt == later(core.clock.utc_now(), 1.0)
    assert vm.run is not None and vm.run.alive
    core.tart.crash("ci", 1)  # the run that start left ends
    deadline = time.monotonic() + SAFETY
    while core.service.runs.watching("ci"):  # until its end has been told to every listener
        assert time.monotonic() < deadline, "the run's end was never told"
        time.sleep(0.001)
    status = core.reconciler.status("ci")
    assert status["last_exit"] is not None and status["last_exit"]["exit_code"] == 1
    assert len(failures_told(core, "ci")) == 1
    assert status["next_attempt_at"] == next_attempt
    assert status["condition"] == "backing-off"
