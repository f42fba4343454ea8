"""What Tart shows: `tart list` (in the shape of the Tart version asked for), `tart get` and
`tart ip`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .errors import TartError
from .files import ago, iso, read_json, say
from .knobs import current
from .locks import lock_holder, vm_state
from .storage import RUNTIME_FILE, accessed, existing, ip_of, local_entries, oci_entries

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every call
if TYPE_CHECKING:
    from .files import Json


SHAPES = {
    "2.31": ["Source", "Name", "Disk", "Size", "Accessed", "Running", "State"],
    "2.15": ["Source", "Name", "Disk", "Size", "SizeOnDisk", "Running", "State"],
    "1.7": ["Source", "Name", "Disk", "Size", "Running"],
}


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
    keys = SHAPES.get(current().list_shape, SHAPES["2.31"])
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
