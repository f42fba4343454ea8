"""The operations' records on disk, so that they survive a restart of the operator::

    <directory>/<operation id>.json    {"format": 1, "seq": N, "operation": {...}}

One file per operation, each written whole (write, fsync, rename, fsync the directory): a crash
at any instant leaves every record parseable, either as it was or as it became. A crash may leave
a temporary ``.tmp-*`` file beside them; ``load`` removes those.

At start-up ``load`` returns the operations; those that were queued or running when the operator
stopped become ``failed`` ("interrupted by a restart"), and each is handed to ``on_interrupted``
first (the lifecycle layer removes what a half-done create left behind). A record is rewritten
only after its callback returned, so a crash or a failing callback means it is tried again at the
next start.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, TypedDict, TypeVar, get_args, get_origin, get_type_hints

from vm_operator.store.atomic import sync_directory, write_whole
from vm_operator.store.operation_records import (
    JSON_FIELDS,
    Operation,
    OperationError,
    OperationErrorJson,
    OperationEvent,
    OperationJson,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

FORMAT = 1
INTERRUPTED = OperationError("interrupted", "interrupted by a restart")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TMP_PREFIX = ".tmp-"


class BadRecord(ValueError):
    """A record file that is not a valid operation record."""


class StoredOperation(TypedDict):
    format: int
    seq: int
    operation: OperationJson[OperationErrorJson]


@dataclass(frozen=True)
class Loaded:
    """What ``load`` found: the operations in submission order, and the records it could not
    read (left in place, named in the log)."""

    operations: list[Operation]
    unreadable: list[Path]


class OperationStore:
    """One directory of operation records. ``record`` is the listener for an OperationQueue."""

    def __init__(self, directory: Path, now: Callable[[], str]) -> None:
        self.directory = directory
        self._now = now
        self._lock = threading.Lock()

    def load(self, on_interrupted: Callable[[Operation], None] | None = None) -> Loaded:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        operations: list[Operation] = []
        unreadable: list[Path] = []
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(_TMP_PREFIX):
                path.unlink(missing_ok=True)  # a write that a crash cut short
            elif path.suffix == ".json":
                try:
                    operations.append(read_record(path))
                except (OSError, ValueError) as exc:
                    log.warning("operation record %s cannot be read: %s", path, exc)
                    unreadable.append(path)
        operations.sort(key=lambda op: op.seq)
        return Loaded([self._recover(op, on_interrupted) for op in operations], unreadable)

    def _recover(self, op: Operation,
                 on_interrupted: Callable[[Operation], None] | None) -> Operation:
        if op.finished:
            return op
        failed = replace(op, state="failed", finished_at=self._now(), error=INTERRUPTED)
        if on_interrupted is not None:
            try:
                on_interrupted(failed)
            except Exception:  # kept as it was on disk: tried again at the next start
                log.exception("operation %s: cleaning up after the restart failed", op.id)
                return replace(failed, result="not cleaned up after the restart")
        self.save(failed)
        return failed

    def save(self, op: Operation) -> None:
        """Replace the operation's record whole. Raises OSError (the file system) or
        ValueError (an id that is not a safe file name)."""
        path = self._path(op.id)
        record: StoredOperation = {"format": FORMAT, "seq": op.seq, "operation": op.to_json()}
        data = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        with self._lock:
            write_whole(path, data, _TMP_PREFIX)

    def delete(self, op_id: str) -> None:
        with self._lock:
            self._path(op_id).unlink(missing_ok=True)
            sync_directory(self.directory)

    def record(self, event: OperationEvent) -> None:
        """OperationQueue listener: save every change, delete what the history forgot."""
        if event.forgotten:
            self.delete(event.operation.id)
        else:
            self.save(event.operation)

    def _path(self, op_id: str) -> Path:
        if not _ID.fullmatch(op_id):
            raise ValueError(f"not an operation id: {op_id!r}")
        return self.directory / f"{op_id}.json"


def read_record(path: Path) -> Operation:
    """One record file; BadRecord (or the JSON decoder's ValueError) says what is wrong."""
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadRecord(f"not an operation record of format {FORMAT}")
    op = operation_from_json(data.get("operation"), _field(data, "seq", int))
    if path.name != f"{op.id}.json":
        raise BadRecord(f"holds operation {op.id}")
    return op


def operation_from_json(data: object, seq: int) -> Operation:
    """The inverse of ``Operation.to_json``: each member read as its field's annotation says
    (a ``Literal`` one of its values, ``| None`` null or absent)."""
    if not isinstance(data, dict):
        raise BadRecord("operation must be an object")
    hints = get_type_hints(Operation)
    values: dict[str, Any] = {key: _member(data, key, hints[key]) for key in JSON_FIELDS}
    return Operation(seq=seq, **values)


def _member(data: dict[str, object], key: str, hint: object) -> object:
    kinds = get_args(hint) if isinstance(hint, UnionType) else (hint,)
    if data.get(key) is None and NoneType in kinds:
        return None
    if key == "error":
        return _error_from_json(data[key])
    kind = next(kind for kind in kinds if kind is not NoneType)
    if get_origin(kind) is Literal:
        return _choice(data, key, get_args(kind))
    return _field(data, key, kind)


def _error_from_json(data: object) -> OperationError:
    if not isinstance(data, dict):
        raise BadRecord("error must be an object or null")
    return OperationError(_field(data, "kind", str), _field(data, "detail", str),
                          _optional(data, "tart_message", str), _optional(data, "exit_code", int))


def _field(data: dict[str, object], key: str, kind: type[T]) -> T:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRecord(f"{key} must be of type {kind.__name__}")
    return value


def _optional(data: dict[str, object], key: str, kind: type[T]) -> T | None:
    return None if data.get(key) is None else _field(data, key, kind)


def _choice(data: dict[str, object], key: str, choices: tuple[str, ...]) -> str:
    value = _field(data, key, str)
    if value not in choices:
        raise BadRecord(f"{key} must be one of {', '.join(choices)}")
    return value
