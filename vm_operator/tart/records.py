"""The records Tart's output becomes (tart/parse.py builds them): JSON-ready, typed."""

from __future__ import annotations

from typing import TypedDict


class Vm(TypedDict):
    """A VM as ``tart list`` reports it, in any of its three shapes."""

    name: str
    source: str  # "local" or "oci"
    state: str  # "running", "suspended" or "stopped"
    status: str  # the same as state, kept for clients of the original API
    running: bool
    disk_gb: int
    size_gb: int
    accessed: str | None


class VmInfo(TypedDict):
    """The fields ``tart get`` adds for a local VM (all None for an OCI image)."""

    os: str | None
    cpu: int | None
    memory_mb: int | None
    disk_format: str | None
    display: str | None
