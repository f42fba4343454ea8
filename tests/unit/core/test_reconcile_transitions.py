"""The reconciler's memory of a VM as a state machine (core/reconcile_state.py): each named
transition, table-driven, from a record to the next record and the action it asks for."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vm_operator.core import reconcile_state as rs
from vm_operator.core.reconcile_rules import HEALTHY_AFTER
from vm_operator.core.reconcile_state import Failure, Plan, RunSeen, Step, VmMemory
from vm_operator.store.specs import Desired, RestartPolicy, VmSpec
from vm_operator.tart.records import Vm

NOW = 1000.0
AT = "2026-01-01T00:00:00.000Z"
NEW = VmMemory()
SUPERVISED = VmMemory(run=RunSeen.SUPERVISED, running_since=NOW - 5)
OUTSIDE = VmMemory(run=RunSeen.OUTSIDE, running_since=NOW - 5)
BACKING_OFF = VmMemory(failures=2, restart_count=3, retry_at=NOW + 2, condition="backing-off")
SETTLED = VmMemory(plan=Plan.STAY_STOPPED, condition="exited")
STOP_DUE = VmMemory(plan=Plan.STOP_ONCE)


def spec(desired: Desired | None = "running", restart: RestartPolicy = "always",
         ephemeral: bool = False, operation: str | None = None) -> VmSpec:
    return VmSpec("ci", ephemeral, None, operation, desired, restart)


def vm(state: str, source: str = "local") -> Vm:
    return {"name": "ci", "source": source, "state": state, "status": state,
            "running": state == "running", "disk_gb": 50, "size_gb": 20, "accessed": None}


def failure(error: str, restart_count: int = 0, delay: float = 1.0) -> Failure:
    return Failure(error, restart_count, delay)


# --- what is asked through the API --------------------------------------------------------------


@pytest.mark.parametrize(("before", "desired", "restart", "after"), [
    (BACKING_OFF, "running", None, replace(NEW)),  # a new ask forgets failures and backoff
    (BACKING_OFF, None, "never", replace(NEW)),
    (BACKING_OFF, None, None, BACKING_OFF),  # nothing asked: nothing forgotten
    (SETTLED, "running", None, NEW),
    (SETTLED, None, None, SETTLED),  # kept stopped (a stop through the API) until asked
    (NEW, "stopped", None, STOP_DUE),
    (STOP_DUE, None, "always", NEW),  # the stop due is over once it is asked again
    (STOP_DUE, None, None, NEW),
    (SUPERVISED, "stopped", None, replace(SUPERVISED, plan=Plan.STOP_ONCE)),  # its run watched
])
def test_a_desired_state_written(before: VmMemory, desired: Desired | None,
                                 restart: RestartPolicy | None, after: VmMemory) -> None:
    assert rs.desired_set(before, None, desired, restart) == Step(after)


def test_a_desired_state_of_another_create_starts_afresh() -> None:
    before = replace(SETTLED, failures=4, operation="op-1", last_exit={
        "exit_code": 1, "signal": None, "at": AT})
    assert rs.desired_set(before, "op-2", None, None).memory == VmMemory(operation="op-2")
    assert rs.desired_set(before, "op-1", None, None).memory == before
    assert rs.desired_set(before, None, None, None).memory == before  # no create: the same VM


@pytest.mark.parametrize(("before", "after"), [
    (NEW, VmMemory(run=RunSeen.SUPERVISED, running_since=NOW)),
    (replace(BACKING_OFF, end_asked=True), VmMemory(run=RunSeen.SUPERVISED, running_since=NOW)),
    (SETTLED, VmMemory(run=RunSeen.SUPERVISED, running_since=NOW)),
    (STOP_DUE, VmMemory(run=RunSeen.SUPERVISED, running_since=NOW)),
    (OUTSIDE, OUTSIDE),  # a run seen already keeps when it began
])
def test_a_start_through_the_api(before: VmMemory, after: VmMemory) -> None:
    assert rs.start_served(before, NOW, True) == Step(after)


def test_a_start_through_the_api_of_a_run_not_supervised() -> None:
    assert rs.start_served(NEW, NOW, False).memory.run is RunSeen.OUTSIDE


@pytest.mark.parametrize("before", [NEW, BACKING_OFF, STOP_DUE, SUPERVISED, SETTLED])
def test_a_stop_through_the_api_keeps_it_stopped_and_its_end_is_asked(before: VmMemory) -> None:
    after = rs.stop_requested(before).memory
    assert (after.plan, after.end_asked) == (Plan.STAY_STOPPED, True)
    assert (after.failures, after.restart_count, after.retry_at, after.condition) == (
        0, 0, None, None)
    assert after.run is before.run


@pytest.mark.parametrize("asked", [True, False])
def test_a_suspend_through_the_api_asks_for_the_end_unless_refused(asked: bool) -> None:
    assert rs.suspend_requested(replace(SUPERVISED, end_asked=not asked), asked) == Step(
        replace(SUPERVISED, end_asked=asked))


# --- a run's end ---------------------------------------------------------------------------------


EXIT_1 = {"exit_code": 1, "signal": None, "at": AT}


@pytest.mark.parametrize(("before", "the_spec", "code", "launched_here", "expected"), [
    # an unasked end of a watched run: a failure, the backoff
    (SUPERVISED, spec(), 1, False, Step(
        VmMemory(failures=1, retry_at=NOW + 1, condition="backing-off", last_exit=EXIT_1),
        failure=failure("its run ended (exit code 1); restart: always"))),
    # the third in a row: a crash loop begins
    (replace(SUPERVISED, failures=2, restart_count=2, condition="backing-off"), spec(), None,
     False, Step(VmMemory(failures=3, restart_count=2, retry_at=NOW + 4, condition="crash-loop",
                          last_exit={"exit_code": None, "signal": None, "at": AT}),
                 failure=failure("its run ended (exit code unknown); restart: always", 2, 4.0),
                 waiting="crash-loop")),
    # a crash loop goes on: nothing more to say of it
    (replace(SUPERVISED, failures=3, condition="crash-loop"), spec(), -9, False, Step(
        VmMemory(failures=4, retry_at=NOW + 8, condition="crash-loop",
                 last_exit={"exit_code": None, "signal": 9, "at": AT}),
        failure=failure("its run ended (killed by signal 9); restart: always", 0, 8.0))),
    # healthy for ten minutes: the first failure again
    (replace(SUPERVISED, failures=5, running_since=NOW - HEALTHY_AFTER), spec(), 1, False, Step(
        VmMemory(failures=1, retry_at=NOW + 1, condition="backing-off", last_exit=EXIT_1),
        failure=failure("its run ended (exit code 1); restart: always"))),
    # its policy keeps it stopped
    (SUPERVISED, spec(restart="on-failure"), 0, False, Step(
        VmMemory(plan=Plan.STAY_STOPPED, condition="exited",
                 last_exit={"exit_code": 0, "signal": None, "at": AT}))),
    (replace(BACKING_OFF, run=RunSeen.SUPERVISED), spec(restart="never"), 1, False, Step(
        replace(BACKING_OFF, plan=Plan.STAY_STOPPED, condition="exited", retry_at=None,
                last_exit=EXIT_1))),
    # asked for (a stop or suspend through the API): no failure
    (replace(SUPERVISED, end_asked=True), spec(), 1, False, Step(VmMemory(last_exit=EXIT_1))),
    # not desired running, ephemeral, no spec: only remembered
    (SUPERVISED, spec(desired="stopped"), 1, False, Step(VmMemory(last_exit=EXIT_1))),
    (SUPERVISED, spec(desired=None), 1, False, Step(VmMemory(last_exit=EXIT_1))),
    (SUPERVISED, spec(ephemeral=True), 1, False, Step(VmMemory(last_exit=EXIT_1))),
    (SUPERVISED, None, 1, True, Step(VmMemory(last_exit=EXIT_1))),
    # a run no pass saw: one this process launched counts, an earlier process's does not
    (NEW, spec(), 1, True, Step(
        VmMemory(failures=1, retry_at=NOW + 1, condition="backing-off", last_exit=EXIT_1),
        failure=failure("its run ended (exit code 1); restart: always"))),
    (NEW, spec(), 1, False, Step(VmMemory(last_exit=EXIT_1))),
])
def test_a_runs_end(before: VmMemory, the_spec: VmSpec | None, code: int | None,
                    launched_here: bool, expected: Step) -> None:
    assert rs.run_ended(before, the_spec, code, AT, launched_here, NOW) == expected


def test_a_runs_end_of_another_create_is_the_new_vms() -> None:
    before = replace(BACKING_OFF, operation="op-1", run=RunSeen.SUPERVISED)
    after = rs.run_ended(before, spec(operation="op-2"), 1, AT, False, NOW)
    assert after == Step(VmMemory(operation="op-2", last_exit=EXIT_1))


# --- a pass --------------------------------------------------------------------------------------


START = "desired running, found stopped"


@pytest.mark.parametrize(("before", "the_spec", "listed", "supervised", "expected"), [
    # not listed (or an image): missing while desired running; a stop due is dropped
    (NEW, spec(), None, False, Step(VmMemory(condition="missing"))),
    (NEW, spec(), vm("stopped", "oci"), False, Step(VmMemory(condition="missing"))),
    (STOP_DUE, spec(desired="stopped"), None, False, Step(NEW)),
    (replace(NEW, condition="missing"), spec(), vm("stopped"), False, Step(NEW, "start", START)),
    # stopped, desired running: start it
    (NEW, spec(), vm("stopped"), False, Step(NEW, "start", START)),
    (replace(NEW, failures=1, retry_at=NOW - 0.5, condition="backing-off"), spec(),
     vm("stopped"), False, Step(replace(NEW, failures=1, retry_at=NOW - 0.5,
                                        condition="backing-off"),
                                "start", "its run ended; restart: always")),
    # ... unless its backoff has not ended, its policy keeps it stopped, or its end is due
    (BACKING_OFF, spec(), vm("stopped"), False, Step(BACKING_OFF)),
    (SETTLED, spec(), vm("stopped"), False, Step(SETTLED)),
    (SUPERVISED, spec(), vm("stopped"), False, Step(SUPERVISED)),
    # a run started outside ended: exit unknown, judged by its policy
    (OUTSIDE, spec(), vm("stopped"), False, Step(
        VmMemory(failures=1, retry_at=NOW + 1, condition="backing-off",
                 last_exit={"exit_code": None, "signal": None, "at": AT}),
        failure=failure("its run ended (exit code unknown); restart: always"))),
    (OUTSIDE, spec(restart="never"), vm("stopped"), False, Step(
        VmMemory(plan=Plan.STAY_STOPPED, condition="exited",
                 last_exit={"exit_code": None, "signal": None, "at": AT}))),
    # running: seen, its backoff cleared, a policy's stop over
    (NEW, spec(), vm("running"), True, Step(replace(SUPERVISED, running_since=NOW))),
    (NEW, spec(), vm("running"), False, Step(replace(OUTSIDE, running_since=NOW))),
    (replace(BACKING_OFF, plan=Plan.STAY_STOPPED), spec(), vm("running"), True, Step(
        VmMemory(failures=2, restart_count=3, run=RunSeen.SUPERVISED, running_since=NOW))),
    (replace(BACKING_OFF, run=RunSeen.OUTSIDE, running_since=NOW - HEALTHY_AFTER), spec(),
     vm("running"), True, Step(VmMemory(restart_count=3, run=RunSeen.OUTSIDE,
                                        running_since=NOW - HEALTHY_AFTER))),
    # suspended, or not desired running: left alone
    (NEW, spec(), vm("suspended"), False, Step(NEW)),
    (NEW, spec(desired=None), vm("stopped"), False, Step(NEW)),
    # desired just set stopped: stop it once, if it runs (due until the stop begins)
    (STOP_DUE, spec(desired="stopped"), vm("running"), False, Step(STOP_DUE, "stop",
                                                                   "desired stopped")),
    (STOP_DUE, spec(desired="stopped"), vm("stopped"), False, Step(NEW)),
])
def test_a_pass_compares_and_decides(before: VmMemory, the_spec: VmSpec, listed: Vm | None,
                                     supervised: bool, expected: Step) -> None:
    assert rs.observed(before, the_spec, listed, NOW, AT, supervised) == expected


# --- what it does --------------------------------------------------------------------------------


def test_a_stop_the_reconciler_makes_is_asked_for() -> None:
    assert rs.stop_begun(SUPERVISED) == Step(replace(SUPERVISED, end_asked=True))


def test_a_stop_that_was_due_is_done_once_it_begins() -> None:
    assert rs.stop_begun(STOP_DUE) == Step(replace(NEW, end_asked=True))


def test_a_start_the_reconciler_makes_watches_its_run_from_now() -> None:
    before = replace(BACKING_OFF, end_asked=True)
    assert rs.start_begun(before, NOW) == Step(replace(
        BACKING_OFF, run=RunSeen.SUPERVISED, running_since=NOW))


@pytest.mark.parametrize(("memory", "the_spec", "wanted"), [
    (NEW, spec(), True), (BACKING_OFF, spec(), True), (STOP_DUE, spec(), True),
    (SETTLED, spec(), False),  # a stop through the API came first
    (NEW, spec(desired="stopped"), False), (NEW, spec(desired=None), False), (NEW, None, False),
])
def test_a_start_is_still_wanted(memory: VmMemory, the_spec: VmSpec | None,
                                 wanted: bool) -> None:
    assert rs.start_wanted(memory, the_spec) is wanted


@pytest.mark.parametrize(("before", "expected"), [
    (SUPERVISED, Step(VmMemory(restart_count=1, run=RunSeen.SUPERVISED,
                               running_since=NOW - 5))),
    (replace(BACKING_OFF, plan=Plan.STAY_STOPPED, run=RunSeen.SUPERVISED, running_since=NOW),
     Step(VmMemory(failures=2, restart_count=4, run=RunSeen.SUPERVISED, running_since=NOW))),
    # its run ended already (run_ended saw it): only counted
    (BACKING_OFF, Step(replace(BACKING_OFF, restart_count=4))),
])
def test_a_start_that_succeeded(before: VmMemory, expected: Step) -> None:
    assert rs.start_succeeded(before, True) == expected


def test_a_start_that_succeeded_of_a_run_no_longer_supervised() -> None:
    assert rs.start_succeeded(SUPERVISED, False).memory.run is RunSeen.OUTSIDE


@pytest.mark.parametrize(("before", "expected"), [
    (replace(SUPERVISED, condition="backing-off", retry_at=NOW - 1), Step(
        VmMemory(condition="waiting-for-slot"), waiting="waiting-for-slot")),
    (replace(SUPERVISED, condition="waiting-for-slot"), Step(
        VmMemory(condition="waiting-for-slot"))),  # waiting already: nothing new to tell
])
def test_a_start_refused_for_a_slot_waits_without_backoff(before: VmMemory,
                                                          expected: Step) -> None:
    assert rs.start_refused_for_slot(before) == expected


@pytest.mark.parametrize(("before", "expected"), [
    (SUPERVISED, Step(VmMemory(failures=1, retry_at=NOW + 1, condition="backing-off",
                               run=RunSeen.START_FAILED),
                      failure=failure("start: no"))),
    (replace(SUPERVISED, failures=2, restart_count=1), Step(
        VmMemory(failures=3, restart_count=1, retry_at=NOW + 4, condition="crash-loop",
                 run=RunSeen.START_FAILED),
        failure=failure("start: no", 1, 4.0), waiting="crash-loop")),
    (BACKING_OFF, Step(BACKING_OFF)),  # its run's end was reported, and counted, first
])
def test_a_start_that_failed_counts_once(before: VmMemory, expected: Step) -> None:
    assert rs.start_failed(before, "no", NOW) == expected


@pytest.mark.parametrize("launched_here", [True, False])
def test_a_failed_start_and_the_end_of_its_run_are_one_failure(launched_here: bool) -> None:
    """Whichever is seen first: the start's failure, then its run's end (no more counted), or
    the run's end (counted), then the start's failure (no more counted)."""
    begun = rs.start_begun(NEW, NOW).memory
    failed = rs.start_failed(begun, "no", NOW)
    after = rs.run_ended(failed.memory, spec(), 1, AT, launched_here, NOW + 0.5)
    assert (failed.failure, after.failure) == (failure("start: no"), None)
    assert after.memory == VmMemory(failures=1, retry_at=NOW + 1, condition="backing-off",
                                    last_exit=EXIT_1)
    ended = rs.run_ended(begun, spec(), 1, AT, launched_here, NOW)
    last = rs.start_failed(ended.memory, "no", NOW + 0.5)
    assert ended.failure is not None and last == Step(ended.memory)


@pytest.mark.parametrize(("listed", "expected"), [
    (vm("stopped"), Step(replace(BACKING_OFF, retry_at=NOW - 1, run=RunSeen.START_FAILED),
                         "start", "its run ended; restart: always")),
    (vm("running"), Step(VmMemory(failures=2, restart_count=3, run=RunSeen.SUPERVISED,
                                  running_since=NOW))),
])
def test_after_a_failed_start_a_pass_starts_it_again_or_sees_its_run(
        listed: Vm, expected: Step) -> None:
    before = replace(BACKING_OFF, retry_at=NOW - 1, run=RunSeen.START_FAILED)
    assert rs.observed(before, spec(), listed, NOW, AT, True) == expected


def test_a_declined_start_watches_no_run() -> None:
    assert rs.start_declined(SUPERVISED) == Step(NEW)


def test_clearing_the_backoff_leaves_the_failures() -> None:
    assert rs.backoff_cleared(BACKING_OFF) == VmMemory(failures=2, restart_count=3)
