"""The VM operations behind the API: reads through the cache, writes serialised per VM.

This is the imperative middle layer: it owns the locks, the cache and the
``tart run`` processes the operator launched (each reaped by its own thread, so
no zombie is ever left), and it raises ``ApiError`` for every refusal.

One ``tart run`` per VM: while a run the operator launched is alive (also one an earlier
operator process launched, adopted at start-up), a start never launches another; it
answers from that run. ``last_run`` is always the record of that run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from vm_operator.cache import FreshCache
from vm_operator.errors import ApiError, api_error_for, not_found, tart_command_error
from vm_operator.launcher import Launcher, LocalLauncher, RunHandle, RunStillAlive
from vm_operator.state import LogTail, RunRecord, StateDirError, StateStore
from vm_operator.tart import TartCommandError, TartError, TartRunner, parse_ip

VM = dict[str, Any]
MAX_QUEUED_WRITES = 16  # per VM; each write takes a few Tart calls, so more is minutes of waiting
DETAIL_FIELDS = ("os", "cpu", "memory_mb", "disk_format", "display")


def utc_now() -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``: every timestamp of the API and its logs."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def oci_image(name: str, action: str) -> ApiError:
    """Every action that needs a local VM refuses an OCI image the same way."""
    return ApiError(
        409,
        "oci-image",
        "Tart runs only local VMs",
        f'"{name}" is an OCI image: clone it to a local VM first '
        f"(tart clone {name} NEW-NAME), then {action} that",
    )


def not_running(name: str, detail: str = "") -> ApiError:
    return ApiError(409, "not-running", "The VM is not running",
                    f'VM "{name}" is not running' + (f": {detail}" if detail else ""))


NOT_SUSPENDABLE_TITLE = "The VM was not started suspendable"
HOW_TO_SUSPEND = ("stop it (POST /vms/{name}/stop), then start it with "
                  "POST /vms/{name}/start?suspendable=true")
TART_NOT_SUSPENDABLE = "not started with --suspendable"  # the end of Tart's refusal


def not_suspendable(name: str, tart_message: str = "") -> ApiError:
    said = f" (Tart: {tart_message})" if tart_message else ""
    return ApiError(409, "not-suspendable", NOT_SUSPENDABLE_TITLE,
                    f'VM "{name}" was not started with ?suspendable=true, so it cannot be '
                    f"suspended{said}: {HOW_TO_SUSPEND}")


@dataclass
class _Run:
    """A ``tart run`` this operator launched, until its reaper has collected it."""

    proc: RunHandle
    record: RunRecord
    exited: threading.Event = field(default_factory=threading.Event)
    exit_code: int | None = None


def finished_record(record: RunRecord, code: int | None, error: str | None,
                    now: str) -> RunRecord:
    """The record of a run that has ended with ``code`` (None: ended, exit code unknown)."""
    done = record.copy()
    done["finished_at"] = now
    done["exit_code"] = code
    done["exit_code_known"] = code is not None
    done["error"] = error if code is not None else None
    return done


def state_dir_problem(exc: StateDirError) -> ApiError:
    return ApiError(
        503, "state-dir-unwritable", "The state directory cannot be written",
        f"{exc}. Make {exc.root} a directory the operator can write (VM_OPERATOR_STATE_DIR / "
        "--state-dir)", state_dir=str(exc.root),
    )


class FifoLock:
    """A lock that serves waiters in arrival order, with a bounded queue.

    ``threading.Lock`` is not fair: under load one client's stop could wait behind an
    endless stream of later starts. Writes to a VM queue up first come, first served,
    and past ``max_waiting`` a new one is turned away at once instead of waiting minutes.
    """

    def __init__(self, max_waiting: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next_ticket = 0
        self._serving = 0
        self._max_waiting = max_waiting

    def acquire(self) -> bool:
        """Wait for our turn; False (without waiting) when the queue is full."""
        with self._cond:
            if self._next_ticket - self._serving > self._max_waiting:
                return False
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()
            return True

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """How many callers are queued behind the holder (what the bound counts)."""
        with self._cond:
            return max(0, self._next_ticket - self._serving - 1)


class VmService:
    """List, inspect, start, stop and suspend VMs through one TartRunner."""

    def __init__(
        self,
        runner: TartRunner,
        store: StateStore,
        *,
        cache_ttl: float = 1.0,
        start_timeout: float = 30.0,
        poll_interval: float = 0.02,
        max_running: int = 2,
        clock: Callable[[], float] = time.monotonic,
        launcher: Launcher | None = None,
    ) -> None:
        self.runner = runner
        self.store = store
        self.launcher = launcher if launcher is not None else LocalLauncher(runner, store)
        self.cache_ttl = cache_ttl
        self.start_timeout = start_timeout
        self.poll_interval = poll_interval
        self.max_running = max_running
        self._clock = clock
        self._changed_at = float("-inf")
        self._guard = threading.Lock()
        self._vm_locks: dict[str, FifoLock] = {}
        self._starting: set[str] = set()
        self._runs: dict[str, _Run] = {}
        self._list = FreshCache(runner.list_vms, clock)
        self._info: dict[str, FreshCache[dict[str, Any]]] = {}
        self._version: str | None = None
        self._version_refresh = threading.Lock()

    # --- reads ----------------------------------------------------------------

    def _not_before(self, fresh: bool) -> float:
        """The oldest fetch start a read may use: after every change made through the API,
        and within ``cache_ttl`` of now for changes made outside it."""
        now = self._clock()
        return now if fresh else max(self._changed_at, now - self.cache_ttl)

    def _refresh_after(self, fresh: bool) -> float | None:
        """Past half its freshness window a cached answer is still served, and refreshed ahead."""
        return None if fresh else self._clock() - self.cache_ttl / 2

    def _changed(self) -> None:
        self._changed_at = self._clock()

    def list_vms(self, fresh: bool = False) -> list[VM]:
        if self.cache_ttl <= 0:  # the naive design, kept for the benchmark's comparison
            return self.runner.list_vms()
        return self._list.get(self._not_before(fresh), self._refresh_after(fresh))

    def cached_vms(self) -> list[VM] | None:
        """The last listing, however old, without calling Tart: for metrics."""
        return self._list.peek()

    def find(self, name: str, fresh: bool = False) -> VM:
        for vm in self.list_vms(fresh):
            if vm["name"] == name:
                return vm
        raise not_found(name)

    def _vm_info(self, name: str) -> dict[str, Any]:
        if self.cache_ttl <= 0:
            return self.runner.get_vm(name)
        with self._guard:
            cache = self._info.get(name)
            if cache is None:
                cache = self._info[name] = FreshCache(lambda: self.runner.get_vm(name), self._clock)
        return cache.get(self._not_before(False), self._refresh_after(False))

    def describe(self, name: str) -> VM:
        """The list fields, ``tart get``'s fields (local VMs only) and the last run."""
        vm = self.find(name)
        info = dict.fromkeys(DETAIL_FIELDS)
        if vm["source"] == "local":
            info.update(self._vm_info(name))
        try:
            last_run = self.store.read_last_run(name)
        except StateDirError as exc:
            raise state_dir_problem(exc) from None
        return {**vm, **info, "last_run": last_run}

    def local_vm(self, name: str, action: str, fresh: bool = False) -> VM:
        """The VM, or the same 409 for an OCI image on every action that needs a local VM."""
        vm = self.find(name, fresh)
        if vm["source"] != "local":
            raise oci_image(name, action)
        return vm

    def logs(self, name: str, lines: int | None = None) -> LogTail:
        """The end of the current run's log: all of it up to the size limit, or its last
        ``lines`` lines; always starting at a line boundary (state.cut_tail)."""
        try:
            tail = self.launcher.tail_log(name, lines)
        except StateDirError as exc:
            raise state_dir_problem(exc) from None
        if tail is None:
            self._no_logs(name)
        return tail

    def _no_logs(self, name: str) -> NoReturn:
        """No run log: 409 for an OCI image, like every action on one, else 404. Tart is asked
        only to tell an image apart; when it cannot tell, "no run log" is still true."""
        try:
            vm = self.find(name)
        except (ApiError, TartError):
            vm = None
        if vm is not None and vm["source"] != "local":
            raise oci_image(name, "read the logs of")
        raise ApiError(
            404, "no-logs", "No logs", f'the operator has not started VM "{name}" (no run log)'
        )

    def ip(self, name: str, wait: int) -> str:
        """``tart ip --wait W``, only for a running VM: Tart would wait the whole W seconds
        for a stopped one. With a wait the state is checked fresh, as that wait is long."""
        vm = self.local_vm(name, "ask for the IP address of", fresh=wait > 0)
        if vm["state"] != "running":
            raise not_running(name, f"it is {vm['state']} and has no IP address; start it first")
        output = self.runner.run(["ip", "--wait", str(wait), name], wait + self.runner.timeout)
        return parse_ip(output)

    # --- Tart's own health ----------------------------------------------------------

    def tart_status(self) -> dict[str, Any]:
        """Path, availability and version of Tart without ever blocking on it.

        Health probes must answer even when Tart hangs, so the version is fetched by a
        background thread and this only reads what it found.
        """
        path, available = self.runner.locate()
        if available and self._version is None:
            self._refresh_version()
        return {"path": path, "available": available, "version": self._version}

    def _refresh_version(self) -> None:
        if not self._version_refresh.acquire(blocking=False):
            return

        def refresh() -> None:
            try:
                self._version = self.runner.version()
            except TartError:
                pass
            finally:
                self._version_refresh.release()

        threading.Thread(target=refresh, name="tart-version", daemon=True).start()

    # --- writes -------------------------------------------------------------------

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        """Serialise every write to one VM: two starts launch one ``tart run``."""
        with self._guard:
            lock = self._vm_locks.setdefault(name, FifoLock(MAX_QUEUED_WRITES))
        if not lock.acquire():
            raise ApiError(
                503, "vm-busy", "Too many pending changes to this VM",
                f"more than {MAX_QUEUED_WRITES} start/stop/suspend requests for {name!r} are "
                "already waiting; retry shortly", (("Retry-After", "1"),),
            )
        try:
            yield
        finally:
            lock.release()

    def start(self, name: str, suspendable: bool = False) -> tuple[int, VM]:
        with self._locked(name):
            vm = self.find(name, fresh=True)
            if vm["source"] != "local":
                raise ApiError(
                    409,
                    "oci-image",
                    "Tart runs only local VMs",
                    f'"{name}" is an OCI image: clone it to a local VM first '
                    f"(tart clone {name} NEW-NAME), then start that",
                )
            if vm["state"] == "running":
                if suspendable and self._run_suspendable(name) is False:
                    raise ApiError(
                        409, "not-suspendable", NOT_SUSPENDABLE_TITLE,
                        f'VM "{name}" already runs, started without ?suspendable=true; a running '
                        f"VM cannot become suspendable, it must be stopped first: {HOW_TO_SUSPEND}",
                    )
                return 200, {**vm, "changed": False}
            pending = self._live_run(name)
            if pending is not None:  # launched, not running yet: never launch a second one
                try:
                    vm = self._confirm_running(name, pending)
                finally:
                    self._changed()
                return 202, {**vm, "changed": True}
            self._reserve_slot(name, self.list_vms())
            try:
                run = self._launch(name, suspendable)
                try:
                    vm = self._confirm_running(name, run)
                finally:
                    self._changed()
            finally:
                with self._guard:
                    self._starting.discard(name)
            return 202, {**vm, "changed": True}

    def _live_run(self, name: str) -> _Run | None:
        """The ``tart run`` this operator launched (or adopted) for ``name``, while it lives."""
        with self._guard:
            run = self._runs.get(name)
        return run if run is not None and not run.exited.is_set() else None

    def _is_macos(self, name: str) -> bool:
        return self._vm_info(name).get("os") == "darwin"

    def _launched_macos(self, name: str) -> set[str]:
        """Other macOS VMs whose ``tart run`` (ours) lives but is not listed running yet."""
        with self._guard:
            launched = [other for other in self._runs if other != name]
        found = set()
        for other in launched:
            try:
                if self._is_macos(other):
                    found.add(other)
            except TartError:  # deleted meanwhile: it holds no slot
                pass
        return found

    def _reserve_slot(self, name: str, vms: list[VM]) -> None:
        """Refuse a start that would exceed the cap on running macOS guests, before Tart is asked.

        Apple's licence (and Virtualization.framework) allows two macOS guests per host;
        Linux guests do not count.
        """
        if self.max_running <= 0 or not self._is_macos(name):
            return
        running = {
            vm["name"]
            for vm in vms
            if vm["state"] == "running" and vm["source"] == "local" and self._is_macos(vm["name"])
        } | self._launched_macos(name)
        with self._guard:
            busy = running | self._starting
            if len(busy) >= self.max_running:
                raise ApiError(
                    409,
                    "vm-limit",
                    "Too many VMs are running",
                    f"at most {self.max_running} macOS VMs may run at once "
                    f"(VM_OPERATOR_MAX_RUNNING, Apple's licence limit); running or starting: "
                    f"{', '.join(sorted(busy))}",
                    limit=self.max_running,
                )
            self._starting.add(name)

    def _launch(self, name: str, suspendable: bool) -> _Run:
        args = ["run", "--no-graphics", *(["--suspendable"] if suspendable else []), name]
        try:
            self.store.check_writable(name)  # before launching: a run must never go unrecorded
            proc = self.launcher.launch(name, args)
        except StateDirError as exc:
            raise state_dir_problem(exc) from None
        except RunStillAlive as exc:
            raise ApiError(409, "already-running", "The VM is already running",
                           f"{exc}; it has not reported the VM running yet") from None
        except TartError as exc:
            raise api_error_for(exc) from None
        record: RunRecord = {
            "started_at": utc_now(),
            "pid": proc.pid,
            "suspendable": suspendable,
            "finished_at": None,
            "exit_code": None,
            "exit_code_known": False,
            "error": None,
        }
        return self._watch(name, _Run(proc, record), write=True)

    def _watch(self, name: str, run: _Run, write: bool) -> _Run:
        """Own ``run`` from now on: it is the VM's run, and a thread reaps it."""
        with self._guard:
            self._runs[name] = run
        if write:
            try:
                self.store.write_last_run(name, run.record)
            except StateDirError:
                pass  # checked just before; the record is kept in memory regardless
        threading.Thread(target=self._reap, args=(name, run), name=f"reap-{run.proc.pid}",
                         daemon=True).start()
        return run

    def adopt_earlier_runs(self) -> int:
        """Watch the runs an earlier operator process launched and never saw end, so that
        their records are finished when they end (at once when they already have). Returns
        how many it found."""
        found = 0
        for name, record in self.store.unfinished_runs():
            if self._live_run(name) is None:
                self._watch(name, _Run(self.launcher.adopt(name, record), record), write=False)
                found += 1
        return found

    def _reap(self, name: str, run: _Run) -> None:
        """Wait for ``tart run`` to end (so it never lingers as a zombie) and record how."""
        code = run.proc.wait()
        error = None
        if code is not None and code != 0:
            error = self.launcher.last_log_line(name) or f"tart run exited with code {code}"
        run.exit_code = code
        with self._guard:
            if self._runs.get(name) is run:
                del self._runs[name]  # from now on a start launches a new run
        try:  # unless that new run's record is already there
            self.store.finish_run(name, finished_record(run.record, code, error, utc_now()))
        except StateDirError:
            pass  # kept in memory: the API still shows how the run ended
        self._changed()
        run.exited.set()  # after the record: whoever waits on it reads the finished record

    def _confirm_running(self, name: str, run: _Run) -> VM:
        """Wait until Tart lists the VM as running, or ``tart run`` exits and says why."""
        deadline = self._clock() + self.start_timeout
        while True:
            if run.exited.is_set():
                code = run.exit_code
                message = self.launcher.last_log_line(name) or f"tart run exited with code {code}"
                if code is None:
                    raise ApiError(502, "tart-failed", "Tart failed",
                                   f"tart run ended before Tart reported {name!r} running "
                                   f"(exit code unknown): {message}")
                if code == 0:
                    raise ApiError(502, "tart-failed", "Tart failed", f"tart run ended at once: {message}")
                raise tart_command_error(message, code)
            vm = self.find(name, fresh=True)
            if vm["state"] == "running" and not run.exited.is_set():
                return vm  # listed running while our own tart run still lives
            if run.exited.is_set():
                continue  # it ended while we listed: report how
            if self._clock() >= deadline:
                raise ApiError(
                    504,
                    "start-timeout",
                    "The VM did not start in time",
                    f"tart run did not report {name!r} running within {self.start_timeout:g} s; "
                    "it was left running (another start waits for this same run; it never "
                    "launches a second one), see GET /vms/{name}/logs",
                )
            run.exited.wait(self.poll_interval)

    def stop(self, name: str, timeout: int) -> tuple[int, VM]:
        with self._locked(name):
            vm = self.local_vm(name, "stop", fresh=True)
            if vm["state"] == "stopped":
                return 200, {**vm, "changed": False}
            try:
                self.runner.run(["stop", "--timeout", str(timeout), name], timeout + self.runner.timeout)
            except TartCommandError as exc:
                if "is not running" not in exc.message:  # it stopped on its own meanwhile
                    raise
            finally:
                self._changed()
            self._await_reaped(name)
            return 200, {**self.find(name, fresh=True), "changed": True}

    def _await_reaped(self, name: str, seconds: float = 2.0) -> None:
        """Give our own ``tart run`` a moment to exit, so ``last_run`` is complete."""
        with self._guard:
            run = self._runs.get(name)
        if run is not None:
            run.exited.wait(seconds)

    def _run_suspendable(self, name: str) -> bool | None:
        """Whether the VM's current run was started ``--suspendable``, from the record of a
        ``tart run`` this operator launched and still supervises; None when it cannot tell
        (started outside the API or by an earlier operator process)."""
        with self._guard:
            run = self._runs.get(name)
        if run is None or run.exited.is_set():
            return None
        return bool(run.record["suspendable"])

    def suspend(self, name: str) -> tuple[int, VM]:
        with self._locked(name):
            vm = self.local_vm(name, "suspend", fresh=True)
            if vm["state"] == "suspended":
                return 200, {**vm, "changed": False}
            if vm["state"] != "running":
                raise not_running(name, "only a running VM can be suspended")
            if self._run_suspendable(name) is False:
                # Tart is not asked: a snapshot of a VM run without --suspendable fails
                # and ends that run
                raise not_suspendable(name)
            try:
                self.runner.run(["suspend", name])
            except TartCommandError as exc:
                if TART_NOT_SUSPENDABLE in exc.message:
                    raise not_suspendable(name, exc.message) from None
                raise
            finally:
                self._changed()
            self._await_reaped(name)
            return 200, {**self.find(name, fresh=True), "changed": True}

    def running_runs(self) -> int:
        """How many ``tart run`` processes this operator launched are still alive."""
        with self._guard:
            return len(self._runs)
