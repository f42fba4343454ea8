"""Tart simulator: Tart's CLI contract (arguments, JSON, stderr messages, exit
codes, the fcntl lock on config.json, a blocking `run`, SIGINT/SIGUSR1) on any
POSIX host, since real Tart runs only on Apple Silicon Macs. Stdlib only; all
state lives under $TART_HOME. Deliberate choices:
- `run` of an OCI name fails "does not exist" (exit 2): Tart's `run` opens local
  storage only; an OCI image must be cloned first.
- The VM limit counts running macOS guests only and applies only when starting
  one, like Apple's licence enforced by Virtualization.framework.
- TART_SIM_RUN_FAIL fails `run` (exit 1, the message on stderr) about 0.3 s after
  it starts and before it takes the lock, as Tart does when it cannot start a VM.
- A VM run without --suspendable logs an error on SIGUSR1 and keeps running.
- TART_SIM_HANG_CHILD=PATH, with TART_SIM_HANG: the hanging command first forks a
  child that hangs too (in its process group, holding its stdout/stderr) and writes
  the child's pid to PATH, so a test can tell whether a timeout killed the group.

Run it as `tart-simulator ARGS` (the console script of an installed operator),
`python -m vm_operator.simulator ARGS`, or bin/tart-simulator in a checkout.
It imports nothing from vm_operator, so this file also runs on its own
(`python3 simulator.py ARGS`, as the SSH tests copy it to their host).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import shlex
import shutil
import signal
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every call
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]  # a parsed JSON object (config.json, the run file)
    ArgSpec = tuple[tuple[str, ...], dict[str, Any]]  # one add_argument call

VERSION = "2.31.0"
EX_USAGE = 64
STATE_FILE = "state.vzvmsave"  # Tart's suspended-state file name
RUNTIME_FILE = ".tart-sim-run.json"  # pid etc. of `run`; trusted only while locked
ACCESSED_FILE = ".tart-sim-accessed"  # its mtime is the VM's "Accessed" time
SHAPES = {
    "2.31": ["Source", "Name", "Disk", "Size", "Accessed", "Running", "State"],
    "2.15": ["Source", "Name", "Disk", "Size", "SizeOnDisk", "Running", "State"],
    "1.7": ["Source", "Name", "Disk", "Size", "Running"],
}
DEMO_LOCAL = [  # name, os, disk GB, seconds since last access
    ("macos-sequoia-base", "darwin", 50, 180),
    ("macos-sonoma-xcode", "darwin", 100, 7200),
    ("ubuntu-runner", "linux", 20, 3 * 86400),
]
DEMO_OCI = "ghcr.io/cirruslabs/macos-sequoia-base:latest"


class TartError(Exception):
    """An error Tart reports as a plain message on stderr with an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class UsageError(TartError):
    """A validation error: ArgumentParser prints `Error: …` and exits 64."""

    def __init__(self, message: str) -> None:
        super().__init__(f"Error: {message}", EX_USAGE)


def does_not_exist(name: str) -> TartError:
    return TartError(f'the specified VM "{name}" does not exist', 2)


def not_running(name: str) -> TartError:
    return TartError(f'VM "{name}" is not running', 2)


def not_suspendable(name: str) -> str:
    return f'failed to suspend VM "{name}": it was not started with --suspendable'


# ---------------------------------------------------------------- helpers

def env_float(name: str, default: float = 0.0) -> float:
    """Read a numeric knob; a malformed value falls back to the default."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def knob_matches(name: str, command: str) -> bool:
    """True if the comma-separated knob lists this subcommand (or `all`)."""
    wanted = {w.strip() for w in os.environ.get(name, "").split(",") if w.strip()}
    return "all" in wanted or command in wanted


def say(line: str, err: bool = False) -> None:
    """Print one line and flush, so a log file sees it at once; survive EPIPE."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(line, file=stream, flush=True)
    except OSError:  # reader went away: stop writing, keep the VM alive
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def atomic_write(path: Path, text: str) -> None:
    """Write via tmp + os.replace so concurrent readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Json | None:
    """Parse a JSON file; None if it vanished or is unreadable (races)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def name_hash(name: str) -> int:
    """64 stable bits per name (zlib is cheaper to import than hashlib)."""
    return zlib.crc32(name.encode()) | zlib.crc32(b"tart-sim:" + name.encode()) << 32


