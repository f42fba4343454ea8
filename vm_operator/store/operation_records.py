"""Long-running operations (create, delete, pull, prune): what they are and how they fail.

The records are immutable snapshots: the queue (operations.py) replaces an operation's snapshot
on every change and hands the new one to its listeners. ``to_json`` gives the JSON-ready form;
the HTTP layer maps an ``OperationError.kind`` to a problem document.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields
from typing import Generic, Literal, TypedDict, TypeVar, cast

from vm_operator.vocabulary import FINISHED_STATES, OperationKind, OperationState

Ending = Literal["failed", "cancelled"]
FINISHED: frozenset[str] = frozenset(FINISHED_STATES)


def new_operation_id() -> str:
    """16 URL-safe characters, 96 random bits."""
    return secrets.token_urlsafe(12)


class OperationErrorJson(TypedDict):
    kind: str
    detail: str
    tart_message: str | None
    exit_code: int | None


@dataclass(frozen=True)
class OperationError:
    """Why an operation failed. ``kind`` is a slug (``tart-failed``, ``interrupted``, ...) that the
    HTTP layer maps to a problem type; ``tart_message`` and ``exit_code`` are Tart's, if any."""

    kind: str
    detail: str
    tart_message: str | None = None
    exit_code: int | None = None

    def to_json(self) -> OperationErrorJson:
        return {"kind": self.kind, "detail": self.detail,
                "tart_message": self.tart_message, "exit_code": self.exit_code}


E = TypeVar("E")


class OperationJson(TypedDict, Generic[E]):
    """An operation's JSON: its fields but ``seq``; ``error`` as the record's JSON (the store's
    ``OperationJson[OperationErrorJson]``) or as the API shows it (a problem document)."""

    id: str
    kind: OperationKind
    vm: str | None
    image: str | None
    state: OperationState
    phase: str | None
    progress: int | None
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: E | None
    result: str | None


@dataclass(frozen=True)
class Operation:
    """One snapshot of an operation; the queue replaces it on every change.

    ``vm`` is the VM it creates or deletes, ``image`` the OCI image it pulls (or a create's
    source); ``seq`` orders operations by submission, across restarts. ``result`` is a note on
    the outcome, e.g. "created VM kept, stopped: start failed".
    """

    id: str
    kind: OperationKind
    state: OperationState
    created_at: str
    seq: int
    vm: str | None = None
    image: str | None = None
    phase: str | None = None
    progress: int | None = None
    cancel_requested: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    error: OperationError | None = None
    result: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def to_json(self) -> OperationJson[OperationErrorJson]:
        """Its fields but ``seq`` (the store keeps the order apart), in ``OperationJson``'s
        order; the error as its own JSON."""
        data = {field.name: getattr(self, field.name) for field in fields(self)
                if field.name in JSON_FIELDS}
        data["error"] = None if self.error is None else self.error.to_json()
        return cast(OperationJson[OperationErrorJson], {name: data[name] for name in JSON_FIELDS})


JSON_FIELDS: tuple[str, ...] = tuple(OperationJson.__annotations__)
if {field.name for field in fields(Operation)} != {*JSON_FIELDS, "seq"}:
    raise TypeError("Operation and OperationJson must have the same fields (but seq)")


@dataclass(frozen=True)
class OperationEvent:
    """A change of one operation. ``forgotten``: the operation left the bounded history (a store
    deletes its record); ``operation`` is then its last snapshot."""

    operation: Operation
    forgotten: bool = False


class OperationFailed(Exception):
    """Raised by a job's ``run`` (or ``cleanup``) to fail its operation with ``error``."""

    def __init__(self, error: OperationError) -> None:
        super().__init__(error.detail)
        self.error = error


class Cancelled(OperationFailed):
    """Raised by ``OperationContext.raise_if_cancelled``."""

    def __init__(self) -> None:
        super().__init__(OperationError("cancelled", "the operation was cancelled"))
