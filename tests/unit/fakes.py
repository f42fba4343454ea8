"""Fakes of what the core is given (core/ports.py, core/clock.py), for in-process tests of its
concurrency: a Tart whose every call the test can count, hold mid-flight and script; a state
store in memory; a clock the test moves.

They answer as the real adapter does (the list and get answers go through the real parsers;
refusals are the adapter's own TartError classes, from Tart's own messages), so that a test that
passes against them says something about the real thing.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vm_operator.core.operations import OperationQueue
from vm_operator.core.records import DesiredStatus
from vm_operator.core.service import Settings, VmService
from vm_operator.store.specs import SpecStore
from vm_operator.store.state import LogTail, RunRecord, cut_tail
from vm_operator.tart.errors import GuestRefused, RunStillAlive, command_error
from vm_operator.tart.parse import normalize_vm, parse_vm_info
from vm_operator.tart.tunnel import GuestPipe

SAFETY = 5.0  # seconds: a bound on every wait, only so that a broken core fails instead of hanging


def parked(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked in ``Condition.wait`` (where every wait of the
    ``threading`` module blocks: a Condition, an Event, the core's FifoLock), but not in a
    Barrier (a thread let through a barrier stays in its wait until it is scheduled again).

    This is the only way to know that a thread has queued behind another: blocking is
    invisible from outside. Tests use it before they let anything go, so "parked" means
    "got as far as it can". A thread blocked in a bare ``Lock.acquire`` has no Python frame
    there and is never seen parked: a test then fails with "never blocked"."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None or frame.f_code.co_filename != threading.__file__ or (
            frame.f_code.co_qualname != "Condition.wait"):
        return False
    while frame is not None and frame.f_code.co_filename == threading.__file__:
        if frame.f_code.co_qualname.startswith("Barrier."):
            return False
        frame = frame.f_back
    return True


def wait_parked(thread: threading.Thread, what: str) -> None:
    """Wait (bounded) until ``thread`` blocks; fail at once if it ends instead."""
    deadline = time.monotonic() + SAFETY
    while not parked(thread):
        assert thread.is_alive(), f"{what}: it ended instead of waiting"
        assert time.monotonic() < deadline, f"{what}: never blocked"
        time.sleep(0.0005)  # a look at the thread's state, not a guess at how long it takes


# --- the clock --------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that the test moves with ``advance``.

    Each reading is one microsecond later than the one before, as two readings of a real
    monotonic clock always are: the core's freshness rule ("a fetch that started at or after
    the change") relies on it, and a frozen clock would make every fresh read a cached one.
    """

    TICK = 1e-6

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            self._now += self.TICK
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def utc_now(self) -> str:
        now = self.monotonic()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + now))
        return f"{stamp}.{int(now % 1 * 1000):03d}Z"


# --- Tart -------------------------------------------------------------------------------------


class FakeRun:
    """A ``tart run`` (a RunHandle): ``wait`` blocks until the test, or a stop or a suspend of
    the fake Tart, ends it."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._ended = threading.Event()
        self._code: int | None = None
        self.waited = False  # someone (the core's reaper) collected it

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def alive(self) -> bool:
        return not self._ended.is_set()

    def wait(self) -> int | None:
        self.waited = True
        self._ended.wait()
        return self._code

    def end(self, code: int | None) -> None:
        if self.alive:
            self._code = code
            self._ended.set()


class Gate:
    """Holds the calls of one Tart command mid-flight until the test opens it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._entered = 0
        self._open = threading.Event()

    def pass_through(self) -> None:
        with self._cond:
            self._entered += 1
            self._cond.notify_all()
        if not self._open.wait(2 * SAFETY):  # longer than wait_parked: it reports first
            raise AssertionError("a held Tart call was never let through")

    def wait_entered(self, count: int = 1) -> None:
        """Wait until ``count`` calls have reached the gate."""
        with self._cond:
            assert self._cond.wait_for(lambda: self._entered >= count, SAFETY), (
                f"{count} call(s) never reached the gate ({self._entered} did)")

    @property
    def entered(self) -> int:
        with self._cond:
            return self._entered

    def open(self) -> None:
        self._open.set()