def ip_of(name: str) -> str:
    """A deterministic, never-contacted address on Tart's default NAT subnet."""
    return f"192.168.64.{2 + name_hash(name) % 252}"


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(ts: float) -> str:
    """Prose like Tart's text table: `3 minutes ago`."""
    secs = max(0, int(time.time() - ts))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if secs >= size or unit == "second":
            n = secs // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return ""


# ---------------------------------------------------------------- storage

def tart_home() -> Path:
    return Path(os.environ.get("TART_HOME") or Path.home() / ".tart")


def vms_root() -> Path:
    return tart_home() / "vms"


def oci_root() -> Path:
    return tart_home() / "cache" / "OCIs"


def is_oci(name: str) -> bool:
    """Local names are plain; OCI names carry a host and path (`/`)."""
    return "/" in name


def split_ref(name: str) -> tuple[str, str]:
    """`host/path:tag` or `host/path@digest` -> (repository, tag dir name)."""
    if "@" in name:
        repo, _, digest = name.partition("@")
        return repo, "@" + digest
    head, _, last = name.rpartition("/")
    last, _, tag = last.partition(":")
    return f"{head}/{last}", tag or "latest"


def local_dir(name: str) -> Path:
    if not name or name.startswith(".") or "/" in name or "\0" in name:
        raise does_not_exist(name)
    return vms_root() / name


def oci_dir(name: str) -> Path:
    repo, tag = split_ref(name)
    parts = repo.split("/") + [tag]
    if any(not p or p.startswith(".") or "\0" in p for p in parts):
        raise does_not_exist(name)
    return oci_root().joinpath(*parts)


def existing(name: str, local_only: bool = True) -> Path:
    """The directory of an existing VM, or Tart's does-not-exist error."""
    if local_only and is_oci(name):
        raise does_not_exist(name)
    d = oci_dir(name) if is_oci(name) else local_dir(name)
    if not (d / "config.json").is_file():
        raise does_not_exist(name)
    return d


def local_entries() -> list[tuple[str, Path]]:
    try:
        names = sorted(n for n in os.listdir(vms_root()) if not n.startswith("."))
    except FileNotFoundError:
        return []
    return [(n, vms_root() / n) for n in names]


def oci_entries() -> list[tuple[str, Path]]:
    """Every tag/digest directory holding a config.json, named like Tart shows it."""
    root, found = oci_root(), []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if "config.json" in filenames:
            *repo, tag = Path(dirpath).relative_to(root).parts
            name = "/".join(repo) + ("" if tag.startswith("@") else ":") + tag
            found.append((name, Path(dirpath)))
            dirnames[:] = []
    return sorted(found)


def mac_for(name: str) -> str:
    """A stable, locally administered MAC address per VM name."""
    h = name_hash(name)
    return "7e:" + ":".join(f"{(h >> (8 * i)) & 0xFF:02x}" for i in range(5))


def new_config(name: str, os_name: str, disk_gb: int, disk_format: str = "raw") -> Json:
    """A Tart-like config.json plus the simulator's size fields (no big files)."""
    h = name_hash(name)
    cpu, mem_mb = (4, 8192) if os_name == "darwin" else (2, 4096)
    used = round(disk_gb * (0.4 if os_name == "darwin" else 0.15) + (h % 1000) / 1000, 3)
    return {
        "version": 1, "os": os_name, "arch": "arm64",
        "cpuCountMin": cpu, "cpuCount": cpu,
        "memorySizeMin": mem_mb << 20, "memorySize": mem_mb << 20,
        "macAddress": mac_for(name), "display": {"width": 1024, "height": 768},
        "diskFormat": disk_format, "diskSize": disk_gb, "sizeOnDisk": used,
    }


def touch_accessed(d: Path, when: float | None = None) -> None:
    p = d / ACCESSED_FILE
    os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))
    t = time.time() if when is None else when
    os.utime(p, (t, t))


def accessed(d: Path) -> float:
    for p in (d / ACCESSED_FILE, d / "config.json"):
        with contextlib.suppress(OSError):
            return p.stat().st_mtime
    return time.time()


