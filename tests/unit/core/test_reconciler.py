"""The reconciler (core/reconciler.py) in process: its pure rules, table-driven, and its
passes over the fakes of tests/unit/fakes.py, the clock moved by the test (no sleeping)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeCore

from vm_operator.core.reconcile_rules import (
    backoff_delay,
    failures_after_end,
    last_exit,
    later,
    restart_wanted,
    wake_in,
)
from vm_operator.core.service import Settings
from vm_operator.store.specs import BadSpec, RestartPolicy, SpecStore, VmSpec, spec_from_json
from vm_operator.tart.names import VmName

# --- the pure rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(("failures", "delay"), [
    (0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (8, 128.0), (9, 256.0), (10, 300.0),
    (11, 300.0), (1000, 300.0),
])
def test_backoff_doubles_from_one_second_capped_at_five_minutes(failures: int,
                                                                delay: float) -> None:
    assert backoff_delay(failures) == delay


@pytest.mark.parametrize(("failures", "ran_for", "after"), [
    (0, 0.5, 1),
    (4, 30.0, 5),
    (4, 599.9, 5),
    (4, 600.0, 1),  # ten minutes of healthy running: the backoff starts again from 1 s
    (9, 86400.0, 1),
])
def test_ten_minutes_of_running_reset_the_failures(failures: int, ran_for: float,
                                                   after: int) -> None:
    assert failures_after_end(failures, ran_for) == after


@pytest.mark.parametrize(("policy", "exit_code", "restart"), [
    ("never", 0, False), ("never", 1, False), ("never", None, False), ("never", -9, False),
    ("on-failure", 0, False), ("on-failure", 1, True), ("on-failure", None, True),
    ("on-failure", -9, True),
    ("always", 0, True), ("always", 1, True), ("always", None, True), ("always", -9, True),
])
def test_restart_policies(policy: RestartPolicy, exit_code: int | None, restart: bool) -> None:
    assert restart_wanted(policy, exit_code) is restart


@pytest.mark.parametrize(("now", "began", "retry_ats", "wait"), [
    (100.0, 99.0, [], 5.0),  # no backoff: the periodic pass
    (100.0, 99.0, [101.5], 1.5),  # a backoff ends before the interval: wake then
    (100.0, 99.0, [103.0, 101.0, 102.0], 1.0),  # the earliest
    (100.0, 99.0, [110.0], 5.0),  # it ends after the interval: the periodic pass comes first
    (100.0, 99.0, [99.5], 0.0),  # it came due during the pass, after the VM was looked at
    (100.0, 99.0, [99.0, 98.0], 5.0),  # due when the pass began: it had that pass
    (100.0, 99.0, [98.0, 102.0], 2.0),
])
def test_the_next_pass_comes_when_the_earliest_backoff_ends(
        now: float, began: float, retry_ats: list[float], wait: float) -> None:
    assert wake_in(5.0, now, began, retry_ats) == wait


@pytest.mark.parametrize(("stamp", "seconds", "expected"), [
    ("2026-01-01T00:00:00.000Z", 1.0, "2026-01-01T00:00:01.000Z"),
    ("2026-01-01T00:00:59.900Z", 0.25, "2026-01-01T00:01:00.150Z"),
    ("2026-12-31T23:59:59.999Z", 300.0, "2027-01-01T00:04:59.999Z"),
])
def test_later(stamp: str, seconds: float, expected: str) -> None:
    assert later(stamp, seconds) == expected


@pytest.mark.parametrize(("code", "expected"), [
    (0, {"exit_code": 0, "signal": None}), (3, {"exit_code": 3, "signal": None}),
    (-9, {"exit_code": None, "signal": 9}), (None, {"exit_code": None, "signal": None}),
])
def test_last_exit(code: int | None, expected: dict[str, int | None]) -> None:
    assert last_exit(code, "t") == {**expected, "at": "t"}


# --- the spec record ------------------------------------------------------------------------------


def test_a_format_1_record_reads_as_no_wish_never_api() -> None:
    old = {"format": 1, "name": "ci", "ephemeral": True, "created_at": "2025-01-01T00:00:00.000Z",
           "operation": "op-1"}
    assert spec_from_json(old) == VmSpec("ci", True, "2025-01-01T00:00:00.000Z", "op-1", None,
                                         "never", "api")


def test_a_spec_goes_through_json_whole() -> None:
    spec = VmSpec("ci", False, None, None, "running", "on-failure", "config")
    data = json.loads(json.dumps(spec.to_json()))
    assert data["format"] == 2
    assert spec_from_json(data) == spec


@pytest.mark.parametrize("change", [
    {"desired": "paused"}, {"restart": "sometimes"}, {"restart": None}, {"source": "file"},
    {"format": 3}, {"created_at": 5}, {"name": None},
])
def test_a_wrong_spec_is_refused(change: dict[str, object]) -> None:
    good = VmSpec("ci", desired="running").to_json()
    with pytest.raises(BadSpec):
        spec_from_json({**good, **change})


# --- the reconciler over the fakes ---------------------------------------------------------------


class Core(FakeCore):
    def __init__(self, directory: Path, max_running: int = 2) -> None:
        super().__init__(directory, Settings(max_running=max_running))

    def started(self, name: str, restart: RestartPolicy) -> None:
        """A VM of the fake Tart, desired running under ``restart``, started as the API does."""
        self.tart.add(name)
        self.service.set_desired(VmName(name), restart=restart)
        self.service.start(VmName(name))

    def runs(self, name: str) -> int:
        return self.tart.count("run", name)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    core = Core(tmp_path)
    yield core
    core.tart.release_all()


def test_backoff_grows_while_runs_keep_ending_and_resets_after_ten_healthy_minutes(
        core: Core) -> None:
    core.started("ci", "always")
    for delay in (1.0, 2.0, 4.0, 8.0):  # each end, before the VM could run healthy
        core.crash("ci", 1)
        runs = core.runs("ci")
        core.clock.advance(delay - 0.1)
        core.reconciler.reconcile_once()
        assert core.runs("ci") == runs, f"started again before its backoff of {delay} s"
        status = core.status("ci")
        assert status["next_attempt_at"] is not None
        assert status["condition"] == ("crash-loop" if delay >= 4.0 else "backing-off")
        core.clock.advance(0.2)
        core.reconciler.reconcile_once()
        assert core.runs("ci") == runs + 1, f"not started again after its backoff of {delay} s"
    assert core.status("ci")["restart_count"] == 4
    core.reconciler.reconcile_once()  # sees it running
    core.clock.advance(600.0)
    core.reconciler.reconcile_once()  # ten minutes of healthy running
    assert core.status("ci")["condition"] is None
    core.crash("ci", 1)
    runs = core.runs("ci")
    core.clock.advance(1.1)  # the backoff is 1 s again, not 16 s
    core.reconciler.reconcile_once()
    assert core.runs("ci") == runs + 1
    assert core.status("ci")["condition"] is None


def test_an_end_after_ten_minutes_counts_as_the_first_failure(core: Core) -> None:
    core.started("ci", "on-failure")
    core.crash("ci", 2)
    core.clock.advance(1.1)
    core.reconciler.reconcile_once()
    core.crash("ci", 2)  # second failure in a row: 2 s
    core.clock.advance(2.1)
    core.reconciler.reconcile_once()
    runs = core.runs("ci")
    core.clock.advance(601.0)  # healthy for ten minutes, without a pass in between
    core.crash("ci", 2)
    core.clock.advance(1.1)
    core.reconciler.reconcile_once()
    assert core.runs("ci") == runs + 1


@pytest.mark.parametrize(("policy", "code", "restarted"), [
    ("never", 1, False), ("never", None, False), ("on-failure", 0, False),
    ("on-failure", 1, True), ("on-failure", None, True), ("always", 0, True),
])
def test_an_end_restarts_as_the_policy_says(core: Core, policy: RestartPolicy,
                                            code: int | None, restarted: bool) -> None:
    core.started("ci", policy)
    core.crash("ci", code)
    core.clock.advance(1.1)
    core.reconciler.reconcile_once()
    core.clock.advance(1000.0)
    core.reconciler.reconcile_once()
    assert core.runs("ci") == (2 if restarted else 1)
    assert core.status("ci")["condition"] == (None if restarted else "exited")


def test_a_stop_through_the_api_is_never_undone(core: Core) -> None:
    core.started("ci", "always")
    core.service.stop(VmName("ci"), 5)
    spec = core.service.spec(VmName("ci"))
    assert spec is not None and spec.desired == "stopped" and spec.restart == "always"
    for _ in range(3):
        core.clock.advance(400.0)
        core.reconciler.reconcile_once()
    assert core.runs("ci") == 1
    assert core.status("ci")["condition"] is None


def test_a_suspend_through_the_api_is_not_a_failure(core: Core) -> None:
    core.tart.add("ci")
    core.service.set_desired(VmName("ci"), restart="always")
    core.service.start(VmName("ci"), suspendable=True)
    core.service.suspend(VmName("ci"))
    core.clock.advance(400.0)
    core.reconciler.reconcile_once()
    assert core.runs("ci") == 1
    assert core.tart.vms["ci"].state == "suspended"


def test_three_desired_running_with_two_slots_wait_without_backoff(core: Core) -> None:
    for name in ("a", "b", "c"):
        core.tart.add(name)
        core.service.set_desired(VmName(name), desired="running", restart="always")
    core.reconciler.reconcile_once()
    assert [core.runs(name) for name in ("a", "b", "c")] == [1, 1, 0]
    for _ in range(5):  # however often it tries, it waits: no failure, no backoff
        core.clock.advance(1000.0)
        core.reconciler.reconcile_once()
        status = core.status("c")
        assert status["condition"] == "waiting-for-slot"
        assert status["next_attempt_at"] is None and status["restart_count"] == 0
    assert core.runs("c") == 0  # refused before Tart is asked
    core.service.stop(VmName("a"), 5)  # a slot frees
    core.reconciler.reconcile_once()
    assert core.runs("c") == 1
    assert core.status("c")["condition"] is None
    assert core.runs("a") == 1  # its stop is not undone


def test_a_pass_calls_no_tart_without_a_vm_desired_running(core: Core) -> None:
    core.tart.add("ci")
    core.tart.add("hand-made", state="running")  # no spec: only observed
    mark = core.tart.mark()
    core.reconciler.reconcile_once()
    core.service.set_desired(VmName("ci"), restart="always")  # desired: no wish yet
    core.reconciler.reconcile_once()
    assert len(core.tart.calls) == mark
    core.service.set_desired(VmName("ci"), desired="stopped")  # stopped and desired stopped
    core.reconciler.reconcile_once()  # one look, to stop it if it ran
    core.reconciler.reconcile_once()
    assert [call.command for call in core.tart.calls[mark:]] == ["list"]


def test_a_vm_without_a_spec_is_never_stopped_nor_started(core: Core) -> None:
    core.tart.add("ci")
    core.tart.add("hand-made", state="running")
    core.service.set_desired(VmName("ci"), desired="running")
    core.reconciler.reconcile_once()
    core.tart.vms["hand-made"].state = "stopped"
    core.clock.advance(100.0)
    core.reconciler.reconcile_once()
    assert core.runs("ci") == 1
    assert core.tart.count("run", "hand-made") == 0 and core.tart.count("stop") == 0
    assert core.service.spec(VmName("hand-made")) is None


def test_desired_stopped_stops_a_running_vm_once(core: Core) -> None:
    core.tart.add("ci")
    core.service.start(VmName("ci"))
    core.service.set_desired(VmName("ci"), desired="stopped", source="config")
    core.reconciler.reconcile_once()
    assert core.tart.count("stop", "ci") == 1 and core.tart.vms["ci"].state == "stopped"
    spec = core.service.spec(VmName("ci"))
    assert spec is not None and (spec.desired, spec.source) == ("stopped", "config")
    core.tart.vms["ci"].state = "running"  # started by hand since: the reconciler lets it be
    core.reconciler.reconcile_once()
    assert core.tart.count("stop", "ci") == 1


def test_start_up_brings_back_every_vm_desired_running_whatever_its_policy(
        tmp_path: Path) -> None:
    specs = SpecStore(tmp_path / "specs", tmp_path)
    specs.save(VmSpec("never", desired="running", restart="never"))
    specs.save(VmSpec("always", desired="running", restart="always"))
    specs.save(VmSpec("stopped", desired="stopped", restart="always"))
    specs.save(VmSpec("ephemeral", True, "2025-01-01T00:00:00.000Z", "op", "running", "always"))
    core = Core(tmp_path)
    try:
        for name in ("never", "always", "stopped", "ephemeral", "unmanaged"):
            core.tart.add(name)
        core.reconciler.reconcile_once()
        assert {name: core.runs(name) for name in core.tart.vms} == {
            "never": 1, "always": 1, "stopped": 0, "ephemeral": 0, "unmanaged": 0}
        assert core.status("always")["restart_count"] == 1
    finally:
        core.tart.release_all()


def test_events_tell_what_the_reconciler_did(core: Core) -> None:
    core.started("ci", "always")
    core.crash("ci", 1)
    core.clock.advance(1.1)
    core.reconciler.reconcile_once()
    events = [(event.type, dict(event.data)) for event in core.service.events.history("ci")]
    failed = [data for kind, data in events if kind == "reconcile.failed"]
    assert failed and failed[0]["restart_count"] == 0 and failed[0]["next_attempt_at"]
    assert ("reconcile.action", {"action": "start", "reason": "its run ended; restart: always"}
            ) in events
    assert ("vm.state", {"from": "stopped", "to": "running", "cause": "reconciler",
                         "exit_code": None}) in events


def test_a_run_no_pass_saw_is_judged_by_its_policy_too(core: Core) -> None:
    """A create's start step launches the run through Power: when it ends before a pass has
    seen it running, its policy still decides (``never``: it stays stopped)."""
    core.tart.add("made")
    core.specs.save(VmSpec("made", False, core.clock.utc_now(), "op-1", "running", "never"))
    core.service.power.start(VmName("made"))
    core.crash("made", 0)
    core.clock.advance(100.0)
    core.reconciler.reconcile_once()
    assert core.runs("made") == 1
    assert core.status("made")["condition"] == "exited"


def test_a_vm_created_again_under_a_name_starts_afresh(core: Core) -> None:
    core.tart.add("ci")
    core.specs.save(VmSpec("ci", False, core.clock.utc_now(), "op-1", "running", "never"))
    core.reconciler.reconcile_once()
    core.crash("ci", 1)
    core.reconciler.reconcile_once()
    assert core.status("ci")["condition"] == "exited"
    core.specs.save(VmSpec("ci", False, core.clock.utc_now(), "op-2", "running", "always"))
    core.reconciler.reconcile_once()  # another VM of that name: nothing of the old one holds it
    assert core.runs("ci") == 2
    assert core.status("ci")["condition"] is None


def test_a_stop_that_comes_between_a_pass_and_its_start_wins(core: Core) -> None:
    """The pass decided to start the VM; a stop through the API got the VM's write lock first:
    once the start has the lock it asks again, and starts nothing."""
    core.tart.add("ci")
    core.service.set_desired(VmName("ci"), "running", "always")
    core.service.stop(VmName("ci"), 5)  # stopped already: it only says "desired stopped"
    core.reconciler._start(VmName("ci"))  # the start the pass had decided on, now under way
    assert core.runs("ci") == 0
    assert core.tart.vms["ci"].state == "stopped"
    assert core.status("ci")["restart_count"] == 0


def test_next_attempt_at_is_when_the_backoff_ends_and_never_a_time_past(core: Core) -> None:
    core.started("ci", "always")
    core.crash("ci", 1)
    ends = later(core.clock.utc_now(), 1.0)
    assert core.status("ci")["next_attempt_at"] == ends
    core.clock.advance(0.5)
    assert core.status("ci")["next_attempt_at"] == ends  # the same instant, still ahead
    assert core.status("ci")["condition"] == "backing-off"
    core.clock.advance(0.5)  # due: being tried now, not a time past
    assert core.status("ci")["next_attempt_at"] is None
    core.reconciler.reconcile_once()
    assert core.runs("ci") == 2 and core.status("ci")["next_attempt_at"] is None


def test_each_failed_start_counts_the_backoff_doubles_and_the_third_is_a_crash_loop(
        core: Core) -> None:
    """``tart run`` itself fails (no run ever ends): the failed starts are what count."""
    core.tart.add("ci").run_fails = "tart: the VM cannot be launched"
    core.service.set_desired(VmName("ci"), "running", "always")
    for attempt, delay in enumerate((1.0, 2.0, 4.0, 8.0), 1):
        core.reconciler.reconcile_once()
        assert core.runs("ci") == attempt
        status = core.status("ci")
        assert status["next_attempt_at"] == later(core.clock.utc_now(), delay), attempt
        assert status["condition"] == ("crash-loop" if attempt >= 3 else "backing-off")
        assert status["restart_count"] == 0
        core.clock.advance(delay - 0.01)
        core.reconciler.reconcile_once()
        assert core.runs("ci") == attempt, "tried again before its backoff ended"
        core.clock.advance(0.01)
