"""The seam between ``VmService`` and wherever ``tart run`` actually runs.

``tart run`` blocks for the VM's whole life, so the service needs a few things from
whoever starts it: a handle to wait on (to reap it and learn its exit code), the run's
output (for ``GET /vms/{name}/logs`` and for Tart's message when it fails), and, after an
operator restart, a handle on a run an earlier operator process launched (``adopt``), so
that its record is finished when it ends. ``LocalLauncher`` is what the operator always
did: a detached child process whose output goes to the run log in the state directory.
``transport.SshLauncher`` does the same on a Mac reached over SSH.

How a restarted operator knows that a local run still lives: every ``tart run`` it
launches inherits a descriptor of the VM's ``run.lock`` file with an ``flock`` on it, and
the operator closes its own copy at once. The lock is then held exactly as long as that
``tart run`` lives (whoever its parent is by then), which, unlike a PID, cannot be mistaken
for an unrelated process that got the same number, even in a restarted container.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vm_operator.state import LogTail, RunRecord, StateStore
from vm_operator.tart import TartError, TartRunner

ADOPTED_POLL = 0.2  # seconds between two looks at the lock of a run an earlier operator launched


class RunHandle(Protocol):
    """A started ``tart run``: ``subprocess.Popen`` is one."""

    @property
    def pid(self) -> int: ...

    def wait(self) -> int | None:
        """Block until ``tart run`` has ended; its exit code (negative: killed by that
        signal), None when it ended but its exit code cannot be known."""
        ...


class RunStillAlive(TartError):
    """A ``tart run`` launched earlier for this VM still lives: do not launch another."""


class Launcher(Protocol):
    def launch(self, name: str, args: Sequence[str]) -> RunHandle:
        """Start ``tart ARGS`` detached for VM ``name``; raise a TartError when it cannot start."""
        ...

    def adopt(self, name: str, record: RunRecord) -> RunHandle:
        """A handle on a run an earlier operator process launched (described by ``record``)."""
        ...

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        """The end of the current run's output (state.cut_tail), None when there is none."""
        ...

    def read_log(self, name: str) -> bytes | None:
        """The output of the last run of ``name`` (its tail when huge), None when there is none."""
        ...

    def last_log_line(self, name: str) -> str:
        """The last non-empty line of that output ("" when there is none): Tart's message."""
        ...


def _lock_free(path: Path) -> bool | None:
    """Whether nobody holds the flock on ``path``; None when the file does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # releases our lock, if we got it
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class AdoptedRun:
    """A local ``tart run`` an earlier operator process launched: it has ended once its run
    lock is free. A record written before run locks existed has none: then its PID is all
    there is to go by. The exit code of a process that is not our child is unknowable."""

    lock: Path
    pid: int
    poll: float = ADOPTED_POLL

    def ended(self) -> bool:
        free = _lock_free(self.lock)
        return not _pid_alive(self.pid) if free is None else free

    def wait(self) -> int | None:
        while not self.ended():
            time.sleep(self.poll)
        return None


@dataclass
class LocalLauncher:
    """``tart run`` as a child process of the operator, its output in the state directory."""

    runner: TartRunner
    store: StateStore

    def launch(self, name: str, args: Sequence[str]) -> RunHandle:
        lock = self.store.open_run_lock(name)
        try:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunStillAlive(
                    f'a tart run the operator launched earlier for VM "{name}" is still alive'
                ) from None
            # Only after the lock: an earlier run that still lives keeps writing its log.
            log = self.store.prepare_log(name)
            return self.runner.launch(args, log, keep_fds=(lock,))
        finally:
            os.close(lock)  # from now on only the child holds the lock

    def adopt(self, name: str, record: RunRecord) -> RunHandle:
        return AdoptedRun(self.store.run_lock_path(name), record["pid"])

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        return self.store.tail_log(name, lines)

    def read_log(self, name: str) -> bytes | None:
        return self.store.read_log(name)

    def last_log_line(self, name: str) -> str:
        return self.store.last_log_line(name)