def fill_vm(d: Path, config: Json, when: float | None = None) -> None:
    """Populate a VM directory: config, an empty disk marker, the access time."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(config, indent=2))
    (d / "disk.img").touch()
    touch_accessed(d, when)


def install_dir(target: Path, fill: Callable[[Path], None]) -> None:
    """Build in a hidden sibling, then rename: readers see all or nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        fill(tmp)
        os.rename(tmp, target)  # fails if the target exists and is not empty
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def pull_oci(name: str) -> bool:
    """Create a cache entry instantly (no network); False if already present."""
    target = oci_dir(name)
    if (target / "config.json").exists():
        return False
    linux = any(word in name.lower() for word in ("ubuntu", "debian", "fedora", "linux"))
    config = new_config(name, "linux" if linux else "darwin", 20 if linux else 50)
    try:
        install_dir(target, lambda d: fill_vm(d, config))
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
        return False
    return True


def maybe_seed() -> None:
    """TART_SIM_SEED=demo: create demo VMs once, race-safe via mkdtemp + rename."""
    if os.environ.get("TART_SIM_SEED") != "demo" or vms_root().exists():
        return
    home = tart_home()
    home.mkdir(parents=True, exist_ok=True)
    pull_oci(DEMO_OCI)  # first, so whoever sees vms/ also sees the image
    tmp = Path(tempfile.mkdtemp(prefix=".seed-", dir=home))
    try:
        now = time.time()
        for name, os_name, disk, age in DEMO_LOCAL:
            fill_vm(tmp / name, new_config(name, os_name, disk), now - age)
        with contextlib.suppress(OSError):  # another invocation won the race
            os.rename(tmp, vms_root())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- locking

# struct flock: field order differs; (format, index of l_type, index of l_pid)
FLOCK = ("qqihh", 3, 2) if sys.platform == "darwin" else ("hhqqi4x", 0, 4)


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


# ---------------------------------------------------------------- commands

def list_entry(source: str, name: str, d: Path, keys: list[str], prose: bool) -> Json | None:
    """One row of `tart list`, reduced to the keys of the selected Tart version."""
    cfg = read_json(d / "config.json")
    if cfg is None:
        return None
    state, used, when = vm_state(d), float(cfg.get("sizeOnDisk", 0)), accessed(d)
    values = {
        "Source": source, "Name": name, "Disk": int(cfg.get("diskSize", 0)),
        "Size": round(used), "SizeOnDisk": int(used), "Accessed": ago(when) if prose else iso(when),
        "Running": state == "running", "State": state,
    }
    return {k: values[k] for k in keys}


def print_table(rows: list[Json], columns: list[str]) -> None:
    """Whitespace-aligned table like Tart's text output."""
    def cell(value: object) -> str:
        return json.dumps(value) if isinstance(value, bool) else str(value)  # true/false

    cells = [columns] + [[cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    for row in cells:
        say("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


def cmd_list(a: argparse.Namespace) -> int:
    """List VMs in the shape of the Tart version picked by TART_SIM_LIST_SHAPE."""
    keys = SHAPES.get(os.environ.get("TART_SIM_LIST_SHAPE", "2.31"), SHAPES["2.31"])
    groups = []
    if a.source in (None, "local"):
        groups += [("local", n, d) for n, d in local_entries()]
    if a.source in (None, "oci"):
        groups += [("OCI", n, d) for n, d in oci_entries()]
    prose = a.format == "text" and not a.quiet
    rows = [e for e in (list_entry(s, n, d, keys, prose) for s, n, d in groups) if e]
    if a.quiet:
        for r in rows:
            say(r["Name"])
    elif a.format == "json":
        say(json.dumps(rows, indent=2))
    else:
        columns = [k for k in keys if not (k == "Running" and "State" in keys)]
        print_table(rows, columns)
    return 0


def cmd_get(a: argparse.Namespace) -> int:
    """Show one local VM's settings and state, like `tart get`."""
    d = existing(a.name)
    cfg = read_json(d / "config.json") or {}
    state = vm_state(d)
    display = cfg.get("display", {})
    info = {
        "OS": cfg.get("os", "darwin"), "CPU": int(cfg.get("cpuCount", 0)),
        "Memory": int(cfg.get("memorySize", 0)) >> 20, "Disk": int(cfg.get("diskSize", 0)),
        "DiskFormat": cfg.get("diskFormat", "raw"),
        "Size": f"{float(cfg.get('sizeOnDisk', 0)):.3f}",
        "Display": f"{display.get('width', 1024)}x{display.get('height', 768)}",
        "Running": state == "running", "State": state,
    }
    if a.format == "json":
        say(json.dumps(info, indent=2))
    else:
        print_table([info], list(info))
    return 0


def cmd_ip(a: argparse.Namespace) -> int:
    """Print the VM's address once it runs and has booted, polling up to --wait."""
    d = existing(a.name)
    deadline = time.monotonic() + a.wait
    while True:
        if lock_holder(d / "config.json") is not None:
            info = read_json(d / RUNTIME_FILE) or {}
            if time.time() >= info.get("bootedAt", float("inf")):
                say(ip_of(a.name))
                return 0
        if time.monotonic() >= deadline:
            raise TartError("no IP address found, is your VM running?", 1)
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())) or 0.01)


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