@dataclass(frozen=True)
class TartCall:
    command: str
    name: str | None
    arg: object  # stop: its timeout; run: suspendable; else None
    thread: str  # the name of the thread that made it


_IDENTITIES = itertools.count(1000)  # every VM made (add, a clone) gets a directory of its own


@dataclass
class FakeVm:
    name: str
    os: str = "darwin"
    state: str = "stopped"
    source: str = "local"
    boots: bool = True  # a run makes Tart list the VM running at once; False: only at boot()
    stop_takes_effect: bool = True  # False: `tart stop` returns and the VM stays as it was
    run: FakeRun | None = None
    run_fails: str | None = None  # `tart run` fails at once with this message (exit 1)
    run_suspendable: bool = False
    log: list[str] = field(default_factory=list)
    cpu: int = 4  # what `tart get` reports, and `tart set --cpu` changes
    identity: str = field(default_factory=lambda: f"{next(_IDENTITIES)}:0")  # its directory's


class FakeTart:
    """A Tart adapter (core.ports.TartPort) over a table of VMs, counting every call."""

    def __init__(self) -> None:
        self.vms: dict[str, FakeVm] = {}
        self.calls: list[TartCall] = []
        self.max_in_flight: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._cond = threading.Condition()
        self._gates: dict[tuple[str, str | None], Gate] = {}
        self._pids = itertools.count(4242)
        self.accepting: set[tuple[str, int]] = set()  # guests' ip:port that accept connections

    # --- what the test does -------------------------------------------------------------------

    def add(self, name: str, os: str = "darwin", state: str = "stopped",
            source: str = "local") -> FakeVm:
        vm = self.vms[name] = FakeVm(name, os, state, source)
        return vm

    def hold(self, command: str, name: str | None = None) -> Gate:
        """From now on, hold every call of ``command`` (to VM ``name``, or to any) at its start
        until the gate is opened."""
        gate = self._gates[(command, name)] = Gate()
        return gate

    def count(self, command: str, name: str | None = None) -> int:
        with self._cond:
            return sum(1 for call in self.calls
                       if call.command == command and name in (None, call.name))

    def args(self, command: str) -> list[object]:
        """The argument that tells the calls of ``command`` apart, in the order they came."""
        with self._cond:
            return [call.arg for call in self.calls if call.command == command]

    def callers(self, command: str) -> list[str]:
        """The threads that called ``command``, in the order they did."""
        with self._cond:
            return [call.thread for call in self.calls if call.command == command]

    def calls_by(self, thread: str) -> list[int]:
        """The positions in ``calls`` of the calls made by ``thread``."""
        with self._cond:
            return [i for i, call in enumerate(self.calls) if call.thread == thread]

    def mark(self) -> int:
        """A position in ``calls``: ``wait_calls(..., since=mark)`` counts only later calls."""
        with self._cond:
            return len(self.calls)

    def wait_calls(self, command: str, count: int = 1, since: int = 0,
                   caller: threading.Thread | None = None) -> None:
        """Wait until ``command`` has been called ``count`` times since ``since``; or until
        ``caller`` has ended, so that the test reads how it ended instead of a timeout."""
        def seen() -> bool:
            return sum(1 for call in self.calls[since:] if call.command == command) >= count

        deadline = time.monotonic() + SAFETY
        with self._cond:
            while not seen() and (caller is None or caller.is_alive()):
                assert time.monotonic() < deadline, f"tart {command} was not called {count} time(s)"
                self._cond.wait(0.01)  # wakes at each call; the timeout only to see `caller` end

    def boot(self, name: str) -> None:
        """The VM's run has taken its lock: Tart lists it running from now on."""
        self.vms[name].state = "running"

    def crash(self, name: str, code: int | None, line: str = "") -> None:
        """The VM's ``tart run`` ends with ``code``, its last line ``line``."""
        vm = self.vms[name]
        if line:
            vm.log.append(line)
        vm.state = "stopped"
        assert vm.run is not None, f"{name} has no run to end"
        vm.run.end(code)

    def release_all(self) -> None:
        """After a test: let every held call through and end every run, so no thread lingers."""
        for gate in self._gates.values():
            gate.open()
        for vm in self.vms.values():
            if vm.run is not None:
                vm.run.end(0)

    # --- the calls ------------------------------------------------------------------------------

    def _enter(self, command: str, name: str | None, arg: object = None) -> None:
        with self._cond:
            self.calls.append(TartCall(command, name, arg, threading.current_thread().name))
            self._in_flight[command] += 1
            self.max_in_flight[command] = max(self.max_in_flight[command],
                                              self._in_flight[command])
            self._cond.notify_all()
            gate = self._gates.get((command, name)) or self._gates.get((command, None))
        if gate is not None:
            gate.pass_through()

    def _leave(self, command: str) -> None:
        with self._cond:
            self._in_flight[command] -= 1

    def _vm(self, name: str) -> FakeVm:
        vm = self.vms.get(name)
        if vm is None:
            raise command_error(f'the specified VM "{name}" does not exist', 2)
        return vm

    @property
    def timeout(self) -> float:
        return SAFETY

    def list_vms(self) -> list[dict[str, Any]]:
        # The answer is what Tart saw when the call began, however long it then takes.
        answer = [normalize_vm({"Name": vm.name, "Source": vm.source, "State": vm.state,
                                "Disk": 50, "Size": 20, "Accessed": "2025-01-01T00:00:00Z"})
                  for vm in self.vms.values()]
        self._enter("list", None)
        try:
            return answer
        finally:
            self._leave("list")

    def get(self, name: str) -> dict[str, Any]:
        self._enter("get", name)
        try:
            vm = self._vm(name)
            return parse_vm_info(json.dumps({"OS": vm.os, "CPU": vm.cpu, "Memory": 8192,
                                             "DiskFormat": "raw", "Display": "1024x768"}))
        finally:
            self._leave("get")

    def version(self) -> str:
        return "2.31.0"

    def set(self, name: str, *, cpu: int | None = None, memory_mb: int | None = None,
            disk_gb: int | None = None, display: str | None = None,
            random_mac: bool = False) -> None:
        self._enter("set", name)
        try:
            vm = self._vm(name)
            if cpu is not None:
                vm.cpu = cpu
        finally:
            self._leave("set")

    def delete(self, name: str) -> None:
        self._enter("delete", name)
        try:
            self._vm(name)
            del self.vms[name]
        finally:
            self._leave("delete")

    def run(self, name: str, suspendable: bool) -> FakeRun:
        self._enter("run", name, suspendable)
        try:
            vm = self._vm(name)
            if vm.run is not None and vm.run.alive:  # the adapter's run lock (tart/local.py)
                raise RunStillAlive(f'a tart run the operator launched earlier for VM "{name}" '
                                    "is still alive")
            if vm.run_fails is not None:
                raise command_error(vm.run_fails, 1)
            vm.run = FakeRun(next(self._pids))
            vm.run_suspendable = suspendable
            if vm.boots:
                vm.state = "running"
            return vm.run
        finally:
            self._leave("run")

    def adopt(self, name: str, pid: int) -> FakeRun:
        return FakeRun(pid)

    def stop(self, name: str, timeout: int) -> None:
        self._enter("stop", name, timeout)
        try:
            vm = self._vm(name)
            if vm.state == "stopped":
                raise command_error(f'VM "{name}" is not running', 2)
            if vm.stop_takes_effect:
                vm.state = "stopped"
                if vm.run is not None:
                    vm.run.end(0)
        finally:
            self._leave("stop")

    def suspend(self, name: str) -> None:
        self._enter("suspend", name)
        try:
            vm = self._vm(name)
            if vm.state != "running":
                raise command_error(f'VM "{name}" is not running', 2)
            if not vm.run_suspendable:
                raise command_error(
                    f'failed to suspend VM "{name}": it was not started with --suspendable', 1)
            vm.state = "suspended"
            if vm.run is not None:
                vm.run.end(0)
        finally:
            self._leave("suspend")

    def ip(self, name: str, wait: int) -> str:
        self._enter("ip", name, wait)
        try:
            if self._vm(name).state != "running":
                raise command_error("no IP address found, is your VM running?", 1)
            return "192.168.64.2"
        finally:
            self._leave("ip")

    def connect(self, ip: str, port: int) -> GuestPipe:
        raise GuestRefused(f"a fake guest takes no tunnels ({ip}:{port})")

    def probe(self, ip: str, port: int) -> bool:
        self._enter("probe", None, (ip, port))
        try:
            return (ip, port) in self.accepting
        finally:
            self._leave("probe")

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        vm = self.vms.get(name)
        if vm is None or vm.run is None:
            return None
        data = "".join(f"{line}\n" for line in vm.log).encode()
        return cut_tail(data, len(data), lines)

    def last_log_line(self, name: str) -> str:
        vm = self.vms.get(name)
        return vm.log[-1] if vm is not None and vm.log else ""

    def locate(self) -> tuple[str, bool]:
        return "/opt/fake/tart", True

    def forget_log(self, name: str) -> None:
        del name  # the fake keeps a VM's log with the VM

    def vm_identity(self, name: str) -> str | None:
        vm = self.vms.get(name)
        return None if vm is None or vm.source != "local" else vm.identity


