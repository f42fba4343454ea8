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
- The guest ending by itself: a file `.tart-sim-guest-exit` in the VM's directory
  (holding an exit code, e.g. 0) makes its `run` end with that code at its next look
  (every 0.05 s), as `tart run` returns when the guest shuts down (0) or the VM
  fails (non-zero). The file is consumed.
- TART_SIM_HANG_CHILD=PATH, with TART_SIM_HANG: the hanging command first forks a
  child that hangs too (in its process group, holding its stdout/stderr) and writes
  the child's pid to PATH, so a test can tell whether a timeout killed the group.
- Pulls come from a small built-in registry (CATALOGUE); any other reference fails
  as a registry's 404 would. The OCI cache is laid out as Tart's: one directory per
  digest (`NAMESPACE/sha256:HEX`) and a symlink per tag, so `list` shows both forms.
  The demo seed's image is an older layout, a plain tag directory: it lists only by
  its tag, and counts as cached and linked.
- Pull progress runs on the real clock: TART_SIM_PULL_SECONDS for the whole disk,
  a percentage line at most every TART_SIM_PROGRESS_INTERVAL seconds (Tart: 1 s).
- Like Tart, `clone` does not print the `pulling REF...` line that `pull` prints,
  and a clone of a cached image prints nothing at all.
