"""The run supervisor: the ``tart run`` processes the operator launched.

``tart run`` blocks for the VM's whole life. Each one the operator launches (or adopts: one
an earlier operator process launched) is watched by a reaper thread of its own, so no zombie
is ever left, and the VM's ``last_run`` record is finished when it ends. A start is confirmed
when Tart lists the VM running while that run still lives, or answered with Tart's message
when the run ends first.

One ``tart run`` per VM: while a run the operator launched is alive, a start never launches
another; it answers from that run. ``last_run`` is always the record of that run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from vm_operator.core.clock import Clock
from vm_operator.core.errors import (
    AlreadyRunning,
    NoLogs,
    OperatorError,
    RunEnded,
    StartTimeout,
    oci_image,
    state_dir_unwritable,
)
from vm_operator.core.inventory import Inventory
from vm_operator.core.ports import StorePort, TartPort
from vm_operator.store.state import LogTail, RunRecord, StateDirError
from vm_operator.tart.errors import RunStillAlive, TartError, command_error
from vm_operator.tart.names import VmName
from vm_operator.tart.records import Vm
from vm_operator.tart.transport import RunHandle

log = logging.getLogger(__name__)


@dataclass
class Run:
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


@dataclass(eq=False)
class RunSupervisor:
    """Launches, watches, reaps and confirms the ``tart run`` of each VM."""

    tart: TartPort
    store: StorePort
    clock: Clock
    inventory: Inventory
    start_timeout: float
    poll_interval: float
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _runs: dict[str, Run] = field(default_factory=dict, init=False, repr=False)
    _ended: list[Callable[[str], None]] = field(default_factory=list, init=False, repr=False)
    # runs reaped whose listeners have not all returned
    _ending: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def on_run_ended(self, listener: Callable[[str], None]) -> None:
        """``listener(name)`` is called (on the reaper's thread) once a run of ``name`` has
        ended and its record is finished: runs launched here and adopted ones alike."""
        self._ended.append(listener)

    def live_run(self, name: str) -> Run | None:
        """The ``tart run`` this operator launched (or adopted) for ``name``, while it lives."""
        with self._guard:
            run = self._runs.get(name)
        return run if run is not None and not run.exited.is_set() else None

    def watching(self, name: str) -> bool:
        """Whether a run of ``name`` that the operator launched (or adopted) lives, or has
        ended and its listeners are still being told: its end is the supervisor's to tell."""
        with self._guard:
            return name in self._runs or name in self._ending

    def supervised(self, but: str) -> list[str]:
        """The VMs (``but`` aside) whose ``tart run`` this operator watches."""
        with self._guard:
            return [other for other in self._runs if other != but]

    def running_runs(self) -> int:
        """How many ``tart run`` processes this operator launched are still alive."""
        with self._guard:
            return len(self._runs)

    def suspendable(self, name: str) -> bool | None:
        """Whether the VM's current run was started ``--suspendable``, from the record of a
        ``tart run`` this operator launched and still supervises; None when it cannot tell
        (started outside the API or by an earlier operator process)."""
        run = self.live_run(name)
        return None if run is None else bool(run.record["suspendable"])

    def launch(self, name: VmName, suspendable: bool) -> Run:
        """Start ``tart run`` for ``name`` and watch it; its record is written first."""
        try:
            self.store.check_writable(name)  # before launching: a run must never go unrecorded
            proc = self.tart.run(name, suspendable)
        except StateDirError as exc:
            raise state_dir_unwritable(exc) from None
        except RunStillAlive as exc:
            raise AlreadyRunning(f"{exc}; it has not reported the VM running yet") from None
        record: RunRecord = {
            "started_at": self.clock.utc_now(),
            "pid": proc.pid,
            "suspendable": suspendable,
            "finished_at": None,
            "exit_code": None,
            "exit_code_known": False,
            "error": None,
        }
        return self._watch(name, Run(proc, record), write=True)

    def _watch(self, name: str, run: Run, write: bool) -> Run:
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
            if self.live_run(name) is None:
                self._watch(name, Run(self.tart.adopt(name, record["pid"]), record), write=False)
                found += 1
        return found

    def _reap(self, name: str, run: Run) -> None:
        """Wait for ``tart run`` to end (so it never lingers as a zombie) and record how."""
        code = run.proc.wait()
        error = None
        if code is not None and code != 0:
            error = self.tart.last_log_line(name) or f"tart run exited with code {code}"
        run.exit_code = code
        with self._guard:
            if self._runs.get(name) is run:
                del self._runs[name]  # from now on a start launches a new run
            self._ending[name] = self._ending.get(name, 0) + 1
        try:
            self._finish(name, run, code, error)
        finally:
            with self._guard:
                self._ending[name] -= 1
                if not self._ending[name]:
                    del self._ending[name]

    def _finish(self, name: str, run: Run, code: int | None, error: str | None) -> None:
        """The run has ended: its record, then the listeners."""
        try:  # unless that new run's record is already there
            self.store.finish_run(name, finished_record(run.record, code, error,
                                                        self.clock.utc_now()))
        except StateDirError:
            pass  # kept in memory: the API still shows how the run ended
        self.inventory.changed()
        run.exited.set()  # after the record: whoever waits on it reads the finished record
        for listener in list(self._ended):
            try:
                listener(name)
            except Exception:  # one listener must not stop the others, nor kill the reaper
                log.exception("run of %r ended: a listener failed", name)

    def confirm_running(self, name: str, run: Run) -> Vm:
        """Wait until Tart lists the VM as running, or ``tart run`` exits and says why."""
        deadline = self.clock.monotonic() + self.start_timeout
        while True:
            if run.exited.is_set():
                self._ended_before_running(name, run)
            vm = self.inventory.find(name, fresh=True)
            if vm["state"] == "running" and not run.exited.is_set():
                return vm  # listed running while our own tart run still lives
            if run.exited.is_set():
                continue  # it ended while we listed: report how
            if self.clock.monotonic() >= deadline:
                raise StartTimeout(
                    f"tart run did not report {name!r} running within {self.start_timeout:g} s; "
                    "it was left running (another start waits for this same run; it never "
                    "launches a second one), see GET /vms/{name}/logs"
                )
            run.exited.wait(self.poll_interval)

    def _ended_before_running(self, name: str, run: Run) -> NoReturn:
        """How the run ended: Tart's refusal (its last line, classified by the adapter), or
        an end without one."""
        code = run.exit_code
        message = self.tart.last_log_line(name) or f"tart run exited with code {code}"
        if code is None:
            raise RunEnded(f"tart run ended before Tart reported {name!r} running "
                           f"(exit code unknown): {message}")
        if code == 0:
            raise RunEnded(f"tart run ended at once: {message}")
        raise command_error(message, code)

    def await_reaped(self, name: str, seconds: float = 2.0) -> None:
        """Give our own ``tart run`` a moment to exit, so ``last_run`` is complete."""
        with self._guard:
            run = self._runs.get(name)
        if run is not None:
            run.exited.wait(seconds)

    # --- the run log ------------------------------------------------------------------------

    def logs(self, name: str, lines: int | None = None) -> LogTail:
        """The end of the current run's log: all of it up to the size limit, or its last
        ``lines`` lines; always starting at a line boundary (state.cut_tail)."""
        try:
            tail = self.tart.tail_log(name, lines)
        except StateDirError as exc:
            raise state_dir_unwritable(exc) from None
        if tail is None:
            self._no_logs(name)
        return tail

    def _no_logs(self, name: str) -> NoReturn:
        """No run log: OciImage for an OCI image, like every action on one, else NoLogs. Tart
        is asked only to tell an image apart; when it cannot tell, "no run log" is still true."""
        try:
            vm: Vm | None = self.inventory.find(name)
        except (OperatorError, TartError):
            vm = None
        if vm is not None and vm["source"] != "local":
            raise oci_image(name, "read the logs of")
        raise NoLogs(f'the operator has not started VM "{name}" (no run log)')