# --- the state store --------------------------------------------------------------------------


class FakeStore:
    """The run records (core.ports.StorePort) in memory, with the real store's rule for
    finishing one: only while the VM's record is still that run's."""

    def __init__(self) -> None:
        self.records: dict[str, RunRecord] = {}
        self._lock = threading.Lock()

    def check_writable(self, name: str) -> None:
        pass  # memory is always writable

    def read_last_run(self, name: str) -> RunRecord | None:
        with self._lock:
            record = self.records.get(name)
            return None if record is None else record.copy()

    def write_last_run(self, name: str, record: RunRecord) -> None:
        with self._lock:
            self.records[name] = record.copy()

    def finish_run(self, name: str, record: RunRecord) -> bool:
        with self._lock:
            current = self.records.get(name)
            if current is not None and (current["pid"], current["started_at"]) != (
                    record["pid"], record["started_at"]):
                return False
            self.records[name] = record.copy()
            return True

    def forget(self, name: str) -> None:
        with self._lock:
            self.records.pop(name, None)

    def unfinished_runs(self) -> list[tuple[str, RunRecord]]:
        with self._lock:
            return [(name, record.copy()) for name, record in sorted(self.records.items())
                    if record["finished_at"] is None]


# --- a service call in a thread of its own -----------------------------------------------------


