"""Tart on this machine: child processes of the operator.

``run_captured`` is the one place that spawns a short Tart call (the SSH transport uses it
too, for ``ssh``): an argument list, never a shell; a timeout, on whose expiry the whole
process group is killed; output captured. ``LocalTransport`` adds the detached ``tart run``,
whose output goes to the run log in the state directory.

How a restarted operator knows that a local run still lives: every ``tart run`` it
launches inherits a descriptor of the VM's ``run.lock`` file with an ``flock`` on it, and
the operator closes its own copy at once. The lock is then held exactly as long as that
``tart run`` lives (whoever its parent is by then), which, unlike a PID, cannot be mistaken
for an unrelated process that got the same number, even in a restarted container.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vm_operator.store.state import LogTail, StateStore
from vm_operator.tart.errors import (
    RunStillAlive,
    TartCommandError,
    TartError,
    TartTimeout,
    binary_unavailable,
    command_error,
)
from vm_operator.tart.exec_stream import ExecStream
from vm_operator.tart.guest_exec import run_exec
from vm_operator.tart.home import local_tart_home
from vm_operator.tart.identity import (
    IDENTITY_MISSING,
    IDENTITY_SCRIPT,
    identity_of_stat,
    parse_identity,
)
from vm_operator.tart.parse import error_message
from vm_operator.tart.probe import connects
from vm_operator.tart.records import ExecResult, HostDisk
from vm_operator.tart.streaming import run_streaming
from vm_operator.tart.transport import (
    Observer,
    OutputSink,
    RunHandle,
    StartedSink,
    no_observer,
    observed,
)
from vm_operator.tart.tunnel import GuestPipe, open_socket

GUARD = Path(__file__).with_name("guard.py")  # runs a long Tart call, kills it if we die
ADOPTED_POLL = 0.2  # seconds between two looks at the lock of a run an earlier operator launched


def run_captured(argv: Sequence[str], env: Mapping[str, str], timeout: float, label: str) -> str:
    """Run ``argv`` (``argv[0]`` is the binary), return stdout; raise a TartError on every
    kind of failure. ``label`` names the call in messages: ``'tart LABEL'``."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            text=True,
            errors="replace",
            start_new_session=True,  # so a timeout can kill Tart and anything it spawned
        )
    except OSError as exc:
        raise binary_unavailable(argv[0], exc) from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise TartTimeout(f"'tart {label}' did not finish within {timeout:g} s") from None
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode < 0:
        raise command_error(f"'tart {label}' was killed by signal {-proc.returncode}",
                            proc.returncode)
    if proc.returncode != 0:
        raise command_error(error_message(stderr, proc.returncode), proc.returncode)
    return stdout


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the whole process group, then reap, so a timed-out call leaves nothing behind."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=2)


