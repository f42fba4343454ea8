"""Tart's output as the operator's records: pure functions over the text Tart prints.

``tart list --format json`` has had three shapes across Tart versions (see TART_FACTS.md); all
of them are read here, and anything else is a ``TartBadOutput``. This is where the raw JSON
(``Any``) ends: what leaves this module is typed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from vm_operator.tart.errors import TartBadOutput
from vm_operator.tart.records import HostDisk, Image, Vm, VmInfo
from vm_operator.vocabulary import VM_SOURCES, VM_STATES

# --- parsing (pure) ---------------------------------------------------------


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise TartBadOutput(f"{what} did not print JSON") from None


def _int_field(raw: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TartBadOutput(f"{key!r} is not a number in Tart's output")
    return int(value)


def _state_of(raw: Mapping[str, Any]) -> str:
    """Tart before 1.8 had no ``State``: derive it from ``Running`` as Tart itself did."""
    state = raw.get("State")
    if isinstance(state, str) and state.lower() in VM_STATES:
        return state.lower()
    if state is not None:
        raise TartBadOutput(f"unknown VM state {state!r} in Tart's output")
    running = raw.get("Running")
    if not isinstance(running, bool):
        raise TartBadOutput("neither 'State' nor 'Running' in Tart's output")
    return "running" if running else "stopped"


def normalize_vm(raw: Any) -> Vm:
    """Map one entry of ``tart list --format json`` (any of its three shapes) to the API's VM."""
    if not isinstance(raw, dict) or not isinstance(raw.get("Name"), str):
        raise TartBadOutput("a 'tart list' entry has no name")
    source = str(raw.get("Source", "local")).lower()
    if source not in VM_SOURCES:
        raise TartBadOutput(f"unknown VM source {raw.get('Source')!r} in Tart's output")
    state = _state_of(raw)
    accessed = raw.get("Accessed")
    return {
        "name": raw["Name"],
        "source": source,
        "state": state,
        "status": state,
        "running": state == "running",
        "disk_gb": _int_field(raw, "Disk", 0),
        "size_gb": _int_field(raw, "Size", 0),
        "accessed": accessed if isinstance(accessed, str) else None,
    }


def parse_vm_list(text: str) -> list[Vm]:
    """Parse ``tart list --format json``; unknown keys are ignored, missing ones are errors."""
    data = _load_json(text, "'tart list'")
    if not isinstance(data, list):
        raise TartBadOutput("'tart list' did not print a JSON array")
    return [normalize_vm(entry) for entry in data]


def parse_image_list(text: str) -> list[Image]:
    """Parse ``tart list --source oci --format json``: the OCI cache, one entry per reference
    (a tag, or a digest: ``…@sha256:…``). Local entries, should any appear, are skipped."""
    return [image_of(vm) for vm in parse_vm_list(text) if vm["source"] == "oci"]


def image_of(vm: Vm) -> Image:
    """An OCI entry of ``tart list`` as a cached image: its reference is a tag or a digest."""
    ref = vm["name"]
    return Image(ref=ref, kind="digest" if "@" in ref else "tag", disk_gb=vm["disk_gb"],
                 size_gb=vm["size_gb"], accessed=vm["accessed"])


# df -Pk's data line: ... 1024-blocks used available capacity% mount point
_DF_LINE = re.compile(r"\s(\d+)\s+(\d+)\s+(\d+)\s+\d+%\s")


def parse_disk(text: str) -> HostDisk:
    """The remote disk script's answer: the Tart home on one line, then ``df -Pk``'s data line
    (the file system's name and mount point may hold spaces: the numbers are found between)."""
    home, _, line = text.partition("\n")
    match = _DF_LINE.search(" " + line.strip() + " ")
    if not home.strip() or match is None:
        raise TartBadOutput("the disk space of the Tart home could not be read (df printed "
                            "something unexpected)")
    total, _used, free = (int(group) * 1024 for group in match.groups())
    return HostDisk(path=home.strip(), total_bytes=total, free_bytes=free)


def parse_vm_info(text: str) -> VmInfo:
    """Parse ``tart get NAME --format json`` into the detail fields the API adds to a VM."""
    raw = _load_json(text, "'tart get'")
    if not isinstance(raw, dict):
        raise TartBadOutput("'tart get' did not print a JSON object")
    memory = raw.get("Memory")
    return {
        "os": raw.get("OS"),
        "cpu": _int_field(raw, "CPU") if "CPU" in raw else None,
        "memory_mb": _int_field(raw, "Memory") if memory is not None else None,
        "disk_format": raw.get("DiskFormat"),
        "display": raw.get("Display"),
    }


def parse_version(text: str) -> str:
    """``tart --version`` prints one line such as ``2.31.0``."""
    version = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not version or len(version) > 64:
        raise TartBadOutput("'tart --version' printed no version")
    return version


def parse_ip(text: str) -> str:
    """``tart ip`` prints one IPv4 address; anything else is not Tart's answer."""
    line = text.strip()
    try:
        return str(ipaddress.ip_address(line))
    except ValueError:
        raise TartBadOutput("'tart ip' did not print an IP address") from None


def error_message(stderr: str, exit_code: int) -> str:
    """The last non-empty line Tart printed on stderr is its message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return f"tart exited with code {exit_code} and printed nothing"
    return lines[-1][:1000]