def install_local(name: str, fill: Callable[[Path], None]) -> None:
    """Create vms/NAME atomically; an existing VM is an error, as in Tart."""
    target = local_dir(name)
    try:
        if target.exists():
            raise FileExistsError(errno.EEXIST, name)
        install_dir(target, fill)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise TartError(f'VM "{name}" already exists', 1)
        raise


def cmd_clone(a: argparse.Namespace) -> int:
    """Copy a local VM or an OCI image (pulled instantly if missing) to a new local VM."""
    if is_oci(a.new_name):
        raise UsageError("<new-name> should be a local name")
    if is_oci(a.source_name) and pull_oci(a.source_name):  # Tart pulls first
        say(f"pulling {a.source_name}...")
    src = existing(a.source_name, local_only=False)
    cfg = read_json(src / "config.json")
    if cfg is None:
        raise does_not_exist(a.source_name)
    cfg["macAddress"] = mac_for(a.new_name)  # like Tart, avoid a MAC clash with the source

    def fill(d: Path) -> None:
        for item in src.iterdir():
            if not item.name.startswith(".") and item.name != "config.json" and item.is_file():
                shutil.copy2(item, d / item.name)
        fill_vm(d, cfg)

    install_local(a.new_name, fill)
    return 0


def cmd_delete(a: argparse.Namespace) -> int:
    """Remove a local VM or an OCI cache entry; a running VM is refused."""
    d = existing(a.name, local_only=False)
    if lock_holder(d / "config.json") is not None:
        raise TartError(f'failed to delete VM "{a.name}": the VM is running', 1)
    gone = d.parent / f".deleting-{d.name}-{os.getpid()}"
    try:  # rename away first so listings never see a half-deleted VM
        os.rename(d, gone)
    except FileNotFoundError:
        raise does_not_exist(a.name)
    shutil.rmtree(gone, ignore_errors=True)
    return 0


def cmd_create(a: argparse.Namespace) -> int:
    """Create a new local VM without installing anything."""
    if is_oci(a.name):
        raise UsageError("<name> should be a local name")
    if not a.linux and not a.from_ipsw:
        raise UsageError("Please specify either a --from-ipsw or --linux option!")
    os_name = "linux" if a.linux else "darwin"
    config = new_config(a.name, os_name, a.disk_size, a.disk_format)
    install_local(a.name, lambda d: fill_vm(d, config))
    return 0


def cmd_pull(a: argparse.Namespace) -> int:
    """Add an OCI cache entry instantly: there is no registry behind the simulator."""
    if not is_oci(a.name):
        raise TartError(f'"{a.name}" is not a remote VM name (expected host/path[:tag])', 1)
    say(f"pulling {a.name}..." if pull_oci(a.name) else f"{a.name} is already pulled")
    return 0


# ---------------------------------------------------------------- run

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
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EAGAIN):
                raise TartError(f'VM "{name}" is already running!', 2)
            raise
        limit = int(env_float("TART_SIM_VM_LIMIT", 2))
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
    if not interruptible_sleep(env_float("TART_SIM_RUN_DELAY"), pending):
        return 0
    failure = os.environ.get("TART_SIM_RUN_FAIL")
    if failure:
        interruptible_sleep(0.3, pending)
        raise TartError(failure, 1)
    fd = os.open(d / "config.json", os.O_RDWR)  # held open for the VM's whole life
    take_run_lock(a.name, fd, os_name)
    try:
        return run_vm(a.name, d, cfg, suspendable, resume, pending)
    finally:
        with contextlib.suppress(OSError):  # still locked, so no newer run owns it
            os.unlink(d / RUNTIME_FILE)


