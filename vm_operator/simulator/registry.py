"""The simulated registry and the OCI cache: a small built-in catalogue of images, pulls with
Tart's progress output, and the demo seed."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
import zlib
from pathlib import Path

from .agent import AGENT_KEY
from .errors import TartError
from .files import make_temp_dir, name_hash, rmtree, say
from .knobs import current
from .locks import lock_dir, locked_tmp_dir
from .storage import (
    Ref,
    fill_vm,
    install_dir,
    new_config,
    parse_ref,
    replace_dir,
    tart_home,
    touch_accessed,
    vms_root,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every call
if TYPE_CHECKING:
    from .files import Json


DEMO_LOCAL = [  # name, os, disk GB, seconds since last access
    ("macos-sequoia-base", "darwin", 50, 180),
    ("macos-sonoma-xcode", "darwin", 100, 7200),
    ("ubuntu-runner", "linux", 20, 3 * 86400),
]


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
            rmtree(p)


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
        config = new_config(f"{self.repo}@{self.digest}", self.os_name, self.disk_gb,
                            cpu=self.cpu, memory_mb=self.memory_mb, used_gb=self.size_gb)
        if self.repo.endswith("-vanilla"):  # Cirrus Labs' vanilla images have no guest agent
            config[AGENT_KEY] = False
        return config


CATALOGUE = (  # repository, tags, os, CPUs, memory MB, disk GB, compressed GB, size GB
    Image("ghcr.io/cirruslabs/macos-sequoia-base", ("latest",), "darwin", 4, 8192, 50, 25.3, 31.2),
    Image("ghcr.io/cirruslabs/macos-sonoma-base", ("latest",), "darwin", 4, 8192, 50, 23.8, 29.6),
    Image("ghcr.io/cirruslabs/macos-sequoia-vanilla", ("latest",), "darwin", 4, 8192, 50, 12.1,
          15.4),
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
    pct, _, message = current().pull_fail.partition(":")
    if pct.strip().isdigit():
        return min(100, int(pct)), message.strip() or "simulated pull failure"
    pct = current().pull_hang
    return (min(100, int(pct)), None) if pct.isdigit() else (None, None)


def progress_logged(value: int) -> None:
    """TART_SIM_PROGRESS_LOG: when each percentage was printed (wall clock), one O_APPEND
    write per line, so that a benchmark can tell how soon the operator shows it."""
    path = current().progress_log
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
    knobs = current()
    seconds = max(0.0, knobs.pull_seconds)
    every = max(0.0, knobs.progress_interval)
    stop_at, failure = fault_point()
    redraw = "" if knobs.ci else REDRAW
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
        rmtree(tmp)
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


def seed_demo() -> None:
    """Create the demo VMs (TART_SIM_SEED=demo), race-safe via mkdtemp + rename: of calls
    made at once, one makes vms/ and the others leave it."""
    home = tart_home()
    home.mkdir(parents=True, exist_ok=True)
    seed_image(DEMO_OCI)  # first, so whoever sees vms/ also sees the image
    tmp = make_temp_dir(home, ".seed-")
    try:
        now = time.time()
        for name, os_name, disk, age in DEMO_LOCAL:
            fill_vm(tmp / name, new_config(name, os_name, disk), now - age)
        with contextlib.suppress(OSError):  # another invocation won the race
            os.rename(tmp, vms_root())
    finally:
        rmtree(tmp)
