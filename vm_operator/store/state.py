"""What the operator remembers about the VMs it started: last run records and run logs.

They live on disk in the state directory, one folder per VM, so that they survive
a restart of the operator (and of its container, with a volume)::

    <state dir>/vms/<percent-encoded name>/
        last_run.json             the record of the run that owns the VM (RunRecord)
        run.log                   that run's output
        run.1.log ... run.3.log   the output of earlier runs, newest first
        run.lock                  flock'ed by the live ``tart run`` (see tart/local.py)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast
from urllib.parse import quote, unquote

from vm_operator.store.atomic import write_whole

LOG_TAIL_BYTES = 4 * 1024 * 1024  # the most of a run log one answer holds
LOG_TAIL_LINES_MAX = 100_000  # the largest ?tail=N
LOG_GENERATIONS = 3  # earlier runs' logs kept beside run.log

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


class RunRecord(TypedDict):
    """``last_run``: one ``tart run`` the operator launched.

    ``exit_code_known`` is true once the run has ended and its exit code is known; it stays
    false while the run lives, and when the operator only saw that the run had ended (it
    ended while the operator was not running, or its process vanished without a code):
    then ``finished_at`` is when the operator noticed, and ``exit_code`` and ``error`` are null.
    """

    started_at: str
    pid: int
    suspendable: bool
    finished_at: str | None
    exit_code: int | None
    exit_code_known: bool
    error: str | None


class StateDirError(Exception):
    """The state directory cannot be used (written, or read past a missing file)."""

    def __init__(self, root: Path, reason: str) -> None:
        super().__init__(f"the state directory {root} cannot be used: {reason}")
        self.root = root
        self.reason = reason


@dataclass(frozen=True)
class LogTail:
    """What ``GET /vms/{name}/logs`` answers: the end of a run log, cut at a line boundary."""

    data: bytes
    size: int  # bytes in the whole log
    truncated: bool  # the byte limit cut what was asked for (the whole log, or N lines)

    @property
    def omitted(self) -> int:
        """Bytes of the log before ``data``."""
        return max(0, self.size - len(self.data))


def last_lines(data: bytes, count: int) -> tuple[bytes, bool]:
    """The last ``count`` lines of ``data`` and whether it held that many.

    A final line without a newline (output still being written) counts as a line.
    """
    if not data:
        return data, False
    pos = len(data) - 1 if data.endswith(b"\n") else len(data)
    for seen in range(count):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return data, seen == count - 1
    return data[pos + 1 :], True


def cut_tail(chunk: bytes, size: int, lines: int | None = None,
             limit: int = LOG_TAIL_BYTES) -> LogTail:
    """The answer to a log request, from the end of a log of ``size`` bytes.

    ``chunk`` is the log's last ``limit + 1`` bytes (all of it when shorter): the byte before
    the window tells whether the window starts at a line boundary. A window that starts
    mid-line drops that partial line, so an answer always starts at the start of a line (a
    single line longer than ``limit`` is therefore not served: the answer is empty).
    """
    window = chunk[-limit:] if limit > 0 else b""
    cut = size > len(window)
    if cut:
        before = chunk[-len(window) - 1 : -len(window)] if len(chunk) > len(window) else b""
        if before != b"\n":
            newline = window.find(b"\n")
            window = window[newline + 1 :] if newline >= 0 else b""
    if lines is None:
        return LogTail(window, size, cut)
    kept, complete = last_lines(window, lines)
    return LogTail(kept, size, cut and not complete)


def last_line(text: str) -> str:
    """The last non-empty line: Tart's message when ``tart run`` failed."""
    found = (line.strip() for line in reversed(text.splitlines()) if line.strip())
    return next(found, "")[:1000]


def normalize_record(data: object) -> RunRecord | None:
    """A record read from disk; one written before ``exit_code_known`` existed gets it."""
    if not isinstance(data, dict) or not isinstance(data.get("started_at"), str):
        return None
    if not isinstance(data.get("pid"), int):
        return None
    record = dict(data)
    record.setdefault("finished_at", None)
    record.setdefault("exit_code", None)
    record.setdefault("error", None)
    record.setdefault("suspendable", False)
    record.setdefault("exit_code_known", record["exit_code"] is not None)
    return cast(RunRecord, record)