def run_vm(name: str, d: Path, cfg: Json, suspendable: bool, resume: bool,
           pending: list[int]) -> int:
    """The simulated VM's life: boot lines, then wait for signals."""
    touch_accessed(d)
    started = time.time()
    booted_at = started + env_float("TART_SIM_BOOT_DELAY")
    atomic_write(d / RUNTIME_FILE, json.dumps({"pid": os.getpid(), "suspendable": suspendable,
                                               "startedAt": started, "bootedAt": booted_at}))
    if resume:
        say("restoring VM state from a snapshot...")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(d / STATE_FILE)
        say("resuming VM...")
    say(f"[tart-sim] starting VM {name} ({cfg.get('os', 'darwin')}, {cfg.get('cpuCount')} CPUs, "
        f"{int(cfg.get('memorySize', 0)) >> 20} MB)")
    booted = False
    while True:
        if not booted and time.time() >= booted_at:
            say(f"[tart-sim] VM {name} booted, IP address {ip_of(name)}")
            booted = True
        while pending:
            if pending.pop(0) != signal.SIGUSR1:
                say(f"[tart-sim] VM {name} shut down")
                return 0
            if not suspendable:
                say(not_suspendable(name), err=True)
                continue
            say("pausing VM to take a snapshot...")
            atomic_write(d / STATE_FILE, json.dumps({"suspendedAt": time.time()}))
            say("snapshot created successfully! shutting down the VM...")
            return 0
        time.sleep(0.05)


# ---------------------------------------------------------------- parsing

class Parser(argparse.ArgumentParser):
    """argparse that fails like Swift ArgumentParser: message, usage, exit 64."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"Error: {message}\n{self.format_usage()}"
                         f"  See '{self.prog} --help' for more information.\n")
        sys.exit(EX_USAGE)


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


RUN_FLAGS = ("--no-graphics", "--graphics", "--suspendable", "--serial", "--no-audio",
             "--no-clipboard", "--recovery", "--vnc", "--vnc-experimental", "--net-softnet",
             "--net-host", "--capture-system-keys")
RUN_LISTS = ("--dir", "--disk", "--net-bridged")
RUN_OPTIONS = ("--serial-path", "--rosetta", "--net-softnet-allow")
FORMAT: Json = {"choices": ["text", "json"], "default": "text"}
ARGUMENTS: dict[str, list[ArgSpec]] = {  # subcommand -> add_argument calls
    "list": [(("--format",), FORMAT), (("--source",), {"choices": ["local", "oci"]}),
             (("-q", "--quiet"), {"action": "store_true"})],
    "get": [(("name",), {}), (("--format",), FORMAT)],
    "run": [(("name",), {}), *[((f,), {"action": "store_true"}) for f in RUN_FLAGS],
            *[((o,), {"action": "append", "default": []}) for o in RUN_LISTS],
            *[((o,), {}) for o in RUN_OPTIONS]],
    "stop": [(("name",), {}), (("-t", "--timeout"), {"type": non_negative, "default": 30})],
    "suspend": [(("name",), {})],
    "ip": [(("name",), {}), (("--wait",), {"type": non_negative, "default": 0}),
           (("--resolver",), {"choices": ["dhcp", "arp", "agent"], "default": "dhcp"})],
    "clone": [(("source_name",), {}), (("new_name",), {}),
              (("--insecure",), {"action": "store_true"}),
              (("--concurrency",), {"type": non_negative, "default": 4})],
    "delete": [(("name",), {})],
    "create": [(("name",), {}), (("--linux",), {"action": "store_true"}), (("--from-ipsw",), {}),
               (("--disk-size",), {"type": non_negative, "default": 50}),
               (("--disk-format",), {"choices": ["raw", "asif"], "default": "raw"})],
    "pull": [(("name",), {}), (("--insecure",), {"action": "store_true"})],
}


SUMMARIES = {  # subcommand -> its line in --help
    "list": "list local VMs and cached OCI images",
    "get": "show a local VM's settings and state",
    "run": "run a VM, blocking for its whole life (SIGINT stops it, SIGUSR1 suspends it)",
    "stop": "stop a running VM (SIGKILL after --timeout); discard a suspended state",
    "suspend": "suspend a VM run with --suspendable",
    "ip": "print a running VM's IP address (--wait S for it to boot)",
    "clone": "copy a local VM or an OCI image (pulled first) to a new local VM",
    "delete": "delete a local VM or a cached OCI image (not a running VM)",
    "create": "create an empty local VM (--linux or --from-ipsw)",
    "pull": "add an OCI image to the cache (instantly: no registry behind it)",
}
KNOBS = (  # environment variable -> what it does, for the --help epilog
    ("TART_HOME", "where VMs live (default ~/.tart), as for Tart"),
    ("TART_SIM_SEED=demo", "create demo VMs and an OCI image in an empty TART_HOME"),
    ("TART_SIM_VM_LIMIT=N", "running macOS guests allowed (default 2; 0: no limit)"),
    ("TART_SIM_VERSION=V", f"what --version prints (default {VERSION})"),
    ("TART_SIM_LIST_SHAPE=V", "list's JSON fields as Tart V printed them: 2.31 (default), 2.15, 1.7"),
    ("TART_SIM_DELAY=S", "sleep S seconds before every command"),
    ("TART_SIM_RUN_DELAY=S", "run waits S seconds before it takes the VM's lock"),
    ("TART_SIM_BOOT_DELAY=S", "a running VM has an IP address S seconds after it started"),
    ("TART_SIM_RUN_FAIL=MSG", "run fails with MSG (exit 1) before it takes the lock"),
    ("TART_SIM_HANG=CMDS", "these subcommands (comma-separated, or all) hang until killed"),
    ("TART_SIM_HANG_CHILD=PATH", "with TART_SIM_HANG: fork a child that hangs too; its pid to PATH"),
    ("TART_SIM_GARBAGE=CMDS", "these subcommands print garbage instead of their output"),
    ("TART_SIM_CALL_LOG=FILE", "append a line to FILE when each call starts and ends"),
)


def build_parser() -> Parser:
    """The command tree; `run` also accepts Tart's flags it doesn't model."""
    knobs = "\n".join(f"  {name:<24}{text}" for name, text in KNOBS)
    p = Parser(prog="tart", description="Tart simulator (VMs are simulated).",
               epilog=f"environment:\n{knobs}",
               formatter_class=argparse.RawDescriptionHelpFormatter)
    version = os.environ.get("TART_SIM_VERSION", VERSION)
    p.add_argument("--version", action="version", version=version)
    sub = p.add_subparsers(dest="command", metavar="<subcommand>")
    for command, arguments in ARGUMENTS.items():
        s = sub.add_parser(command, help=SUMMARIES[command])
        for names, options in arguments:
            s.add_argument(*names, **options)
    return p


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list, "get": cmd_get, "run": cmd_run, "stop": cmd_stop, "suspend": cmd_suspend,
    "ip": cmd_ip, "clone": cmd_clone, "delete": cmd_delete, "create": cmd_create, "pull": cmd_pull,
}


def subcommand_of(argv: list[str]) -> str:
    """The subcommand name the fault knobs match, before argparse sees argv."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return "version" if "--version" in argv else ""


