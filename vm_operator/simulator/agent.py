"""The Tart Guest Agent: `tart exec [-i] [-t] NAME COMMAND [ARG…]` runs COMMAND in the running
VM's guest, as a real process of this machine in the VM's own directory (its "guest
filesystem", ``guest/`` in the VM's directory), with the guest's environment, never the
caller's: Tart's request to the agent carries only the command, its arguments, the two flags
and the terminal size.

Its stdout and stderr arrive apart on Tart's; Tart exits with the command's exit code. A VM
cloned from an image whose name ends in ``-vanilla`` has no agent, nor has a guest that has not
booted yet: then Tart cannot reach it over the VM's control socket (exit 1).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
import tty

from .errors import TartError, not_running
from .files import read_json
from .locks import lock_holder
from .storage import RUNTIME_FILE, existing

GUEST_DIR = "guest"  # the guest's "filesystem": the command's working directory
AGENT_KEY = "tartSimGuestAgent"  # config.json: False when the VM's disk has no agent
GUEST_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"  # a macOS guest's default PATH


def has_agent(cfg: dict[str, object]) -> bool:
    return cfg.get(AGENT_KEY) is not False


def agent_unreachable(reason: str) -> TartError:
    return TartError("Failed to connect to the VM using its control socket: "
                     f"{reason}, is the Tart Guest Agent running?", 1)


def guest_env(home: str) -> dict[str, str]:
    """What the agent's processes see: the guest's environment, nothing of the caller's."""
    return {"PATH": GUEST_PATH, "HOME": home, "USER": "admin", "LOGNAME": "admin",
            "SHELL": "/bin/sh", "LANG": "en_US.UTF-8"}


def cmd_exec(a: argparse.Namespace) -> int:
    """Run the command in the guest; exit with its exit code."""
    d = existing(a.name)
    if lock_holder(d / "config.json") is None:
        raise not_running(a.name)
    cfg = read_json(d / "config.json") or {}
    booted = (read_json(d / RUNTIME_FILE) or {}).get("bootedAt", float("inf"))
    if not has_agent(cfg) or time.time() < booted:
        raise agent_unreachable("connection refused")
    home = d / GUEST_DIR
    home.mkdir(exist_ok=True)
    argv = [a.program, *a.args]
    if a.t:
        return in_terminal(argv, str(home))
    try:
        child = subprocess.Popen(argv, cwd=home, env=guest_env(str(home)),
                                 stdin=None if a.i else subprocess.DEVNULL)
    except OSError as e:
        raise TartError(f'Error: failed to run "{a.program}": {e.strerror}', 1)

    def end(signum: int, _frame: object) -> None:
        """Tart interrupted: the agent's command ends with it."""
        child.kill()
        child.wait()
        sys.exit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, end)
    while True:
        try:
            code = child.wait(timeout=0.1)
            return 128 - code if code < 0 else code
        except subprocess.TimeoutExpired:
            pass
        if lock_holder(d / "config.json") is None:  # the VM stopped: its guest is gone
            child.kill()
            child.wait()
            raise TartError(f'VM "{a.name}" stopped while the command ran', 1)


def in_terminal(argv: list[str], home: str) -> int:
    """``-t``: the command on a pseudo-terminal the size of Tart's own (when Tart's stdin is
    one; its resizes followed, as Tart forwards them), its output (stdout and stderr both, as a
    terminal has it) relayed to Tart's stdout and Tart's stdin to it."""
    os.chdir(home)
    size = _window(0)
    pid, master = pty.fork()
    if pid == 0:  # the guest's process: its terminal sized, then the command
        # A guest's process inherits nothing of the host's signal dispositions: under nohup (or
        # a shell's background job) SIGHUP or SIGINT is ignored here, and the hangup of its
        # terminal when Tart goes must still end it, as in a VM.
        for number in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
                       signal.SIGPIPE):
            signal.signal(number, signal.SIG_DFL)
        # Tart gone before that: its hangup came while SIGHUP was still ignored, and was lost.
        # The terminal says so (POLLHUP): the hangup ends the command now, as it would have.
        hung_up = select.poll()
        hung_up.register(0, select.POLLIN)
        if any(events & select.POLLHUP for _fd, events in hung_up.poll(0)):
            os.kill(os.getpid(), signal.SIGHUP)
        if size is not None:
            fcntl.ioctl(0, termios.TIOCSWINSZ, size)
        try:
            os.execvpe(argv[0], argv, guest_env(home))
        except OSError as e:
            os.write(2, f'Error: failed to run "{argv[0]}": {e.strerror}\n'.encode())
        os._exit(1)
    if size is not None:
        signal.signal(signal.SIGWINCH, lambda _n, _f: _resize(master))
        _resize(master)  # a resize before the handler was there
    saved = termios.tcgetattr(0) if os.isatty(0) else None
    if saved is not None:
        tty.setraw(0, termios.TCSANOW)  # what is already typed stays
    try:
        _relay(master)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSAFLUSH, saved)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return 128 - code if code < 0 else code


def _window(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8))
    except OSError:
        return None


def _resize(master: int) -> None:
    size = _window(0)
    if size is not None:
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)


def _relay(master: int) -> None:
    """Tart's stdin to the terminal, the terminal to Tart's stdout, until the terminal ends."""
    reading = [master, 0]
    while True:
        try:
            ready = select.select(reading, [], [])[0]
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                return
            _write_all(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                _write_all(master, data)
            else:
                reading.remove(0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
