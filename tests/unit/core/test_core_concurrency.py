"""The concurrency core, in process: VmService over a fake Tart, a fake store and a fake clock.

Each test pins one mechanism so that it fails when that mechanism breaks: one ``tart run`` per
VM, a run that ends before Tart reports it running, the start timeout, the macOS slot cap, the
fair bounded write queue per VM, and the read cache (invalidation by writes, single flight).
Threads meet through the fake Tart's gates (a call held mid-flight) and through ``wait_parked``
(a thread blocked in a queue), never through sleeps; time passes only when a test moves the
fake clock, so a 30 s start timeout takes no time at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import SAFETY, Call, FakeClock, FakeStore, FakeTart, Gate, begin, wait_parked

from vm_operator.core.errors import OperatorError, VmBusy, VmLimit
from vm_operator.core.operations import OperationQueue
from vm_operator.core.service import Settings, VmService
from vm_operator.edge.errors import ApiError, problem_for
from vm_operator.store.specs import SpecStore
from vm_operator.tart.errors import TartCommandError, TartError
from vm_operator.tart.names import VmName

SETTINGS = Settings(cache_ttl=60.0, start_timeout=30.0, poll_interval=0.001, max_running=2)
LIMIT_LINE = "Error: The number of VMs exceeds the system limit"  # Tart's own words, exit 1
QUEUE_BOUND = 16  # writes that may wait for one VM (the README's promise)


# --- the core's refusals -------------------------------------------------------------------
# The core raises domain exceptions (core/errors.py) and passes Tart's refusals on as the
# adapter's TartCommandError subclasses; the edge's catalogue (problem_for) names each one. These
# helpers read a refusal through that one mapping, so the tests say "vm-limit", not a class.


def as_problem(error: BaseException) -> ApiError:
    assert isinstance(error, OperatorError | TartError), f"not a refusal: {error!r}"
    return problem_for(error)


def refusal(error: BaseException) -> str:
    """The kind of refusal, e.g. "vm-limit"."""
    assert not isinstance(error, TartCommandError), f"Tart's refusal, not the core's: {error!r}"
    return as_problem(error).slug


def retry_after(error: BaseException) -> int:
    assert isinstance(error, VmBusy), repr(error)
    return error.retry_after


def vm_limit(error: BaseException) -> int:
    """The cap a "vm-limit" refusal names."""
    assert isinstance(error, VmLimit), repr(error)
    return error.limit


def tart_refusal(error: BaseException) -> tuple[str, int]:
    """Tart's message and exit code, from an error that passes on Tart's own refusal."""
    assert isinstance(error, TartCommandError), repr(error)
    return error.message, error.exit_code


def outcome_error(call: Call) -> Exception:
    """What ``call`` raised (it must raise)."""
    try:
        result = call.outcome()
    except Exception as error:  # noqa: BLE001 - the refusal under test
        return error
    raise AssertionError(f"{call.name} was not refused; it returned {result!r}")


# --- the core under test --------------------------------------------------------------------


class Core:
    def __init__(self, settings: Settings, directory: Path) -> None:
        self.tart = FakeTart()
        self.store = FakeStore()
        self.clock = FakeClock()
        # the long-running operations (create, delete, …) are not under test here: a queue that
        # is never started, specs in a throw-away directory, failures named by their class
        operations = OperationQueue(lambda: "2026-01-01T00:00:00.000Z")
        specs = SpecStore(directory / "specs", directory)
        self.service = VmService(self.tart, self.store, self.clock, operations, specs,
                                 lambda exc: type(exc).__name__, settings)

    def state(self, name: str) -> str:
        """The VM's state in a plain read (the cache's answer, when it may give one)."""
        return next(str(vm["state"]) for vm in self.service.list_vms() if vm["name"] == name)

    def running(self, name: str) -> None:
        """A VM already running when the test begins (started outside the operator)."""
        self.tart.vms[name].state = "running"


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    core = Core(SETTINGS, tmp_path)
    yield core
    core.tart.release_all()  # no thread the test began waits on after it


def threads_since(before: set[threading.Thread], but: threading.Thread) -> list[threading.Thread]:
    """The threads started since ``before`` but ``but``: those the core started, among them
    the reaper of each run it launched (joined, it has recorded that run's end)."""
    return [thread for thread in threading.enumerate()
            if thread not in before and thread is not but]


def confirming(core: Core, start: Call) -> None:
    """Wait until ``start`` is past `tart run` and looks at the VM (so its deadline is set)."""
    core.tart.wait_calls("run", caller=start)
    core.tart.wait_calls("list", since=core.tart.mark(), caller=start)
    assert start.is_alive(), f"the start ended before it confirmed the run: {start.error!r}"


def join_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(SAFETY)
        assert not thread.is_alive(), f"{thread.name} never ended"


# --- 1. one tart run per VM ---------------------------------------------------------------------


def test_two_concurrent_starts_of_one_vm_launch_one_run(core: Core) -> None:
    core.tart.add("mac")
    launching = core.tart.hold("run")
    barrier = threading.Barrier(2)

    def start() -> Any:
        barrier.wait(SAFETY)
        return core.service.start("mac")

    starts = [begin("start-1", start), begin("start-2", start)]
    launching.wait_entered()  # one start is inside `tart run`...
    other = next(call for call in starts if call.name not in core.tart.callers("run"))
    wait_parked(other, "the other start")  # ...the other waits for it, wherever it got to
    assert core.tart.count("run") == 1
    launching.open()

    results = [call.outcome() for call in starts]
    assert core.tart.count("run") == 1
    assert [vm["state"] for vm in results] == ["running", "running"]
    assert sorted(vm["changed"] for vm in results) == [False, True]


# --- 2. a run that ends before Tart reports it running ------------------------------------------


def test_a_run_that_ends_before_running_fails_the_start_with_tarts_last_line(core: Core) -> None:
    vm = core.tart.add("mac")
    vm.boots = False  # Tart never lists it running
    start = begin("start", core.service.start, "mac")
    confirming(core, start)
    core.tart.crash("mac", 1, LIMIT_LINE)

    assert tart_refusal(outcome_error(start)) == (LIMIT_LINE, 1)
    assert vm.run is not None and vm.run.waited and not vm.run.alive  # reaped
    assert core.service.running_runs() == 0
    last_run = core.service.describe("mac")["last_run"]
    assert last_run["pid"] == vm.run.pid
    assert last_run["finished_at"] is not None
    assert (last_run["exit_code"], last_run["exit_code_known"]) == (1, True)
    assert last_run["error"] == LIMIT_LINE

    vm.boots = True  # the dead run is no longer the VM's: the next start launches a new one
    assert begin("start-again", core.service.start, "mac").outcome()["state"] == "running"
    assert core.tart.count("run") == 2


# --- 3. the start timeout -----------------------------------------------------------------------


def test_a_start_times_out_after_start_timeout_of_clock_time_and_leaves_its_run(
        core: Core) -> None:
    vm = core.tart.add("mac")
    vm.boots = False
    first = begin("start-1", core.service.start, "mac")
    confirming(core, first)

    core.clock.advance(SETTINGS.start_timeout - 1)
    core.tart.wait_calls("list", 2, since=core.tart.mark(), caller=first)  # a look since
    assert first.is_alive(), f"gave up before start_timeout: {first.error!r}"
    core.clock.advance(1)
    assert refusal(outcome_error(first)) == "start-timeout"

    assert vm.run is not None and vm.run.alive  # left running: a slow boot is not killed
    assert core.tart.count("stop") == 0
    assert core.service.running_runs() == 1
    last_run = core.service.describe("mac")["last_run"]
    assert (last_run["pid"], last_run["finished_at"]) == (vm.run.pid, None)

    mark = core.tart.mark()
    second = begin("start-2", core.service.start, "mac")
    core.tart.wait_calls("list", 2, since=mark, caller=second)  # it found it stopped, waits...
    core.tart.boot("mac")
    result = second.outcome()
    assert (result["state"], result["changed"]) == ("running", True)
    assert core.tart.count("run") == 1  # ...and never launched another


# --- 4. the macOS slot cap ----------------------------------------------------------------------


def test_a_third_macos_start_is_refused_before_tart_run(core: Core) -> None:
    for name in ("mac-1", "mac-2", "mac-3"):
        core.tart.add(name)
    core.running("mac-1")
    core.running("mac-2")

    error = outcome_error(begin("start", core.service.start, "mac-3"))
    assert refusal(error) == "vm-limit" and vm_limit(error) == 2
    assert core.tart.count("run") == 0


def test_linux_guests_neither_count_nor_are_counted(core: Core) -> None:
    core.tart.add("mac-1")
    core.tart.add("mac-2")
    core.tart.add("linux-1", os="linux")
    core.tart.add("linux-2", os="linux")
    core.running("mac-1")
    core.running("linux-1")

    assert begin("start-mac", core.service.start, "mac-2").outcome()["state"] == "running"
    # two macOS guests run now: a Linux one still starts
    assert begin("start-linux", core.service.start, "linux-2").outcome()["state"] == "running"
    assert core.tart.count("run") == 2


def test_a_vm_being_launched_holds_its_slot(core: Core) -> None:
    for name in ("mac-1", "mac-2", "mac-3"):
        core.tart.add(name)
    core.running("mac-1")
    launching = core.tart.hold("run", "mac-2")
    second = begin("start-2", core.service.start, "mac-2")
    launching.wait_entered()  # mac-2 is inside `tart run`: nothing lists it yet

    error = outcome_error(begin("start-3", core.service.start, "mac-3"))
    assert refusal(error) == "vm-limit"
    assert core.tart.count("run", "mac-3") == 0

    launching.open()
    assert second.outcome()["state"] == "running"


def test_a_run_left_by_a_start_timeout_holds_its_slot(core: Core) -> None:
    for name in ("mac-1", "mac-2", "mac-3"):
        core.tart.add(name)
    core.running("mac-1")
    core.tart.vms["mac-2"].boots = False
    second = begin("start-2", core.service.start, "mac-2")
    confirming(core, second)
    core.clock.advance(SETTINGS.start_timeout)
    assert refusal(outcome_error(second)) == "start-timeout"  # its run lives on, not listed

    error = outcome_error(begin("start-3", core.service.start, "mac-3"))
    assert refusal(error) == "vm-limit"
    assert core.tart.count("run", "mac-3") == 0


# --- 5. the fair, bounded write queue of one VM -------------------------------------------------


def queue_stops(core: Core, timeouts: range) -> list[Call]:
    """Stops of "mac" queued one after the other (each waits before the next is sent)."""
    queued = []
    for timeout in timeouts:
        call = begin(f"stop-{timeout}", core.service.stop, "mac", timeout)
        wait_parked(call, f"stop {timeout}")
        queued.append(call)
    return queued


def held_stop(core: Core) -> tuple[Call, Gate]:
    """A stop of "mac" held inside `tart stop` (a guest that ignores stops: each stop asks)."""
    core.tart.add("mac", state="running").stop_takes_effect = False
    gate = core.tart.hold("stop")
    holder = begin("stop-0", core.service.stop, "mac", 0)
    gate.wait_entered()
    return holder, gate


def test_writes_to_one_vm_are_served_in_arrival_order(core: Core) -> None:
    holder, gate = held_stop(core)
    queued = queue_stops(core, range(1, 9))
    assert core.tart.count("stop") == 1  # they wait in the queue, not in Tart
    gate.open()

    for call in [holder, *queued]:
        call.outcome()
    assert core.tart.args("stop") == list(range(9))


def test_past_the_bound_a_write_is_refused_at_once_with_a_retry_after(core: Core) -> None:
    holder, gate = held_stop(core)
    queued = queue_stops(core, range(1, QUEUE_BOUND + 1))  # the 16th still queues

    error = outcome_error(begin("stop-refused", core.service.stop, "mac", 99))
    assert refusal(error) == "vm-busy"
    assert retry_after(error) >= 1
    gate.open()

    for call in [holder, *queued]:
        call.outcome()
    assert core.tart.args("stop") == list(range(QUEUE_BOUND + 1))  # the refused one: never
    begin("stop-after", core.service.stop, "mac", 100).outcome()  # it took no place either
    assert core.tart.args("stop")[-1] == 100


# --- 6. stop and suspend wait for a start of the same VM ----------------------------------------


@pytest.mark.parametrize("write", ["stop", "suspend"])
def test_a_stop_or_suspend_sent_during_a_start_runs_after_it(core: Core, write: str) -> None:
    core.tart.add("mac")
    launching = core.tart.hold("run")
    start = begin("start", core.service.start, "mac", write == "suspend")
    launching.wait_entered()

    if write == "stop":
        queued = begin(write, core.service.stop, "mac", 30)
    else:
        queued = begin(write, core.service.suspend, "mac")
    wait_parked(queued, write)
    assert core.tart.calls_by(write) == []  # it has not even looked at the VM yet
    launching.open()

    assert start.outcome()["state"] == "running"
    done = queued.outcome()
    assert (done["state"], done["changed"]) == ({"stop": "stopped", "suspend": "suspended"}[write],
                                                True)
    assert max(core.tart.calls_by("start")) < min(core.tart.calls_by(write))
    assert core.tart.count(write) == 1


# --- 7. the read cache: writes invalidate it, concurrent readers share one fetch ----------------


def test_a_read_after_start_or_stop_returned_shows_the_new_state(core: Core) -> None:
    core.tart.add("mac")
    assert core.state("mac") == "stopped"  # cached for 60 s from now on; the clock stays

    begin("start", core.service.start, "mac").outcome()
    assert core.state("mac") == "running"
    assert core.service.describe("mac")["state"] == "running"

    begin("stop", core.service.stop, "mac", 30).outcome()
    assert core.state("mac") == "stopped"
    detail = core.service.describe("mac")
    assert detail["state"] == "stopped"
    assert detail["last_run"]["finished_at"] is not None  # the run it stopped, finished


def test_a_run_that_ends_on_its_own_is_read_stopped_at_once(core: Core) -> None:
    core.tart.add("mac")
    before = set(threading.enumerate())
    start = begin("start", core.service.start, "mac")
    start.outcome()
    reapers = threads_since(before, but=start)
    assert core.state("mac") == "running"  # cached now, for 60 s

    core.tart.crash("mac", 0)  # the guest shut down
    join_all(reapers)
    lists = core.tart.count("list")
    assert core.state("mac") == "stopped"
    assert core.tart.count("list") == lists + 1  # asked Tart: the cache was dropped


def test_a_listing_taken_while_a_failed_start_died_is_not_served_after_it(core: Core) -> None:
    vm = core.tart.add("mac")
    vm.boots = False
    launching = core.tart.hold("run")
    before = set(threading.enumerate())
    start = begin("start", core.service.start, "mac")
    launching.wait_entered()
    listing = core.tart.hold("list")  # the start's next look at the VM is held...
    core.tart.boot("mac")  # ...and sees it running
    launching.open()
    listing.wait_entered()
    core.tart.crash("mac", 1, LIMIT_LINE)  # while the run dies
    join_all(threads_since(before, but=start))  # its reaper has recorded the end
    listing.open()

    assert tart_refusal(outcome_error(start)) == (LIMIT_LINE, 1)
    assert core.state("mac") == "stopped"  # not the "running" of the listing held in flight


def test_concurrent_readers_share_one_list_call(core: Core) -> None:
    for number in range(3):
        core.tart.add(f"vm-{number}")
    fetching = core.tart.hold("list")
    readers = [begin(f"reader-{number}", core.service.list_vms) for number in range(8)]
    fetching.wait_entered()
    for reader in readers:
        wait_parked(reader, reader.name)  # each waits: on the one fetch, or in a fetch of its own
    assert core.tart.count("list") == 1
    fetching.open()

    answers = [reader.outcome() for reader in readers]
    assert all(answer == answers[0] for answer in answers)
    assert [vm["name"] for vm in answers[0]] == ["vm-0", "vm-1", "vm-2"]
    assert core.tart.count("list") == 1 and core.tart.max_in_flight["list"] == 1


# --- found while writing these: a run the operator launched that Tart does not list yet --------


def test_a_suspendable_start_joining_a_run_launched_without_it_is_refused(core: Core) -> None:
    vm = core.tart.add("mac")
    vm.boots = False
    first = begin("start-1", core.service.start, "mac", False)
    confirming(core, first)
    core.clock.advance(SETTINGS.start_timeout)
    assert refusal(outcome_error(first)) == "start-timeout"

    mark = core.tart.mark()
    second = begin("start-2", core.service.start, "mac", True)
    core.tart.wait_calls("list", 2, since=mark, caller=second)
    core.tart.boot("mac")
    assert refusal(outcome_error(second)) == "not-suspendable"
    assert vm.run is not None and not vm.run_suspendable  # what the refusal would protect


def start_that_times_out(core: Core) -> object:
    """A VM whose ``tart run`` (ours) lives, but that Tart does not list running: the start
    answered start-timeout and left the run."""
    vm = core.tart.add("mac")
    vm.boots = False
    first = begin("start-1", core.service.start, "mac")
    confirming(core, first)
    core.clock.advance(SETTINGS.start_timeout)
    assert refusal(outcome_error(first)) == "start-timeout"
    assert vm.run is not None and vm.run.alive
    return vm


def test_a_stop_of_a_run_not_listed_yet_refuses_instead_of_saying_stopped(core: Core) -> None:
    vm = start_that_times_out(core)
    mark = core.tart.mark()
    stop = begin("stop", core.service.stop, "mac", 30)
    core.tart.wait_calls("list", 2, since=mark, caller=stop)  # it waits for the listing
    core.clock.advance(30)
    assert refusal(outcome_error(stop)) == "vm-starting"  # never "stopped" while the run lives
    assert vm.run is not None and vm.run.alive


def test_a_stop_of_a_run_not_listed_yet_stops_it_once_tart_lists_it(core: Core) -> None:
    vm = start_that_times_out(core)
    mark = core.tart.mark()
    stop = begin("stop", core.service.stop, "mac", 30)
    core.tart.wait_calls("list", 2, since=mark, caller=stop)
    core.tart.boot("mac")  # Tart lists it running at last
    result = stop.outcome()
    assert (result["state"], result["changed"]) == ("stopped", True)
    assert core.tart.count("stop") == 1
    assert vm.run is None or not vm.run.alive


def test_a_refused_suspend_leaves_the_runs_end_unasked(core: Core) -> None:
    core.tart.add("mac")
    with pytest.raises(Exception) as refused:
        core.service.suspend(VmName("mac"))  # stopped: nothing to suspend
    assert refusal(refused.value) == "not-running"
    watch = core.service.reconciler._memories.get("mac")
    assert watch is None or watch.end_asked is False  # a crash of its next run is not "asked"