class Call(threading.Thread):
    """``fn(*args)`` in a thread named ``name``; ``outcome()`` waits for it (bounded) and gives
    what it returned, or raises what it raised."""

    def __init__(self, name: str, fn: Callable[..., Any], *args: Any) -> None:
        super().__init__(name=name, daemon=True)
        self._fn, self._args = fn, args
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._fn(*self._args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test by outcome()
            self.error = exc

    def outcome(self) -> Any:
        self.join(SAFETY)
        assert not self.is_alive(), f"{self.name} is still blocked after {SAFETY} s"
        if self.error is not None:
            raise self.error
        return self.result


def begin(name: str, fn: Callable[..., Any], *args: Any) -> Call:
    call = Call(name, fn, *args)
    call.start()
    return call


class FakeCore:
    """The core over the fakes: a ``VmService`` (and its reconciler) on FakeTart, FakeStore and
    FakeClock, with ``settings``, its specs under ``directory``."""

    def __init__(self, directory: Path, settings: Settings) -> None:
        self.tart = FakeTart()
        self.store = FakeStore()
        self.clock = FakeClock()
        self.specs = SpecStore(directory / "specs", directory)
        self.service = VmService(
            self.tart, self.store, self.clock, OperationQueue(lambda: "2026-01-01T00:00:00.000Z"),
            self.specs, lambda exc: type(exc).__name__, settings)
        self.reconciler = self.service.reconciler

    def status(self, name: str) -> DesiredStatus:
        return self.reconciler.status(name)

    def crash(self, name: str, code: int | None) -> None:
        """End the VM's run and wait (bounded) until the reconciler has seen it end."""
        before = self.status(name)["last_exit"]
        self.tart.crash(name, code)
        deadline = time.monotonic() + SAFETY
        while self.status(name)["last_exit"] == before:
            assert time.monotonic() < deadline, "the reconciler never saw the run end"
            time.sleep(0.001)