- The guest's address: each VM gets its own loopback address 127.A.B.C (from TART_HOME and
  its name; Linux routes all of 127/8 to the loopback interface; elsewhere 127.0.0.1), or
  TART_SIM_GUEST_IP for every VM. Never an address off this machine, so that whatever probes
  the guest (the operator's readiness check) only ever talks to loopback.
- The guest "boots": `ip` answers TART_SIM_BOOT_DELAY seconds after `run` took the lock, and
  TART_SIM_SSH_DELAY seconds after that the `run` process itself listens on the guest's
  address, port TART_SIM_GUEST_PORT (default 22, as a guest's sshd), and greets each
  connection with an SSH banner: the listener lives and dies with the run.
- Each local VM is its own directory, `$TART_HOME/vms/NAME/`, as Tart's: `clone` builds
  a new one in a temporary directory and moves it into place, `rename` moves it, nothing
  else replaces it (the operator tells VMs of one name apart by that directory's identity).
- No automatic pruning (TART_NO_AUTO_PRUNE, --prune-limit): the simulated disks take
  no space. Minimums Tart cannot read here (Virtualization.framework's): 1 CPU and
  128 MiB of memory.

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
import re
import shlex
import shutil
import signal
import socket
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
GUEST_EXIT_FILE = ".tart-sim-guest-exit"  # the guest ends by itself, with the code it holds
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
    """The guest's address: TART_SIM_GUEST_IP for every VM, else a loopback address of its own
    (127.A.B.C, never 127.0.0.x, stable for one TART_HOME and name) where Linux can listen on
    it, else 127.0.0.1."""
    fixed = os.environ.get("TART_SIM_GUEST_IP", "").strip()
    if fixed:
        return fixed
    if not sys.platform.startswith("linux"):
        return "127.0.0.1"
    bits = zlib.crc32(f"{tart_home()}\0{name}".encode())
    return f"127.{1 + bits % 254}.{bits >> 8 & 255}.{1 + (bits >> 16) % 254}"


def guest_port() -> int:
    """TART_SIM_GUEST_PORT: where the guest accepts connections (default 22, like sshd)."""
    text = os.environ.get("TART_SIM_GUEST_PORT", "").strip()
    try:
        port = int(text) if text else 22
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise TartError(f"TART_SIM_GUEST_PORT must be a port number (1-65535), not {text!r}", 1)
    return port


class GuestPort:
    """The booted guest's listening port (its "sshd"): accepts, greets, hangs up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock: socket.socket | None = None

    def open(self) -> None:
        address, port = ip_of(self.name), guest_port()
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(16)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            say(f"[tart-sim] VM {self.name}: the guest cannot listen on {address}:{port}: "
                f"{e.strerror or e}", err=True)
            return
        self.sock = sock
        say(f"[tart-sim] VM {self.name} accepts connections on {address}:{port}")

    def serve(self) -> None:
        """Answer every pending connection: the banner, then close."""
        while self.sock is not None:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # nothing pending (EAGAIN), or a connection already gone
                return
            with conn, contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(b"SSH-2.0-tart-sim\r\n")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


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


def tmp_root() -> Path:
    """Where Tart builds clones and pulls; entries nobody holds locked are garbage."""
    return tart_home() / "tmp"


def is_oci(name: str) -> bool:
    """Local names are plain; OCI names carry a host and path (`/`)."""
    return "/" in name


# Tart's grammar for remote names: host[:port]/namespace[:tag | @sha256:digest]
REF = re.compile(r"(?P<host>[A-Za-z0-9]+(?:[.-][A-Za-z0-9]+)*(?::[0-9]+)?)/"
                 r"(?P<namespace>[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*)"
                 r"(?::(?P<tag>[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*)|@(?P<digest>sha256:[0-9a-f]{64}))?")


class Ref:
    """A parsed OCI reference: by tag (default `latest`) or by digest."""

    def __init__(self, host: str, namespace: str, tag: str | None, digest: str | None) -> None:
        self.host, self.namespace = host, namespace
        self.tag = None if digest else tag or "latest"
        self.digest = digest

    @property
    def repo(self) -> str:
        return f"{self.host}/{self.namespace}"

    @property
    def name(self) -> str:
        """As Tart prints it: `host/namespace:tag` or `host/namespace@sha256:…`."""
        return f"{self.repo}@{self.digest}" if self.digest else f"{self.repo}:{self.tag}"

    def host_dir(self) -> Path:
        return oci_root() / self.host.replace(":", "%3A")  # Tart percent-encodes the port's `:`

    def path(self) -> Path:
        """The cache entry: a symlink for a tag, a directory for a digest."""
        return self.host_dir().joinpath(*self.namespace.split("/"), self.digest or str(self.tag))

    def by_digest(self, digest: str) -> Ref:
        return Ref(self.host, self.namespace, None, digest)


def parse_ref(name: str) -> Ref | None:
    match = REF.fullmatch(name)
    if match is None:
        return None
    return Ref(match["host"], match["namespace"], match["tag"], match["digest"])


def local_dir(name: str) -> Path:
    if not name or name.startswith(".") or "/" in name or "\0" in name:
        raise does_not_exist(name)
    return vms_root() / name


def local_exists(name: str) -> bool:
    """Like Tart's VMStorageLocal.exists: a plain name whose directory holds a VM."""
    try:
        return (local_dir(name) / "config.json").is_file()
    except TartError:
        return False


def existing(name: str, local_only: bool = True) -> Path:
    """The directory of an existing VM, or Tart's does-not-exist error."""
    if is_oci(name):
        ref = None if local_only else parse_ref(name)
        if ref is None:
            raise does_not_exist(name)
        d = ref.path()
    else:
        d = local_dir(name)
    if not (d / "config.json").is_file():
        raise does_not_exist(name)
    return d


def local_entries() -> list[tuple[str, Path]]:
    try:
        names = sorted(n for n in os.listdir(vms_root()) if not n.startswith("."))
    except FileNotFoundError:
        return []
    return [(n, vms_root() / n) for n in names]


def oci_entries(tags: bool = True) -> list[tuple[str, Path]]:
    """Every cached image, named as Tart lists it: tags (symlinks) as `repo:tag`, digest
    directories as `repo@sha256:…` (the seed's plain tag directory as `repo:tag`).
    tags=False: only the directories (what `prune` considers). Broken symlinks are skipped."""
    found: list[tuple[str, Path]] = []

    def walk(d: Path, repo: str) -> None:
        try:
            names = os.listdir(d)
        except OSError:
            return
        for n in names:
            p = d / n
            if n.startswith("."):
                continue
            link = p.is_symlink()
            if (p / "config.json").is_file():
                if link and not tags:
                    continue
                sep = "@" if n.startswith("sha256:") and not link else ":"
                found.append((f"{repo}{sep}{n}", p))
            elif not link and p.is_dir():
                walk(p, f"{repo}/{n}")

    try:
        hosts = [h for h in os.listdir(oci_root()) if not h.startswith(".")]
    except OSError:
        return []
    for host in hosts:  # a host holds namespaces only: never an entry of its own
        walk(oci_root() / host, host.replace("%3A", ":"))
    return sorted(found)


def mac_for(name: str) -> str:
    """A stable, locally administered MAC address per VM name."""
    h = name_hash(name)
    return "7e:" + ":".join(f"{(h >> (8 * i)) & 0xFF:02x}" for i in range(5))


def random_mac() -> str:
    """Like VZMACAddress.randomLocallyAdministered()."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFC) | 0x02  # unicast, locally administered
    return ":".join(f"{o:02x}" for o in octets)


def new_config(name: str, os_name: str, disk_gb: int, disk_format: str = "raw",
               cpu: int = 0, memory_mb: int = 0, used_gb: float = -1.0) -> Json:
    """A Tart-like config.json plus the simulator's size fields (no big files)."""
    h = name_hash(name)
    if not cpu:
        cpu, memory_mb = (4, 8192) if os_name == "darwin" else (2, 4096)
    if used_gb < 0:
        used_gb = disk_gb * (0.4 if os_name == "darwin" else 0.15) + (h % 1000) / 1000
    config: Json = {
        "version": 1, "os": os_name, "arch": "arm64",
        "cpuCountMin": cpu, "cpuCount": cpu,
        "memorySizeMin": memory_mb << 20, "memorySize": memory_mb << 20,
        "macAddress": mac_for(name), "display": {"width": 1024, "height": 768},
        "diskFormat": disk_format, "diskSize": disk_gb, "sizeOnDisk": round(used_gb, 3),
    }
    if os_name == "darwin":
        config["ecid"] = f"{h:016x}"  # the simulator's stand-in for the machine identifier
    return config


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
    """Populate a VM directory: config, empty disk and NVRAM markers, the access time."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(config, indent=2))
    (d / "disk.img").touch()
    (d / "nvram.bin").touch()
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


def replace_dir(source: Path, target: Path) -> None:
    """Move a finished directory into place, replacing whatever is there (Tart's
    FileManager.replaceItemAt): the old one is renamed away first, then removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
        return
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise
    old = target.parent / f".replaced-{target.name}-{os.getpid()}"
    if target.is_symlink() or not target.is_dir():
        os.unlink(target)
    else:
        os.rename(target, old)
    os.rename(source, target)
    shutil.rmtree(old, ignore_errors=True)


def write_config(path: Path, config: Json) -> None:
    """Rewrite config.json in place, as Tart does: a `tart run` holds its fcntl lock on
    this very file, so replacing the file would make a running VM look stopped. Padded
    with spaces to at least the old length, so a reader never sees a shorter file."""
    data = json.dumps(config, indent=2).encode()
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data.ljust(os.fstat(fd).st_size), 0)
    finally:
        os.close(fd)  # this process holds no lock on it, so none is lost


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
        d = tmp_root() / name if name else Path(tempfile.mkdtemp(prefix="", dir=tmp_root()))
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
                    shutil.rmtree(tmp_root() / n, ignore_errors=True)
                finally:
                    os.close(fd)


def gc_images(host_dir: Path) -> None:
    """Tart's OCI gc (for one registry host, under its lock): drop broken tag symlinks,
    then digest directories no tag points to, unless they were pulled by digest."""
    linked: set[str] = set()
    digests: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(host_dir):
        for n in dirnames + filenames:  # a broken symlink is listed among the files
            p = Path(dirpath) / n
            if p.is_symlink():
                if p.exists():
                    linked.add(os.path.realpath(p))
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(p)
            elif n.startswith("sha256:") and p.is_dir():
                digests.append(p)
        dirnames[:] = [n for n in dirnames
                       if not n.startswith("sha256:") and not (Path(dirpath) / n).is_symlink()]
    for p in digests:
        if os.path.realpath(p) not in linked and not (p / EXPLICITLY_PULLED).exists():
            shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------- the registry

class Image:
    """An image of the simulated registry (sizes in GB): what `tart pull` can fetch."""

    def __init__(self, repo: str, tags: tuple[str, ...], os_name: str, cpu: int,
                 memory_mb: int, disk_gb: int, compressed_gb: float, size_gb: float) -> None:
        self.repo, self.tags, self.os_name = repo, tags, os_name
        self.cpu, self.memory_mb, self.disk_gb = cpu, memory_mb, disk_gb
        self.compressed_gb, self.size_gb = compressed_gb, size_gb
        key = f"{repo}:{tags[0]}".encode()
        self.digest = "sha256:" + "".join(f"{zlib.crc32(bytes([i]) + key):08x}" for i in range(8))

    def config(self) -> Json:
        """The image's config.json: its minimums are its defaults, as Tart's images ship."""
        return new_config(f"{self.repo}@{self.digest}", self.os_name, self.disk_gb,
                          cpu=self.cpu, memory_mb=self.memory_mb, used_gb=self.size_gb)


CATALOGUE = (  # repository, tags, os, CPUs, memory MB, disk GB, compressed GB, size GB
    Image("ghcr.io/cirruslabs/macos-sequoia-base", ("latest",), "darwin", 4, 8192, 50, 25.3, 31.2),
    Image("ghcr.io/cirruslabs/macos-sonoma-base", ("latest",), "darwin", 4, 8192, 50, 23.8, 29.6),
    Image("ghcr.io/cirruslabs/macos-sequoia-xcode", ("latest",), "darwin", 4, 8192, 120, 58.4, 80.3),
    Image("ghcr.io/cirruslabs/ubuntu", ("jammy", "22.04"), "linux", 2, 2048, 20, 1.2, 3.4),
    Image("ghcr.io/cirruslabs/ubuntu", ("latest", "noble", "24.04"), "linux", 2, 2048, 20, 1.3, 3.6),
)
DEMO_OCI = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
EXPLICITLY_PULLED = ".explicitly-pulled"  # Tart's mark on an image pulled by its digest
MANIFEST_UNKNOWN = ('Error: UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404, '
                    'details: "{\\"errors\\":[{\\"code\\":\\"MANIFEST_UNKNOWN\\",'
                    '\\"message\\":\\"manifest unknown\\"}]}")')
REDRAW = "\x1b[1A\r\x1b[J"  # Tart's InteractiveConsoleLogger: up a line, column 0, erase down


def find_image(ref: Ref) -> Image | None:
    for image in CATALOGUE:
        if image.repo == ref.repo and (ref.tag in image.tags or ref.digest == image.digest):
            return image
    return None


def initialized(d: Path) -> bool:
    return (d / "config.json").is_file()


def fault_point() -> tuple[int | None, str | None]:
    """TART_SIM_PULL_FAIL=PCT:MSG / TART_SIM_PULL_HANG=PCT: where a pull stops, and its
    error message (None: it hangs there)."""
    pct, _, message = os.environ.get("TART_SIM_PULL_FAIL", "").partition(":")
    if pct.strip().isdigit():
        return min(100, int(pct)), message.strip() or "simulated pull failure"
    pct = os.environ.get("TART_SIM_PULL_HANG", "").strip()
    return (min(100, int(pct)), None) if pct.isdigit() else (None, None)


def progress_logged(value: int) -> None:
    """TART_SIM_PROGRESS_LOG: when each percentage was printed (wall clock), one O_APPEND
    write per line, so that a benchmark can tell how soon the operator shows it."""
    path = os.environ.get("TART_SIM_PROGRESS_LOG")
    if not path:
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{time.time():.6f} {value}\n".encode())
        finally:
            os.close(fd)


def show_progress() -> None:
    """Tart's ProgressObserver over the disk download: `0%`, then a line when the value
    changed, at most once per interval (and at once when finished); lines after the
    first redraw the previous one unless CI is set."""
    seconds = max(0.0, env_float("TART_SIM_PULL_SECONDS", 2.0))
    every = max(0.0, env_float("TART_SIM_PROGRESS_INTERVAL", 1.0))
    stop_at, failure = fault_point()
    redraw = "" if "CI" in os.environ else REDRAW
    say("0%")
    progress_logged(0)
    shown, started = 0, time.monotonic()
    last = started
    while True:
        if stop_at is not None and shown >= stop_at:
            if failure is not None:
                raise TartError(failure, 1)
            while True:  # TART_SIM_PULL_HANG: stalled until killed
                time.sleep(3600)
        if shown >= 100:
            return
        if seconds > 0:
            time.sleep(min(0.05, every) if every > 0 else 0.01)
        now = time.monotonic()
        value = 100 if seconds <= 0 else min(100, int(100 * (now - started) / seconds))
        if stop_at is not None:
            value = min(value, stop_at)
        if value != shown and (value == 100 or now - last >= every):
            say(f"{redraw}{value}%")
            progress_logged(value)
            shown, last = value, now


def download(image: Image, ref: Ref, target: Path) -> None:
    """Fetch an image into Tart's per-reference temporary directory, then move it into
    place: a pull killed midway leaves only that directory (gc'd later), never an entry."""
    tmp, lock = locked_tmp_dir(f"{name_hash(ref.name):016x}")  # reused after a killed pull
    try:
        (tmp / "config.json").write_text(json.dumps(image.config(), indent=2))
        say(f"pulling disk ({image.compressed_gb:.1f} GB compressed)...")
        show_progress()
        (tmp / "disk.img").touch()
        say("pulling NVRAM...")
        (tmp / "nvram.bin").touch()
        (tmp / "manifest.json").write_text(json.dumps({"schemaVersion": 2, "digest": image.digest}))
        touch_accessed(tmp)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(lock)


def linked(ref: Ref, digest_dir: Path) -> bool:
    """The tag's entry is (a symlink to) the digest's directory, or the seed's plain tag dir."""
    tag = ref.path()
    if tag.is_symlink():
        return os.path.realpath(tag) == os.path.realpath(digest_dir) and initialized(digest_dir)
    return initialized(tag)


def pull_image(ref: Ref) -> None:
    """Tart's VMStorageOCI.pull: manifest, then the disk with progress, NVRAM; a digest
    directory plus a tag symlink, under a lock per registry host."""
    say("pulling manifest...")
    image = find_image(ref)
    if image is None:
        raise TartError(MANIFEST_UNKNOWN, 1)
    digest_ref = ref.by_digest(image.digest)
    digest_dir = digest_ref.path()
    if ref.tag is not None and linked(ref, digest_dir):
        say(f"{digest_ref.name} image is already cached and linked!")
        return
    host = ref.host_dir()
    host.mkdir(parents=True, exist_ok=True)
    lock = lock_dir(host, "waiting for lock...")
    try:
        if not initialized(digest_dir):
            download(image, ref, digest_dir)
        else:
            say(f"{digest_ref.name} image is already cached! creating a symlink...")
        if ref.tag is not None:
            link = ref.path()
            if link.is_symlink() or link.is_file():
                os.unlink(link)
            elif link.is_dir():
                shutil.rmtree(link)
            os.symlink(digest_dir.name, link)  # relative: both sit in the namespace's directory
            gc_images(host)
        else:
            (digest_dir / EXPLICITLY_PULLED).touch()
        touch_accessed(digest_dir)
    finally:
        os.close(lock)


def seed_image(name: str) -> None:
    """The demo's cached image, instantly, as a plain tag directory (older layout)."""
    ref = parse_ref(name)
    image = find_image(ref) if ref else None
    if ref is None or image is None or initialized(ref.path()):
        return
    try:
        install_dir(ref.path(), lambda d: fill_vm(d, image.config()))
    except OSError as e:
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise


def maybe_seed() -> None:
    """TART_SIM_SEED=demo: create demo VMs once, race-safe via mkdtemp + rename."""
    if os.environ.get("TART_SIM_SEED") != "demo" or vms_root().exists():
        return
    home = tart_home()
    home.mkdir(parents=True, exist_ok=True)
    seed_image(DEMO_OCI)  # first, so whoever sees vms/ also sees the image
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
        "Display": f"{display.get('width', 1024)}x{display.get('height', 768)}"
                   f"{display.get('unit', '')}",
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
    """Create vms/NAME atomically; an existing VM is an error (`create`)."""
    target = local_dir(name)
    try:
        if target.exists():
            raise FileExistsError(errno.EEXIST, name)
        install_dir(target, fill)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise TartError(f'VM "{name}" already exists', 1)
        raise


def copy_vm(src: Path, dst: Path) -> None:
    """Tart's VMDirectory.clone: config, NVRAM, disk and any saved state; a fresh MAC
    address only when a local VM already uses the source's and it is not suspended."""
    cfg = read_json(src / "config.json")
    if cfg is None:
        raise does_not_exist(src.name)
    for item in ("disk.img", "nvram.bin", STATE_FILE):
        with contextlib.suppress(FileNotFoundError):
            shutil.copy2(src / item, dst / item)
    mac = cfg.get("macAddress")
    taken = any((read_json(d / "config.json") or {}).get("macAddress") == mac
                for _, d in local_entries())
    if taken and vm_state(src) != "suspended":
        cfg["macAddress"] = random_mac()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dst / STATE_FILE)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    touch_accessed(dst)


def cmd_clone(a: argparse.Namespace) -> int:
    """Tart's clone: pull an uncached OCI image first; copy in a locked temporary directory
    under the global lock on TART_HOME; move it into place, REPLACING an existing NEW."""
    if is_oci(a.new_name):
        raise UsageError("<new-name> should be a local name")
    if a.concurrency < 1:
        raise UsageError("network concurrency cannot be less than 1")
    ref = parse_ref(a.source_name) if is_oci(a.source_name) else None
    if ref is not None and not initialized(ref.path()):
        pull_image(ref)
    src = existing(a.source_name, local_only=False)
    touch_accessed(src)  # opening a VM updates its access date (what prune goes by)
    target = local_dir(a.new_name)
    tmp, tmp_lock = locked_tmp_dir()
    try:
        home_lock = lock_dir(tart_home())  # one clone (or `run` start) at a time
        try:
            copy_vm(src, tmp)
            time.sleep(max(0.0, env_float("TART_SIM_CLONE_SECONDS")))
            replace_dir(tmp, target)
        finally:
            os.close(home_lock)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(tmp_lock)
    return 0


def delete_local(name: str) -> None:
    """Tart's VMDirectory.delete: try the VM's lock; a held lock means it runs."""
    d = local_dir(name)
    try:
        fd = os.open(d / "config.json", os.O_RDWR)
    except (FileNotFoundError, NotADirectoryError):
        raise does_not_exist(name)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EAGAIN):
                raise TartError(f'VM "{name}" is running', 1)
            raise
        gone = d.parent / f".deleting-{d.name}-{os.getpid()}"
        try:  # rename away first so listings never see a half-deleted VM
            os.rename(d, gone)
        except FileNotFoundError:
            raise does_not_exist(name)
    finally:
        os.close(fd)
    shutil.rmtree(gone, ignore_errors=True)


def delete_image(name: str) -> None:
    """Remove a cached tag (a symlink) or digest (a directory), then what that orphans:
    a digest no tag points to any more (unless pulled by digest), tags pointing nowhere."""
    ref = parse_ref(name)
    path = ref.path() if ref else None
    if path is None or not (path.is_symlink() or path.is_dir()):
        raise does_not_exist(name)
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        os.unlink(path)
        siblings = [p for p in path.parent.iterdir() if p.is_symlink()]
        if (target.name.startswith("sha256:") and not (target / EXPLICITLY_PULLED).exists()
                and not any(os.path.realpath(p) == str(target) for p in siblings)):
            shutil.rmtree(target, ignore_errors=True)
    else:
        remove_tree(path)
        for p in path.parent.iterdir():
            if p.is_symlink() and not p.exists():
                with contextlib.suppress(OSError):
                    os.unlink(p)


def remove_tree(d: Path) -> None:
    """Rename away first so listings never see a half-deleted entry, then remove."""
    gone = d.parent / f".deleting-{d.name}-{os.getpid()}"
    try:
        os.rename(d, gone)
    except FileNotFoundError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def cmd_delete(a: argparse.Namespace) -> int:
    """Delete VMs or cached images in order, stopping at the first error (as Tart)."""
    for name in a.names:
        if is_oci(name):
            delete_image(name)
        else:
            delete_local(name)
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
    """Fill the OCI cache from the built-in registry, with Tart's progress output."""
    if a.concurrency < 1:
        raise UsageError("network concurrency cannot be less than 1")
    if local_exists(a.name):
        say(f'"{a.name}" is a local image, nothing to pull here!')
        return 0
    ref = parse_ref(a.name)
    if ref is None:
        raise TartError(f"failed to parse remote name: no viable alternative at input "
                        f"'{a.name}' (character 1)", 1)
    say(f"pulling {ref.name}...")
    pull_image(ref)
    return 0


VZ_MIN_CPUS = 1  # Virtualization.framework's minimumAllowedCPUCount
VZ_MIN_MEMORY = 128 << 20  # its minimumAllowedMemorySize (not readable here: an assumption)


def too_little(text: str) -> TartError:
    """Tart's LessThanMinimalResourcesError, as ArgumentParser reports it (exit 1)."""
    return TartError(f"Error: LessThanMinimalResourcesError: {text}", 1)


def parse_display(text: str) -> tuple[int, int, str | None]:
    """`WIDTHxHEIGHT[pt|px]`; like Tart, what doesn't parse counts as 0 (left unchanged)."""
    unit = None
    for suffix in ("px", "pt"):
        if text.endswith(suffix):
            text, unit = text[: -len(suffix)], suffix
            break
    parts = [int(p) if p.isdigit() else 0 for p in text.split("x")]
    return parts[0], parts[1] if len(parts) > 1 else 0, unit


def human_bytes(count: int) -> str:
    """Like Foundation's ByteCountFormatter (file style: decimal units)."""
    if count == 0:
        return "Zero KB"
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if count >= size:
            return f"{count / size:.2f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{count} bytes"


def cmd_set(a: argparse.Namespace) -> int:
    """Tart's set: edit a local VM's config (running or not: it applies at the next run);
    resources checked against the image's minimums; the disk only grows, checked last."""
    d = existing(a.name)
    path = d / "config.json"
    cfg = read_json(path)
    if cfg is None:
        raise does_not_exist(a.name)
    darwin = cfg.get("os", "darwin") == "darwin"
    if a.cpu is not None:
        minimum = int(cfg.get("cpuCountMin", VZ_MIN_CPUS))
        if darwin and a.cpu < minimum:
            raise too_little(f"VM should have {minimum} CPU cores at minimum (requested {a.cpu})")
        if a.cpu < VZ_MIN_CPUS:
            raise too_little(f"VM should have {VZ_MIN_CPUS} CPU cores at minimum "
                             f"(requested {a.cpu})")
        cfg["cpuCount"] = a.cpu
    if a.memory is not None:
        wanted, minimum = a.memory << 20, int(cfg.get("memorySizeMin", VZ_MIN_MEMORY))
        if darwin and wanted < minimum:
            raise too_little(f"VM should have {minimum} bytes of memory at minimum "
                             f"(requested {wanted})")
        if wanted < VZ_MIN_MEMORY:
            raise too_little(f"VM should have {VZ_MIN_MEMORY} bytes of memory at minimum "
                             f"(requested {wanted})")
        cfg["memorySize"] = wanted
    if a.display is not None:
        width, height, unit = parse_display(a.display)
        display = dict(cfg.get("display") or {"width": 1024, "height": 768})
        display.update({k: v for k, v in (("width", width), ("height", height)) if v > 0})
        display.pop("unit", None)
        if unit:
            display["unit"] = unit
        cfg["display"] = display
    cfg.pop("displayRefit", None)  # Tart sets it from the flag, absent when not given
    if a.display_refit is not None:
        cfg["displayRefit"] = a.display_refit
    if a.random_mac:
        cfg["macAddress"] = random_mac()
    if a.random_serial and darwin:
        cfg["ecid"] = os.urandom(8).hex()
    write_config(path, cfg)
    touch_accessed(d)
    if a.disk is not None:
        try:
            shutil.copyfile(a.disk, d / "disk.img")
        except OSError as e:
            raise TartError(f"{a.disk}: {e.strerror}", 1)
    if a.disk_size is not None:
        current, wanted = int(cfg.get("diskSize", 0)) * 10**9, a.disk_size * 10**9
        if wanted < current:
            first = "New" if cfg.get("diskFormat") == "asif" else "new"
            raise TartError(f"{first} disk size of {human_bytes(wanted)} should be larger than "
                            f"the current disk size of {human_bytes(current)}", 1)
        if wanted > current:
            cfg["diskSize"] = a.disk_size
            write_config(path, cfg)
    return 0


def cmd_rename(a: argparse.Namespace) -> int:
    """Tart's rename: local VMs only; refuses a missing source and an existing target."""
    if is_oci(a.new_name):
        raise UsageError("<new-name> should be a local name")
    if not local_exists(a.name):
        raise UsageError(f"failed to rename a non-existent local VM: {a.name}")
    if local_exists(a.new_name):
        raise UsageError(f"failed to rename VM {a.name}, target VM {a.new_name} already exists, "
                         "delete it first!")
    replace_dir(local_dir(a.name), local_dir(a.new_name))
    return 0


def allocated_bytes(d: Path) -> int:
    return int(float((read_json(d / "config.json") or {}).get("sizeOnDisk", 0)) * 10**9)


def prunables(entries: str) -> list[tuple[str, Path]]:
    """Cached images (directories, not tags) or the local VMs that are not running."""
    if entries == "caches":
        return oci_entries(tags=False)
    return [(n, d) for n, d in local_entries() if lock_holder(d / "config.json") is None]


def prune_one(entries: str, name: str, d: Path) -> None:
    if entries == "caches":
        remove_tree(d)  # like Tart, no gc here: its tags stop listing (they point nowhere)
    else:
        delete_local(name)


def cmd_prune(a: argparse.Namespace) -> int:
    """Tart's prune: entries last accessed --older-than DAYS ago, then the least recently
    accessed ones that don't fit --space-budget GB (GiB, as Tart computes it)."""
    if a.older_than is None and a.space_budget is None:
        raise UsageError("at least one pruning criteria must be specified")
    if a.entries not in ("caches", "vms"):
        raise UsageError('unsupported --entries value, please specify either "caches" or "vms"')
    if a.older_than is not None:
        cutoff = time.time() - a.older_than * 86400
        for name, d in prunables(a.entries):
            if accessed(d) <= cutoff:
                prune_one(a.entries, name, d)
    if a.space_budget is not None:
        budget = a.space_budget << 30
        doomed = []
        for name, d in sorted(prunables(a.entries), key=lambda e: accessed(e[1]), reverse=True):
            size = allocated_bytes(d)
            if size <= budget:
                budget -= size
            else:
                doomed.append((name, d))
        for name, d in doomed:
            prune_one(a.entries, name, d)
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
    guest_port()  # a bad TART_SIM_GUEST_PORT fails the run before it takes the lock
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
    listens_at = booted_at + max(0.0, env_float("TART_SIM_SSH_DELAY"))
    guest = GuestPort(name)
    try:
        return guest_life(name, d, suspendable, pending, booted_at, listens_at, guest)
    finally:
        guest.close()


def guest_life(name: str, d: Path, suspendable: bool, pending: list[int], booted_at: float,
               listens_at: float, guest: GuestPort) -> int:
    """Boot (an IP address), listen (the guest's port), then wait for signals."""
    booted = listening = False
    while True:
        if not booted and time.time() >= booted_at:
            say(f"[tart-sim] VM {name} booted, IP address {ip_of(name)}")
            booted = True
        if booted and not listening and time.time() >= listens_at:
            guest.open()
            listening = True
        guest.serve()
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
        code = guest_exit(d)
        if code is not None:
            say(f"[tart-sim] VM {name} shut down by its guest" if code == 0 else
                f"[tart-sim] VM {name} stopped with an error (exit {code})", err=code != 0)
            return code
        time.sleep(0.05)


def guest_exit(d: Path) -> int | None:
    """The exit code the test asked this VM's guest to end with (consuming the request)."""
    path = d / GUEST_EXIT_FILE
    try:
        text = path.read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if not text.strip():
        return None  # being written
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        return int(text.strip()) & 0xFF
    except ValueError:
        return 1


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


def uint16(text: str) -> int:
    value = non_negative(text)
    if value > 0xFFFF:
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
              (("--concurrency",), {"type": non_negative, "default": 4}),
              (("--prune-limit",), {"type": non_negative, "default": 100})],
    "delete": [(("names",), {"nargs": "+", "metavar": "name"})],
    "create": [(("name",), {}), (("--linux",), {"action": "store_true"}), (("--from-ipsw",), {}),
               (("--disk-size",), {"type": non_negative, "default": 50}),
               (("--disk-format",), {"choices": ["raw", "asif"], "default": "raw"})],
    "pull": [(("name",), {}), (("--insecure",), {"action": "store_true"}),
             (("--concurrency",), {"type": non_negative, "default": 4})],
    "set": [(("name",), {}), (("--cpu",), {"type": uint16}), (("--memory",), {"type": non_negative}),
            (("--display",), {}),
            (("--display-refit",), {"action": "store_const", "const": True}),
            (("--no-display-refit",), {"action": "store_const", "const": False,
                                       "dest": "display_refit"}),
            (("--random-mac",), {"action": "store_true"}),
            (("--random-serial",), {"action": "store_true"}),
            (("--disk",), {}), (("--disk-size",), {"type": uint16})],
    "rename": [(("name",), {}), (("new_name",), {})],
    "prune": [(("--entries",), {"default": "caches"}),
              (("--older-than",), {"type": non_negative}),
              (("--space-budget",), {"type": non_negative})],
}


