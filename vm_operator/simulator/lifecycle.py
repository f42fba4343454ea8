"""Making and removing VMs and images: clone, delete, create, pull, set, rename, prune."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .errors import TartError, UsageError, does_not_exist
from .files import read_json, rmtree, say
from .knobs import current
from .locks import lock_config, lock_dir, lock_holder, locked_tmp_dir, vm_state
from .registry import EXPLICITLY_PULLED, initialized, pull_image
from .storage import (
    STATE_FILE,
    accessed,
    existing,
    fill_vm,
    install_dir,
    is_oci,
    local_dir,
    local_entries,
    local_exists,
    new_config,
    oci_entries,
    parse_ref,
    random_mac,
    replace_dir,
    tart_home,
    touch_accessed,
    write_config,
)


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
            time.sleep(max(0.0, current().clone_seconds))
            replace_dir(tmp, target)
        finally:
            os.close(home_lock)
    except BaseException:
        rmtree(tmp)
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
        if not lock_config(fd):
            raise TartError(f'VM "{name}" is running', 1)
        gone = d.parent / f".deleting-{d.name}-{os.getpid()}"
        try:  # rename away first so listings never see a half-deleted VM
            os.rename(d, gone)
        except FileNotFoundError:
            raise does_not_exist(name)
    finally:
        os.close(fd)
    rmtree(gone)


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
            rmtree(target)
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
    rmtree(gone)


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