def log_call(argv: list[str], started: float, end: str) -> None:
    """TART_SIM_CALL_LOG: one O_APPEND write per line, so lines never interleave."""
    path = os.environ.get("TART_SIM_CALL_LOG")
    if not path:
        return
    line = f"{os.getpid()} {started:.6f} {end} {shlex.join(argv)}\n".encode()
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def hang_with_a_child(pid_file: Path) -> None:
    """Fork a child that hangs until killed; the parent records its pid and returns."""
    child = os.fork()
    if child == 0:
        try:
            while True:
                time.sleep(3600)
        finally:
            os._exit(0)  # never run the parent's exit path (call log) in the child
    atomic_write(pid_file, f"{child}\n")


def dispatch(argv: list[str]) -> int:
    """Apply the global knobs, then parse and run one subcommand."""
    command = subcommand_of(argv)
    time.sleep(max(0.0, env_float("TART_SIM_DELAY")))
    maybe_seed()
    if knob_matches("TART_SIM_HANG", command):
        pid_file = os.environ.get("TART_SIM_HANG_CHILD")
        if pid_file:
            hang_with_a_child(Path(pid_file))
        while True:  # until killed
            time.sleep(3600)
    if knob_matches("TART_SIM_GARBAGE", command):
        say("tart-sim: <<garbage>> this is not JSON {{{ ]] \x01")
        return 0
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":  # run tolerates flags it doesn't model
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 0
    return COMMANDS[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Entry point: Tart-style error reporting and the optional call log."""
    argv = sys.argv[1:] if argv is None else argv
    started = time.time()
    log_call(argv, started, "start")
    try:
        return dispatch(argv)
    except TartError as e:
        say(str(e), err=True)
        return e.code
    except KeyboardInterrupt:
        return 130
    finally:
        log_call(argv, started, f"{time.time():.6f}")


if __name__ == "__main__":
    sys.exit(main())
