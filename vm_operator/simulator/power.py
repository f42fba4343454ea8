"""A VM's power: `tart run` (blocking for the VM's whole life, holding its lock), `tart stop`
and `tart suspend` (signals to that process)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import time

from .errors import TartError, UsageError, not_running, not_suspendable
from .files import read_json
from .guest import guest_port, run_vm
from .knobs import current
from .locks import lock_config, lock_holder, run_pid, wait_unlocked
from .storage import RUN_GATE_FILE, RUNTIME_FILE, STATE_FILE, existing, local_entries, tart_home


def cmd_stop(a: argparse.Namespace) -> int:
    """SIGINT the run process, SIGKILL after --timeout; discard a suspended state."""
    d = existing(a.name)
    config = d / "config.json"
    holder = lock_holder(config)
    if holder is None:
        if (d / STATE_FILE).exists():  # suspended: discard the saved state
            with contextlib.suppress(FileNotFoundError):
                os.unlink(d / STATE_FILE)
            return 0
        raise not_running(a.name)
    pid = run_pid(d, holder)
    if pid <= 0:
        raise TartError(f'failed to find the "tart run" process of VM "{a.name}"', 1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    if a.timeout > 0 and wait_unlocked(config, a.timeout):
        return 0
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return 0
    except OSError as e:
        raise TartError(f'failed to forcefully terminate the VM "{a.name}": {e.strerror}', 1)
    wait_unlocked(config, 5)
    return 0


def cmd_suspend(a: argparse.Namespace) -> int:
    """SIGUSR1 the run process and, unlike Tart, wait for the outcome (bounded)."""
    d = existing(a.name)
    config = d / "config.json"
    holder = lock_holder(config)
    if holder is None:
        raise not_running(a.name)
    info = read_json(d / RUNTIME_FILE) or {}
    pid = run_pid(d, holder)
    try:
        if pid > 0:
            os.kill(pid, signal.SIGUSR1)
    except OSError:
        pid = 0
    if pid <= 0:
        raise TartError('failed to send SIGUSR1 signal to the "tart run" process running '
                        f'VM "{a.name}"', 1)
    if info.get("suspendable") is False:
        raise TartError(not_suspendable(a.name), 1)
    if wait_unlocked(config, 10) and (d / STATE_FILE).exists():
        return 0
    raise TartError(f'failed to suspend VM "{a.name}": timed out waiting for the snapshot', 1)


def interruptible_sleep(seconds: float, pending: list[int]) -> bool:
    """Sleep unless a stop signal arrives; False if we were told to stop."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(s != signal.SIGUSR1 for s in pending):
            return False
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return True


def take_run_lock(name: str, fd: int, os_name: str) -> None:
    """Lock config.json; refuse a second run and a third macOS guest.

    A flock on TART_HOME (as Tart does) serialises concurrent starts, so the
    count of running guests and our own lock are decided atomically.
    """
    home_fd = os.open(tart_home(), os.O_RDONLY)
    try:
        fcntl.flock(home_fd, fcntl.LOCK_EX)
        if not lock_config(fd):
            raise TartError(f'VM "{name}" is already running!', 2)
        limit = int(current().vm_limit)
        if limit > 0 and os_name == "darwin":
            # Never open our own config.json again: closing any descriptor of
            # a file drops this process's fcntl locks on it.
            running = sum(1 for n, d in local_entries() if n != name
                          and lock_holder(d / "config.json") is not None
                          and (read_json(d / "config.json") or {}).get("os", "darwin") == "darwin")
            if running >= limit:
                fcntl.lockf(fd, fcntl.LOCK_UN)
                raise TartError("The number of VMs exceeds the system limit", 1)
    finally:
        os.close(home_fd)  # releases the flock


def cmd_run(a: argparse.Namespace) -> int:
    """Block for the VM's whole life holding the lock on its config.json."""
    if a.graphics and a.no_graphics:
        raise UsageError("--graphics and --no-graphics are mutually exclusive")
    d = existing(a.name)  # OCI names: Tart's run opens local storage only
    resume = (d / STATE_FILE).exists()
    suspendable = a.suspendable or resume
    cfg = read_json(d / "config.json") or {}
    os_name = cfg.get("os", "darwin")
    if suspendable and os_name == "linux":
        raise UsageError("You can only suspend macOS VMs")
    if suspendable and a.dir:
        raise UsageError("Suspending VMs with shared directories is not supported")

    pending: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, lambda signum, _frame: pending.append(signum))
    knobs = current()
    if not interruptible_sleep(knobs.run_delay, pending):
        return 0
    while (d / RUN_GATE_FILE).exists():  # a test holds this start here
        if not interruptible_sleep(0.05, pending):
            return 0
    failure = knobs.run_fail
    if failure:
        interruptible_sleep(0.3, pending)
        raise TartError(failure, 1)
    guest_port()  # a bad TART_SIM_GUEST_PORT fails the run before it takes the lock
    fd = os.open(d / "config.json", os.O_RDWR)  # held open for the VM's whole life
    take_run_lock(a.name, fd, os_name)
    try:
        return run_vm(a.name, d, cfg, suspendable, resume, pending)
    finally:
        with contextlib.suppress(OSError):  # still locked, so no newer run owns it
            os.unlink(d / RUNTIME_FILE)
