"""``tart exec``'s process: ``run_exec`` runs it and gives back what a guest command gives.

The same rules as every Tart call (an argument list, never a shell; a timeout, on whose expiry
the whole process group is killed; output captured), but its answer is the command's: its exit
code (which Tart passes through), its stdout and its stderr, each kept up to a cap (the rest is
read and dropped, so the command never blocks on a full pipe) and ``truncated`` when either was
cut. Its stdin, when given, is written as the command reads it, then closed, unless
``hold_stdin`` (over SSH the pipe stays open until the end: the remote side learns from its end
that the local ssh has gone).
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Mapping, Sequence

from vm_operator.tart.errors import (
    GuestTimeout,
    TartCommandError,
    TartGuestAgentUnreachable,
    binary_unavailable,
    command_error,
)
from vm_operator.tart.records import ExecResult
from vm_operator.tart.streaming import READ_SIZE, Expired, ProcessGroup

OUTPUT_CAP = 1 << 20  # bytes of stdout and of stderr each that an exec answers with (1 MiB)
DRAIN_GRACE = 0.2  # seconds the pipes are still read once Tart has exited (a child may hold them)


class _Capped:
    """The first ``cap`` bytes of a stream; whether more came."""

    def __init__(self, cap: int) -> None:
        self.cap, self.data, self.cut = cap, bytearray(), False

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        self.data += chunk[:max(room, 0)]
        self.cut = self.cut or len(chunk) > room


def _exited(pid: int) -> bool:
    return bool(os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT))


def _pump(proc: subprocess.Popen[bytes], stdin: bytes | None, hold_stdin: bool,
          out: _Capped, err: _Capped, deadline: float) -> None:
    """Write stdin, read stdout and stderr, until the pipes close or (once Tart has exited)
    nothing more comes for DRAIN_GRACE seconds."""
    assert proc.stdout is not None and proc.stderr is not None
    pending = memoryview(stdin or b"")
    sinks = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    quiet_since: float | None = None
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        if proc.stdin is not None:
            if pending:
                os.set_blocking(proc.stdin.fileno(), False)
                selector.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
            elif not hold_stdin:
                proc.stdin.close()
        while any(key.events & selectors.EVENT_READ for key in selector.get_map().values()):
            now = time.monotonic()
            if now >= deadline:
                raise Expired()
            ready = selector.select(min(deadline - now, 0.05))
            for key, _ in ready:
                if key.fd in sinks:
                    chunk = os.read(key.fd, READ_SIZE)
                    if chunk:
                        sinks[key.fd].add(chunk)
                    else:
                        selector.unregister(key.fd)
                    continue
                assert proc.stdin is not None
                try:
                    pending = pending[os.write(key.fd, pending):]
                except (BrokenPipeError, BlockingIOError) as exc:
                    if isinstance(exc, BlockingIOError):
                        continue
                    pending = memoryview(b"")
                if not pending:
                    selector.unregister(key.fd)
                    if not hold_stdin:
                        proc.stdin.close()
            if ready:
                quiet_since = None
            elif _exited(proc.pid):
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= DRAIN_GRACE:
                    return


def run_exec(argv: Sequence[str], env: Mapping[str, str], stdin: bytes | None, timeout: float,
             cap: int = OUTPUT_CAP, hold_stdin: bool = False) -> ExecResult:
    """Run ``argv`` (``argv[0]`` is the binary: Tart, or ssh) and return how it ended; raise
    GuestTimeout past ``timeout`` (its process group killed first), TartUnavailable when it
    cannot be started."""
    deadline = time.monotonic() + timeout
    piped = stdin is not None or hold_stdin
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE if piped else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(env),
                                start_new_session=True)
    except OSError as exc:
        raise binary_unavailable(argv[0], exc) from None
    group = ProcessGroup(proc)
    out, err = _Capped(cap), _Capped(cap)
    try:
        with group.owned():
            _pump(proc, stdin, hold_stdin, out, err, deadline)
            code = group.reap(deadline)
    except Expired:
        raise GuestTimeout(f"the command did not end within {timeout:g} s; it was killed") \
            from None
    return ExecResult(128 - code if code < 0 else code, bytes(out.data), bytes(err.data),
                      out.cut or err.cut)


def refusal(name: str, result: ExecResult) -> TartCommandError | None:
    """Tart's own refusal of an exec (the VM missing or not running, the agent unreachable),
    told from the guest command's exit code by Tart's exact message as stderr's last line."""
    lines = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
    last = lines[-1].strip() if lines else ""
    agent = last.startswith("Failed to connect to the VM using its control socket: ")
    if result.exit_code == 2 and last in (f'the specified VM "{name}" does not exist',
                                          f'VM "{name}" is not running'):
        return command_error(last, result.exit_code)
    if result.exit_code == 1 and agent and last.endswith("is the Tart Guest Agent running?"):
        return TartGuestAgentUnreachable(last, result.exit_code)
    return None
