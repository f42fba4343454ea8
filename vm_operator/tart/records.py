"""Typed records of what Tart reports about its images and its home (pure, JSON-ready)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypedDict

ImageRefKind = Literal["tag", "digest"]


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