class StateStore:
    """Per-VM files under one directory; names are percent-encoded into folder names.

    Every failure to write (or to read anything but a missing file) is a ``StateDirError``
    naming the directory: the API turns it into a 503, never a 500.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # The operator is the only writer of its state directory: a record is read from disk
        # once (after a restart) and then kept current by write_last_run, so a read is a lookup.
        self._records: dict[str, RunRecord | None] = {}
        self._writing = threading.Lock()  # a record is replaced by one writer at a time

    def _dir(self, name: str) -> Path:
        return self.root / "vms" / folder_name(name)

    def _error(self, exc: OSError) -> StateDirError:
        return StateDirError(self.root, exc.strerror or str(exc))

    def _folder(self, name: str) -> Path:
        folder = self._dir(name)
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise self._error(exc) from None
        return folder

    def check_writable(self, name: str) -> None:
        """Fail now, before anything is launched, when the VM's records cannot be written."""
        folder = self._folder(name)
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe.")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise self._error(exc) from None

    def prepare_log(self, name: str) -> str:
        """Keep the earlier runs' logs (run.log -> run.1.log -> ...), create an empty run.log
        for a new run, and return its path."""
        folder = self._folder(name)
        try:
            for generation in range(LOG_GENERATIONS, 0, -1):
                older = folder / ("run.log" if generation == 1 else f"run.{generation - 1}.log")
                if older.exists():
                    os.replace(older, folder / f"run.{generation}.log")
            path = folder / "run.log"
            path.write_bytes(b"")
        except OSError as exc:
            raise self._error(exc) from None
        return str(path)

    def run_lock_path(self, name: str) -> Path:
        return self._dir(name) / "run.lock"

    def open_run_lock(self, name: str) -> int:
        """A descriptor of the VM's run lock file (created when missing)."""
        path = self._folder(name) / "run.lock"
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise self._error(exc) from None

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        """The end of the current run's log (see ``cut_tail``), None when it never ran here."""
        path = self._dir(name) / "run.log"
        try:
            with path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - LOG_TAIL_BYTES - 1))
                chunk = log.read(LOG_TAIL_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(exc) from None
        return cut_tail(chunk, max(size, len(chunk)), lines)

    def read_log(self, name: str) -> bytes | None:
        """The current run's output (its tail, when huge), or None when it never ran here."""
        tail = self.tail_log(name)
        return None if tail is None else tail.data

    def last_log_line(self, name: str) -> str:
        """The last non-empty line of the run log: Tart's message when ``tart run`` failed."""
        try:
            tail = self.tail_log(name, 20)
        except StateDirError:
            return ""
        return last_line(tail.data[-8192:].decode("utf-8", errors="replace")) if tail else ""

    def write_last_run(self, name: str, record: RunRecord) -> None:
        """Replace the last-run record whole (write, fsync, rename): a reader never sees half
        of it. The record is kept in memory first, so the API tells the truth even when the
        disk refuses it (StateDirError)."""
        with self._writing:
            self._write(name, record)

    def finish_run(self, name: str, record: RunRecord) -> bool:
        """Write the finished ``record`` only while the VM's record is still that run's (the
        same pid and start), never over the record of a run launched after it ended."""
        with self._writing:
            current = self.read_last_run(name)
            if current is not None and (current["pid"], current["started_at"]) != (
                    record["pid"], record["started_at"]):
                return False
            self._write(name, record)
            return True

    def _write(self, name: str, record: RunRecord) -> None:
        self._records[name] = record.copy()
        folder = self._folder(name)
        try:
            write_whole(folder / "last_run.json", json.dumps(record).encode(), ".last_run.")
        except OSError as exc:
            raise self._error(exc) from None

    def forget(self, name: str) -> None:
        """Remove everything kept of a VM (its last run record and run logs): it was deleted.
        The folder is renamed away first, so no half-removed folder is ever read as the VM's."""
        with self._writing:
            self._records.pop(name, None)
            folder = self._dir(name)
            gone = self.root / f".forgotten-{secrets.token_hex(8)}"
            try:
                os.rename(folder, gone)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise self._error(exc) from None
        shutil.rmtree(gone, ignore_errors=True)

    def read_last_run(self, name: str) -> RunRecord | None:
        if name in self._records:
            return self._records[name]
        try:
            data = json.loads((self._dir(name) / "last_run.json").read_text())
        except (FileNotFoundError, ValueError):
            data = None
        except OSError as exc:
            raise self._error(exc) from None
        record = normalize_record(data)
        self._records[name] = record
        return record

    def unfinished_runs(self) -> list[tuple[str, RunRecord]]:
        """The records of runs that had not ended when the operator last saw them."""
        try:
            folders = sorted((self.root / "vms").iterdir())
        except OSError:
            return []
        found = []
        for folder in folders:
            name = unquote(folder.name)
            if quote(name, safe="") != folder.name:  # not a folder this store made
                continue
            try:
                record = self.read_last_run(name)
            except StateDirError:
                continue
            if record is not None and record["finished_at"] is None:
                found.append((name, record))
        return found
