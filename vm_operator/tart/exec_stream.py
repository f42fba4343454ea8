"""An interactive ``tart exec [-i] [-t]``: its process kept open, for ``GET /vms/{name}/exec``
(a WebSocket). An argument list, never a shell; its own process group, killed by ``kill``
(the socket closed, the operator drains); stdout and stderr read apart as they come; stdin
written as the client sends it.

With a terminal (``-t``) Tart runs on a pseudo-terminal of ours (its stdin and stdout), whose
size is the client's (``resize``): Tart forwards it to the guest's terminal, as it does for a
user's. Its stderr stays a pipe.
"""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Callable, Mapping, Sequence
from tty import setraw

from vm_operator.tart.errors import binary_unavailable

READ_SIZE = 64 * 1024
REAP_WAIT = 5.0  # seconds Tart may take to be reaped once its group was killed


class ExecStream:
    """One running ``tart exec``: ``read_fds`` (stdout's, stderr's), ``write``,
    ``close_stdin``, ``resize``, ``kill`` and ``wait``."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], tty: bool,
                 rows: int = 24, cols: int = 80,
                 on_kill: Callable[[], None] | None = None) -> None:
        self._on_kill = on_kill  # told once, when a kill finds Tart still running (over SSH)
        self._kill_lock = threading.Lock()
        self._master: int | None = None
        slave: int | None = None
        if tty:
            self._master, slave = pty.openpty()
            setraw(slave)  # the guest's terminal echoes and translates, not this one
            _set_size(self._master, rows, cols)
        try:
            self.proc = subprocess.Popen(
                list(argv), stdin=slave if tty else subprocess.PIPE,
                stdout=slave if tty else subprocess.PIPE, stderr=subprocess.PIPE,
                env=dict(env), start_new_session=True, bufsize=0)
        except OSError as exc:
            if self._master is not None:
                os.close(self._master)
            raise binary_unavailable(argv[0], exc) from None
        finally:
            if slave is not None:
                os.close(slave)
        assert self.proc.stderr is not None
        if self._master is not None:
            self.stdout_fd = self._master
        else:
            assert self.proc.stdout is not None
            self.stdout_fd = self.proc.stdout.fileno()
        self.stderr_fd = self.proc.stderr.fileno()

    def read(self, fd: int) -> bytes:
        """What ``fd`` has (b"" at its end; a pseudo-terminal's EIO is its end)."""
        try:
            return os.read(fd, READ_SIZE)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        if self._master is not None:
            os.write(self._master, data)
            return
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    def close_stdin(self) -> None:
        """The end of the command's input: closed (a terminal gets its EOF character)."""
        if self._master is not None:
            os.write(self._master, b"\x04")
        elif self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def resize(self, rows: int, cols: int) -> None:
        """The terminal's new size, and SIGWINCH to Tart (the terminal is not its controlling
        one: the kernel does not tell it), which forwards it as it does a user's."""
        if self._master is not None:
            _set_size(self._master, rows, cols)
            self._signal(signal.SIGWINCH)

    def kill(self) -> None:
        """Kill Tart's process group (from any thread, any number of times); the first kill
        that finds Tart running tells ``on_kill`` (over SSH: the command's group on the Mac)."""
        if self._signal(signal.SIGKILL):
            with self._kill_lock:
                on_kill, self._on_kill = self._on_kill, None
            if on_kill is not None:
                on_kill()

    def _signal(self, number: signal.Signals) -> bool:
        """``number`` to Tart's process group while it runs (one already gone is no error);
        whether it was running."""
        if self.proc.returncode is not None:
            return False
        try:
            os.killpg(self.proc.pid, number)
        except OSError:
            pass
        return True

    def wait(self) -> int:
        """Tart's exit code (the command's; 128+N: killed by signal N); its pipes closed."""
        try:
            code = self.proc.wait(timeout=REAP_WAIT)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        if self._master is not None:
            try:
                os.close(self._master)
            except OSError:
                pass
            self._master = None
        return 128 - code if code < 0 else code


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