SUMMARIES = {  # subcommand -> its line in --help
    "list": "list local VMs and cached OCI images",
    "get": "show a local VM's settings and state",
    "run": "run a VM, blocking for its whole life (SIGINT stops it, SIGUSR1 suspends it)",
    "stop": "stop a running VM (SIGKILL after --timeout); discard a suspended state",
    "suspend": "suspend a VM run with --suspendable",
    "ip": "print a running VM's IP address (--wait S for it to boot)",
    "clone": "copy a local VM or an OCI image (pulled first) to a new local VM; replaces NEW",
    "delete": "delete local VMs (not a running one) or cached OCI images",
    "create": "create an empty local VM (--linux or --from-ipsw)",
    "pull": "pull an OCI image of the built-in registry into the cache, with progress",
    "set": "change a local VM's CPUs, memory, display, MAC, serial, disk size (grow only)",
    "rename": "rename a local VM",
    "prune": "remove least recently accessed cached images (or --entries vms)",
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
    ("TART_SIM_SSH_DELAY=S", "its guest accepts connections S seconds after it has an IP"),
    ("TART_SIM_GUEST_IP=ADDR", "every guest's IP (default: one loopback 127.A.B.C per VM)"),
    ("TART_SIM_GUEST_PORT=N", "the port a booted guest listens on (default 22, as sshd)"),
    ("TART_SIM_RUN_FAIL=MSG", "run fails with MSG (exit 1) before it takes the lock"),
    ("TART_SIM_HANG=CMDS", "these subcommands (comma-separated, or all) hang until killed"),
    ("TART_SIM_HANG_CHILD=PATH", "with TART_SIM_HANG: fork a child that hangs too; its pid to PATH"),
    ("TART_SIM_GARBAGE=CMDS", "these subcommands print garbage instead of their output"),
    ("TART_SIM_CALL_LOG=FILE", "append a line to FILE when each call starts and ends"),
    ("TART_SIM_PULL_SECONDS=S", "a pull's disk download takes S seconds (default 2)"),
    ("TART_SIM_PROGRESS_INTERVAL=S", "a pull prints a percentage at most every S s (default 1)"),
    ("TART_SIM_PULL_FAIL=PCT:MSG", "pulls fail with MSG (exit 1) once PCT% was printed"),
    ("TART_SIM_PULL_HANG=PCT", "pulls stall at PCT% until killed"),
    ("TART_SIM_CLONE_SECONDS=S", "clone holds Tart's global lock S seconds while it copies"),
    ("TART_SIM_PROGRESS_LOG=FILE", "append 'TIME PERCENT' to FILE when a pull prints a percentage"),
    ("CI", "as for Tart: set (to anything), progress lines are plain, no terminal redraws"),
)


def build_parser() -> Parser:
    """The command tree; `run` also accepts Tart's flags it doesn't model."""
    knobs = "\n".join(f"  {name:<30}{text}" for name, text in KNOBS)
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
    "set": cmd_set, "rename": cmd_rename, "prune": cmd_prune,
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
    if args.command not in ("pull", "clone"):  # as Tart: those two may own tmp/ entries
        gc_tmp()
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
