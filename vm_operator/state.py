"""What the operator remembers about the VMs it started: last run records and run logs.

They live on disk in the state directory, one folder per VM, so that they survive
a restart of the operator (and of its container, with a volume).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

LOG_TAIL_BYTES = 4 * 1024 * 1024


class StateStore:
    """Per-VM files under one directory; names are percent-encoded into folder names."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # last_run.json per name: its path, and the record as of an (mtime, size, inode) stamp
        self._paths: dict[str, str] = {}
        self._records: dict[str, tuple[tuple[int, int, int], dict[str, Any] | None]] = {}

    def _dir(self, name: str) -> Path:
        # quote() with safe="" maps '/', ':' and '%' too: one flat folder per name.
        return self.root / "vms" / quote(name, safe="")

    def prepare_log(self, name: str) -> str:
        """Create (truncate) the log of a new run and return its path."""
        folder = self._dir(name)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / "run.log"
        path.write_bytes(b"")
        return str(path)

    def read_log(self, name: str) -> bytes | None:
        """The last run's output (its tail, when huge), or None when it never ran here."""
        path = self._dir(name) / "run.log"
        try:
            with path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - LOG_TAIL_BYTES))
                return log.read()
        except FileNotFoundError:
            return None

    def last_log_line(self, name: str) -> str:
        """The last non-empty line of the run log: Tart's message when ``tart run`` failed."""
        data = self.read_log(name) or b""
        lines = data[-8192:].decode("utf-8", errors="replace").splitlines()
        return next((line.strip() for line in reversed(lines) if line.strip()), "")[:1000]

    def write_last_run(self, name: str, record: dict[str, Any]) -> None:
        """Replace the last-run record atomically, so a reader never sees half of it."""
        folder = self._dir(name)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".last_run.")
        with os.fdopen(fd, "w") as out:
            json.dump(record, out)
        os.replace(tmp, folder / "last_run.json")

    def read_last_run(self, name: str) -> dict[str, Any] | None:
        """The record, parsed again only when the file changed (one stat per call)."""
        path = self._paths.get(name)
        if path is None:
            path = str(self._dir(name) / "last_run.json")
            if len(self._paths) < 4096:
                self._paths[name] = path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._records.get(name)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            with open(path) as f:
                data = json.loads(f.read())
        except (FileNotFoundError, ValueError):
            return None
        record = data if isinstance(data, dict) else None
        if len(self._records) < 4096:
            self._records[name] = (stamp, record)
        return record
