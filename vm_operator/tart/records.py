"""The records Tart's output becomes (tart/parse.py builds them): JSON-ready, typed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

ImageRefKind = Literal["tag", "digest"]


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


class ImageJson(TypedDict):
    ref: str
    kind: ImageRefKind
    disk_gb: int
    size_gb: int
    accessed: str | None


@dataclass(frozen=True)
class Image:
    """One entry of Tart's OCI cache (``tart list --source oci``). Tart lists an image once by
    each tag that points at it and once by its digest: ``kind`` says which form ``ref`` is."""

    ref: str
    kind: ImageRefKind
    disk_gb: int
    size_gb: int
    accessed: str | None  # ISO 8601, as Tart 2.31 on prints it; None before

    def to_json(self) -> ImageJson:
        return {"ref": self.ref, "kind": self.kind, "disk_gb": self.disk_gb,
                "size_gb": self.size_gb, "accessed": self.accessed}


@dataclass(frozen=True)
class HostDisk:
    """The file system of the Tart home: ``path`` is the Tart home (``$TART_HOME`` or
    ``~/.tart``, which may not exist yet: then its nearest existing parent was measured)."""

    path: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class ExecResult:
    """How a guest command (``tart exec``) ended: its exit code and what it printed, each of
    stdout and stderr cut at a cap (``truncated``: either was)."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool
