"""The audit log: ``<state dir>/audit.jsonl``, one JSON object per line, rotated by size.

Each line goes out in one ``write`` to a file opened with ``O_APPEND`` and is fsync'ed before
the request's answer counts as audited: a crash of the operator never leaves half a line
(the kernel has the whole write), and a line that was answered survives a power loss. A
file found ending in a partial line (a power loss during a write) is cut back to its last
whole line when the operator opens it. Past ``max_bytes`` the file becomes ``audit.1.jsonl``
(the earlier ones ``audit.2.jsonl`` … up to ``keep``, the oldest removed) and a new one begins.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path

AUDIT_FILE = "audit.jsonl"
MAX_BYTES = 10 * 1024 * 1024
KEEP = 5  # rotated files kept


def rotated_name(index: int) -> str:
    return f"audit.{index}.jsonl"


class AuditLog:
    def __init__(self, directory: str | os.PathLike[str], max_bytes: int = MAX_BYTES,
                 keep: int = KEEP) -> None:
        self.directory = Path(directory)
        self.path = self.directory / AUDIT_FILE
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> int:
        if self._fd is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            size = os.fstat(fd).st_size
            if size:
                size = _whole_lines(self.path, fd, size)
            self._fd, self._size = fd, size
        return self._fd

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for index in range(self.keep - 1, 0, -1):
            older = self.directory / rotated_name(index)
            if older.exists():
                os.replace(older, self.directory / rotated_name(index + 1))
        os.replace(self.path, self.directory / rotated_name(1))

    def write(self, record: Mapping[str, object]) -> None:
        """Append one line, whole, rotating first when it would take the file past its bound.
        An error of the disk is the caller's (OSError)."""
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        with self._lock:
            fd = self._open()
            if self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
                fd = self._open()
            written = os.write(fd, line)
            os.fsync(fd)
            self._size += written

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _whole_lines(path: Path, fd: int, size: int) -> int:
    """Cut a partial last line (a write a power loss interrupted): the size kept."""
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    if tail.endswith(b"\n"):
        return size
    cut = tail.rfind(b"\n")
    keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= 65536 else size)
    os.ftruncate(fd, keep)
    return keep
