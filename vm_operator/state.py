"""What the operator remembers about the VMs it started: last run records and run logs.

They live on disk in the state directory, one folder per VM, so that they survive
a restart of the operator (and of its container, with a volume).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

LOG_TAIL_BYTES = 4 * 1024 * 1024
MAX_FOLDER_NAME = 200  # bytes; file systems allow 255


def folder_name(name: str) -> str:
    """One flat folder per VM name, never longer than a file name may be (255 bytes).

    quote() with safe="" maps '/', ':' and '%' too, so a valid name of 255 characters can
    quote to 765. Such a name keeps its first characters and gets the SHA-256 of the whole
    name after a '+', a character quote() always escapes: no other name has that folder.
    """
    folder = quote(name, safe="")
    if len(folder) <= MAX_FOLDER_NAME:
        return folder
    digest = hashlib.sha256(name.encode()).hexdigest()
    return f"{folder[:MAX_FOLDER_NAME - len(digest) - 1]}+{digest}"


class StateStore:
    """Per-VM files under one directory; names are percent-encoded into folder names."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # The operator is the only writer of its state directory: a record is read from disk
        # once (after a restart) and then kept current by write_last_run, so a read is a lookup.
        self._records: dict[str, dict[str, Any] | None] = {}

    def _dir(self, name: str) -> Path:
        return self.root / "vms" / folder_name(name)

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
        self._records[name] = dict(record)

    def read_last_run(self, name: str) -> dict[str, Any] | None:
        if name in self._records:
            return self._records[name]
        try:
            data = json.loads((self._dir(name) / "last_run.json").read_text())
        except (FileNotFoundError, ValueError):
            data = None
        record = data if isinstance(data, dict) else None
        self._records[name] = record
        return record
