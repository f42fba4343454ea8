"""Where Tart keeps things under ``$TART_HOME``: local VMs (``vms/NAME``), the OCI cache
(``cache/OCIs``, by host, namespace, tag and digest) and temporary directories (``tmp``); VM
directories made, moved and read as Tart does; and each guest's address (``ip_of``), which
follows from TART_HOME and the VM's name."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from .errors import TartError, does_not_exist
from .files import make_temp_dir, name_hash, rmtree
from .knobs import current

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every call
if TYPE_CHECKING:
    from .files import Json


STATE_FILE = "state.vzvmsave"  # Tart's suspended-state file name
RUNTIME_FILE = ".tart-sim-run.json"  # pid etc. of `run`; trusted only while locked
ACCESSED_FILE = ".tart-sim-accessed"  # its mtime is the VM's "Accessed" time
GUEST_EXIT_FILE = ".tart-sim-guest-exit"  # the guest ends by itself, with the code it holds
RUN_GATE_FILE = ".tart-sim-run-gate"  # while it exists, `run` waits before it takes the lock


def tart_home() -> Path:
    return Path(current().tart_home or Path.home() / ".tart")


def ip_of(name: str) -> str:
    """The guest's address: TART_SIM_GUEST_IP for every VM, else a loopback address of its own
    (127.A.B.C, never 127.0.0.x, stable for one TART_HOME and name) where Linux can listen on
    it, else 127.0.0.1."""
    fixed = current().guest_ip
    if fixed:
        return fixed
    if not sys.platform.startswith("linux"):
        return "127.0.0.1"
    bits = zlib.crc32(f"{tart_home()}\0{name}".encode())
    return f"127.{1 + bits % 254}.{bits >> 8 & 255}.{1 + (bits >> 16) % 254}"


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
    tmp = make_temp_dir(target.parent, ".tmp-")
    try:
        fill(tmp)
        os.rename(tmp, target)  # fails if the target exists and is not empty
    except BaseException:
        rmtree(tmp)
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
    rmtree(old)


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