@dataclass
class LocalTransport:
    """Tart as a child process of the operator; ``tart run``'s output in the state directory."""

    binary: str
    store: StateStore
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    timeout: float = 10.0
    observe: Observer = no_observer
    _located: tuple[float, str, bool] | None = field(default=None, init=False, repr=False,
                                                    compare=False)

    def call(self, args: Sequence[str], timeout: float | None = None) -> str:
        label = args[0] if args else ""
        with observed(self.observe, label):
            return run_captured([self.binary, *args], self.env,
                                self.timeout if timeout is None else timeout, label)

    def exec(self, args: Sequence[str], stdin: bytes | None, timeout: float) -> ExecResult:
        """Through ``guard.py`` as a stream, so that Tart and the guest command die with the
        operator; its stdin the first bytes on the guard's."""
        with observed(self.observe, args[0] if args else ""):
            size = [] if stdin is None else ["--stdin", str(len(stdin))]
            argv = [sys.executable, "-I", "-S", str(GUARD), *size, self._runnable(), *args]
            return run_exec(argv, self.env, stdin, timeout, hold_stdin=True)

    def exec_stream(self, args: Sequence[str], tty: bool, rows: int, cols: int) -> ExecStream:
        """Tart started here, in its own process group (killed when the exec ends)."""
        with observed(self.observe, args[0] if args else ""):
            return ExecStream([self._runnable(), *args], self.env, tty, rows, cols)

    def probe(self, ip: str, port: int, timeout: float) -> bool:
        """Tart runs here: so do its guests' networks, and the probe."""
        return connects(ip, port, timeout)

    def connect(self, ip: str, port: int) -> GuestPipe:
        """A tunnel's connection to a guest, made here (its network is this machine's)."""
        return open_socket(ip, port)

    def stream(self, args: Sequence[str], on_output: OutputSink, on_started: StartedSink,
               timeout: float) -> None:
        """Through ``guard.py``, so that Tart dies with the operator (a SIGKILL included)."""
        label = args[0] if args else ""
        with observed(self.observe, label):
            path = self._runnable()
            argv = [sys.executable, "-I", "-S", str(GUARD), path, *args]
            run_streaming(argv, self.env, timeout, label, on_output, on_started,
                          hold_stdin=True)

    def _runnable(self) -> str:
        """The Tart binary's path, or TartUnavailable (the guard would only say exit 127)."""
        path = shutil.which(self.binary, path=self.env.get("PATH")) or self.binary
        if not os.path.isfile(path):
            raise binary_unavailable(self.binary, FileNotFoundError())
        if not os.access(path, os.X_OK):
            raise binary_unavailable(self.binary, PermissionError())
        return path

    def forget_log(self, name: str) -> None:
        """Here the run logs live in the state directory: ``StateStore.forget`` removes them."""
        del name

    def vm_identity(self, name: str) -> str | None:
        """A ``stat`` here where it reports birth times (macOS: no process per look), else the
        same fixed script as over SSH: one answer, whichever stat this host has."""
        try:
            found = os.stat(self.tart_home() / "vms" / name)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            found = None  # the script says why
        if found is not None and (known := identity_of_stat(found)) is not None:
            return known
        argv = ["/bin/sh", "-c", IDENTITY_SCRIPT, "vm-operator", name]
        try:
            return parse_identity(run_captured(argv, self.env, self.timeout, "identity"))
        except TartCommandError as exc:
            if exc.exit_code == IDENTITY_MISSING:
                return None
            raise

    def tart_home(self) -> Path:
        """``$TART_HOME`` as Tart reads it, else ``~/.tart``."""
        return local_tart_home(self.env)

    def disk_usage(self) -> HostDisk:
        home = self.tart_home()
        measured = home
        while not measured.is_dir() and measured.parent != measured:
            measured = measured.parent  # not created yet: the disk it will be created on
        try:
            usage = shutil.disk_usage(measured)
        except OSError as exc:
            raise TartError(f"cannot read the disk space of the Tart home {home}: "
                            f"{exc.strerror or exc}") from None
        return HostDisk(path=str(home), total_bytes=usage.total, free_bytes=usage.free)

    def launch(self, name: str, args: Sequence[str]) -> RunHandle:
        """Start ``tart ARGS`` detached, holding the VM's run lock, its output to the run log.

        A new session keeps Ctrl-C on the operator's terminal away from the VM, so VMs
        outlive the operator as Tart users expect of a VM they started.
        """
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
            with observed(self.observe, args[0] if args else ""):
                return self._spawn(args, log, lock)
        finally:
            os.close(lock)  # from now on only the child holds the lock

    def _spawn(self, args: Sequence[str], log_path: str, lock: int) -> subprocess.Popen[bytes]:
        try:
            with open(log_path, "ab") as log:
                return subprocess.Popen(
                    [self.binary, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(self.env),
                    start_new_session=True,
                    pass_fds=(lock,),
                )
        except OSError as exc:
            raise binary_unavailable(self.binary, exc) from None

    def adopt(self, name: str, pid: int) -> RunHandle:
        return AdoptedRun(self.store.run_lock_path(name), pid)

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        return self.store.tail_log(name, lines)

    def last_log_line(self, name: str) -> str:
        return self.store.last_log_line(name)

    def locate(self) -> tuple[str, bool]:
        """Looked up at most once a second: a probe per request must not cost three stat calls."""
        now = time.monotonic()
        found = self._located
        if found is not None and now - found[0] < 1.0:
            return found[1], found[2]
        path = shutil.which(self.binary) or self.binary
        available = os.path.isfile(path) and os.access(path, os.X_OK)
        self._located = (now, path, available)
        return path, available


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
