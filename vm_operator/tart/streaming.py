"""A long Tart call whose output is wanted while it runs (a clone, a pull): ``run_streaming``.

The same rules as ``local.run_captured``: an argument list, never a shell; a timeout, on whose
expiry the whole process group is killed; stderr captured (its last bytes: Tart's message).
stdout is handed over chunk by chunk as it arrives, so progress can be shown while Tart pulls;
one thread reads both pipes (``selectors``), so neither can fill up and block Tart.

Cancelling: the caller is handed a ``Kill`` as soon as the process exists. It kills the process
group, and is harmless once the process has been reaped: the group id is only reused after
that, and ``Kill`` checks under a lock that the reaping has not happened yet.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from vm_operator.tart.errors import TartTimeout, binary_unavailable, command_error
from vm_operator.tart.parse import error_message

# annotations only: transport.py imports tunnel.py, which kills its ssh with ProcessGroup
if TYPE_CHECKING:
    from vm_operator.tart.transport import OutputSink, StartedSink

STDERR_KEEP = 64 * 1024  # bytes of stderr kept: Tart's message is its last line
READ_SIZE = 64 * 1024
EXIT_POLL = 0.01  # seconds between two looks at a process that closed its pipes


class Expired(Exception):
    """The call outlived its timeout."""


class ProcessGroup:
    """A started process in a session of its own: kill its group, reap it, never both wrongly."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._lock = threading.Lock()
        self._reaped = False

    def kill(self) -> None:
        with self._lock:
            if self._reaped:
                return
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def reap(self, deadline: float) -> int:
        """Wait (until ``deadline``, else Expired) for the process to exit, then reap it; its
        exit code, negative when a signal killed it."""
        while True:
            with self._lock:
                if self._reaped:  # by another caller (a second close)
                    return self.proc.wait()
            # WNOWAIT: learn that it exited without reaping it, so a kill meanwhile is safe.
            try:
                if os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                    break
            except ChildProcessError:  # another caller reaped it meanwhile
                break
            if time.monotonic() >= deadline:
                raise Expired()
            time.sleep(EXIT_POLL)
        with self._lock:
            code = self.proc.wait()
            self._reaped = True
        return code

    def kill_and_reap(self) -> None:
        self.kill()
        try:
            self.reap(time.monotonic() + 5)
        except Expired:  # unkillable (uninterruptible sleep): leave it to the OS
            pass

    @contextmanager
    def owned(self) -> Iterator[None]:
        """While the caller talks to the process: on any exception (an ``Expired`` too) its
        group is killed and reaped before the exception goes on; its pipes closed in every
        case."""
        try:
            yield
        except BaseException:
            self.kill_and_reap()
            raise
        finally:
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()


def _pump(proc: subprocess.Popen[bytes], on_output: OutputSink, deadline: float) -> bytes:
    """Read stdout (to ``on_output``) and stderr (kept) until both are closed; its stderr."""
    assert proc.stdout is not None and proc.stderr is not None
    stderr = bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        selector.register(proc.stderr, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise Expired()
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, READ_SIZE)
                if not chunk:
                    selector.unregister(key.fileobj)
                elif key.fileobj is proc.stdout:
                    on_output(chunk)
                else:
                    stderr += chunk
                    del stderr[:-STDERR_KEEP]
    return bytes(stderr)


def run_streaming(argv: Sequence[str], env: Mapping[str, str], timeout: float, label: str,
                  on_output: OutputSink, on_started: StartedSink,
                  hold_stdin: bool = False) -> None:
    """Run ``argv`` (``argv[0]`` is the binary), its stdout to ``on_output`` as it comes; raise
    a TartError on every kind of failure. ``label`` names the call in messages.

    ``hold_stdin``: its stdin is a pipe that stays open, and empty, until it has ended (for
    ssh: the remote side learns from its end that the local ssh has gone)."""
    deadline = time.monotonic() + timeout
    stdin = subprocess.PIPE if hold_stdin else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env), start_new_session=True)
    except OSError as exc:
        raise binary_unavailable(argv[0], exc) from None
    group = ProcessGroup(proc)
    try:
        with group.owned():
            on_started(group.kill)
            stderr = _pump(proc, on_output, deadline)
            code = group.reap(deadline)
    except Expired:
        raise TartTimeout(f"'tart {label}' did not finish within {timeout:g} s") from None
    if code < 0:
        raise command_error(f"'tart {label}' was killed by signal {-code}", code)
    if code != 0:
        raise command_error(error_message(stderr.decode("utf-8", errors="replace"), code), code)
