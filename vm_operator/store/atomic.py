"""Writing a file whole, the one way every record of the state directory is written.

Write a temporary file beside the target, fsync it, rename it over the target, fsync the
directory: a crash at any instant leaves the old file or the new one, never half of either,
and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_whole(path: Path, data: bytes, prefix: str = ".tmp.") -> None:
    """Replace ``path`` with ``data``, durably. Raises OSError from the file system."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """Make a rename or an unlink in ``directory`` durable (its entry itself)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
