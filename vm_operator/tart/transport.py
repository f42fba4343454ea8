"""Where Tart runs: the one interface of the local and the SSH transport.

A transport runs ``tart ARGS`` and returns what it printed (``call``), runs a long Tart call
(a clone, a pull) handing over its output as it comes and a way to kill it (``stream``), starts
the long-lived ``tart run`` detached (``launch``) and keeps its output, the run log
(``tail_log``, ``last_log_line``), and measures the disk of the Tart home (``disk_usage``). It
never builds Tart's arguments: ``commands.Tart`` does, and hands them over as a list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from vm_operator.store.state import LogTail
from vm_operator.tart.errors import TartCommandError, TartTimeout, TartUnavailable
from vm_operator.tart.exec_stream import ExecStream
from vm_operator.tart.records import ExecResult, HostDisk
from vm_operator.tart.tunnel import GuestPipe

Observer = Callable[[str, str, float], None]
"""Called after every Tart call with (command, outcome, seconds): the metrics hook."""

OutputSink = Callable[[bytes], None]
"""Given each chunk of a streamed call's stdout as it arrives (any size, split anywhere)."""

Kill = Callable[[], None]
"""Kills a streamed call's process group (SIGKILL); safe to call at any time, any number of
times, from any thread: once the process has been reaped it does nothing."""

StartedSink = Callable[[Kill], None]
"""Given the ``Kill`` of a streamed call as soon as its process exists (for cancel hooks)."""


def ignore_output(chunk: bytes) -> None:
    del chunk


def ignore_started(kill: Kill) -> None:
    del kill


def no_observer(command: str, outcome: str, seconds: float) -> None:
    del command, outcome, seconds


class RunHandle(Protocol):
    """A started ``tart run``: ``subprocess.Popen`` is one."""

    @property
    def pid(self) -> int: ...

    def wait(self) -> int | None:
        """Block until ``tart run`` has ended; its exit code (negative: killed by that
        signal), None when it ended but its exit code cannot be known."""
        ...


class Transport(Protocol):
    """Runs Tart commands somewhere: always an argument list, a timeout, captured output."""

    @property
    def timeout(self) -> float:
        """Seconds a Tart call may take, unless the call says otherwise."""
        ...

    def call(self, args: Sequence[str], timeout: float | None = None) -> str:
        """Run ``tart ARGS``, return stdout; raise a TartError on every kind of failure."""
        ...

    def stream(self, args: Sequence[str], on_output: OutputSink, on_started: StartedSink,
               timeout: float) -> None:
        """Run ``tart ARGS``, handing its stdout to ``on_output`` as it arrives and the kill
        switch of its process group to ``on_started``; raise a TartError on every kind of
        failure (a killed call: a TartCommandError with a negative exit code)."""
        ...

    def exec(self, args: Sequence[str], stdin: bytes | None, timeout: float) -> ExecResult:
        """Run ``tart ARGS`` (a ``tart exec``) with ``stdin`` (None: none) and return how it
        ended, whatever its exit code (the guest command's); past ``timeout`` its process
        group is killed (GuestTimeout). Failures of the transport itself raise."""
        ...

    def exec_stream(self, args: Sequence[str], tty: bool, rows: int, cols: int) -> ExecStream:
        """Start ``tart ARGS`` (a ``tart exec``) and keep it open: its stdin, stdout and
        stderr (with ``tty``, stdin and stdout on a pseudo-terminal of ``rows`` x ``cols``)."""
        ...

    def disk_usage(self) -> HostDisk:
        """Total and free bytes of the file system that holds the Tart home."""
        ...

    def launch(self, name: str, args: Sequence[str]) -> RunHandle:
        """Start ``tart ARGS`` (a ``tart run``) detached for VM ``name``, its output to the
        VM's run log; raise a TartError (RunStillAlive among them) when it cannot start."""
        ...

    def adopt(self, name: str, pid: int) -> RunHandle:
        """A handle on the run an earlier operator process launched for ``name``."""
        ...

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        """The end of the current run's output (state.cut_tail), None when there is none."""
        ...

    def last_log_line(self, name: str) -> str:
        """The last non-empty line of that output ("" when there is none): Tart's message."""
        ...

    def forget_log(self, name: str) -> None:
        """Remove the run logs of ``name`` kept where Tart runs (its VM is gone)."""
        ...

    def vm_identity(self, name: str) -> str | None:
        """The identity of the local VM ``name``'s directory under the Tart home
        (``identity.IDENTITY_SCRIPT``, run where Tart runs), None when it has none."""
        ...

    def locate(self) -> tuple[str, bool]:
        """Where Tart is and whether it can be run, without running it (for health probes)."""
        ...

    def probe(self, ip: str, port: int, timeout: float) -> bool:
        """Whether a TCP connection to ip:port succeeds within ``timeout`` seconds, made from
        where Tart runs (its guests' addresses are reachable from there); ``ip`` and ``port``
        are checked (``probe.checked_target``) first."""
        ...

    def connect(self, ip: str, port: int) -> GuestPipe:
        """A TCP connection to ip:port made from where Tart runs, for a tunnel; GuestRefused
        when the guest does not accept it."""
        ...


@contextmanager
def observed(observe: Observer, command: str) -> Iterator[None]:
    """Report one Tart call to ``observe``: its command, how it ended, how long it took.

    Every call goes through here, ``tart run`` launches included (timed to the launch, not
    over the VM's life), so the metrics count every Tart process the operator starts.
    """
    started = time.monotonic()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    except TartCommandError:
        outcome = "refused"
        raise
    except TartTimeout:
        outcome = "timeout"
        raise
    except TartUnavailable:
        outcome = "unavailable"
        raise
    finally:
        observe(command, outcome, time.monotonic() - started)
