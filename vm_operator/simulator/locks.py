"""Tart's locks: flock(2) on directories (TART_HOME's global lock, temporary directories,
registry hosts) and the fcntl lock a `tart run` holds on its VM's config.json, which is what
makes a VM "running"."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import sys
import time
from pathlib import Path

from .files import make_temp_dir, read_json, rmtree, say
from .storage import RUNTIME_FILE, STATE_FILE, tmp_root


def try_lock_dir(path: Path) -> int | None:
    """flock(2) a directory without waiting, like Tart's FileLock.trylock(): the open
    descriptor that holds the lock, or None if someone else holds it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_dir(path: Path, busy_message: str = "") -> int:
    """flock(2) a directory, waiting for it (printing busy_message first, if any)."""
    fd = try_lock_dir(path)
    if fd is not None:
        return fd
    if busy_message:
        say(busy_message)
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def locked_tmp_dir(name: str = "") -> tuple[Path, int]:
    """A directory under tmp/ (tmp/NAME, or a fresh one) and the descriptor by which this
    process holds it locked, so that gc_tmp of other commands leaves it alone. Made again
    if such a gc removed it between its creation and our lock."""
    tmp_root().mkdir(parents=True, exist_ok=True)
    while True:
        d = tmp_root() / name if name else make_temp_dir(tmp_root(), "")
        d.mkdir(exist_ok=True)
        try:
            fd = lock_dir(d)
        except FileNotFoundError:
            continue
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(fd), os.stat(d)):
                return d, fd
        os.close(fd)


def gc_tmp() -> None:
    """Tart's Config.gc() before every command but pull and clone: remove the leftovers
    of killed clones and pulls (temporary directories nobody holds locked)."""
    try:
        names = os.listdir(tmp_root())
    except OSError:
        return
    for n in names:
        with contextlib.suppress(OSError):
            fd = try_lock_dir(tmp_root() / n)
            if fd is not None:
                try:
                    rmtree(tmp_root() / n)
                finally:
                    os.close(fd)


FLOCK = ("qqihh", 3, 2) if sys.platform == "darwin" else ("hhqqi4x", 0, 4)


def lock_config(fd: int) -> bool:
    """Take the lock of a VM's config.json (open read-write at ``fd``) without waiting, as a
    `tart run` does: False when another process holds it (the VM runs)."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise
    return True


def lock_holder(config: Path) -> int | None:
    """PID holding the fcntl lock (0 if not visible), or None if unlocked.

    F_GETLK only asks; it never takes the lock, so `list` can't make a
    concurrent `run` fail. Like Tart's PIDLock.pid().
    """
    try:
        fd = os.open(config, os.O_RDONLY)
    except OSError:
        return None
    fmt, type_at, pid_at = FLOCK
    query = [0] * 5  # whole file from offset 0, l_whence = SEEK_SET (0)
    query[type_at] = fcntl.F_WRLCK
    try:
        answer = struct.unpack(fmt, fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(fmt, *query)))
        return None if answer[type_at] == fcntl.F_UNLCK else max(answer[pid_at], 0)
    finally:
        os.close(fd)


def vm_state(d: Path) -> str:
    """The lock decides "running"; the saved-state file decides "suspended"."""
    if lock_holder(d / "config.json") is not None:
        return "running"
    return "suspended" if (d / STATE_FILE).exists() else "stopped"


def run_pid(d: Path, holder: int) -> int:
    """PID of the `tart run` holding the lock; the pid file only as a fallback."""
    if holder > 0:
        return holder
    info = read_json(d / RUNTIME_FILE) or {}
    return int(info.get("pid", 0))


def wait_unlocked(config: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while lock_holder(config) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
