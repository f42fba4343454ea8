"""What a job of the operations queue is and sees: the ``Job`` (its ``run`` and ``cleanup``),
its ``OperationContext`` (phase, progress, a result note, the hook that kills Tart on
cancellation), and how a step's failure becomes the operation's ``OperationError``.

The queue (operations.py) owns the entries; a context changes its operation only through the
queue, so every change is one new snapshot handed to the listeners.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from vm_operator.core.scheduling import Claim
from vm_operator.store.operation_records import (
    Cancelled,
    Ending,
    Operation,
    OperationError,
    OperationFailed,
)

if TYPE_CHECKING:
    from vm_operator.core.operations import OperationQueue

log = logging.getLogger("vm_operator.core.operations")  # the queue's log: one place to look

CancelHook = Callable[[], None]


@dataclass(frozen=True)
class Job:
    """The work of an operation. ``cleanup(ctx, ending)`` runs after ``run`` when it failed or
    the operation was cancelled (not for an operation cancelled while still queued)."""

    run: Callable[[OperationContext], None]
    cleanup: Callable[[OperationContext, Ending], None] | None = None


@dataclass(eq=False)
class Entry:
    op: Operation
    job: Job | None  # None for an operation restored from the store (always finished)
    claim: Claim = field(default_factory=Claim)  # what it works on (core/scheduling.py)
    token: threading.Event = field(default_factory=threading.Event)
    hook_lock: threading.Lock = field(default_factory=threading.Lock)  # held while a hook runs
    hook: CancelHook | None = None
    ended: bool = False  # run() has returned: too late to cancel
    forgotten: bool = False  # deleted: found by no one, dropped once it has finished


class OperationContext:
    """What a job sees of its operation; safe to use from any thread."""

    def __init__(self, queue: OperationQueue, entry: Entry) -> None:
        self._queue = queue
        self._entry = entry

    @property
    def id(self) -> str:
        return self._entry.op.id

    @property
    def cancelled(self) -> bool:
        return self._entry.token.is_set()

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        return self._entry.token.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self._entry.token.is_set():
            raise Cancelled()

    def set_phase(self, phase: str | None) -> None:
        self._queue._modify(self._entry, lambda op: replace(op, phase=phase))

    def set_progress(self, percent: int | None) -> None:
        """0-100 (clamped), or None when Tart prints no percentages."""
        value = None if percent is None else max(0, min(100, percent))
        self._queue._modify(self._entry, lambda op: replace(op, progress=value))

    def note(self, result: str | None) -> None:
        """The operation's result note, e.g. "created VM kept, stopped: start failed"."""
        self._queue._modify(self._entry, lambda op: replace(op, result=result))

    def on_cancel(self, hook: CancelHook | None) -> None:
        """``hook`` is called (once, from the cancelling thread) if the operation is cancelled
        while ``run`` runs; at once if it has been already. Pass None to drop it: once that
        returns, the hook is not running and will not be called, so drop it BEFORE reaping the
        process it kills (a reaped process's group id may be reused). Ignored in ``cleanup``."""
        entry = self._entry
        with entry.hook_lock:
            if entry.ended:  # run() has returned: cleanup's processes are never killed
                return
            if hook is not None and entry.token.is_set():
                call_hook(entry, hook)
                hook = None
            entry.hook = hook


def call_hook(entry: Entry, hook: CancelHook) -> None:
    try:
        hook()
    except Exception:  # a failed kill must not fail the canceller
        log.exception("operation %s: the cancel hook failed", entry.op.id)


def attempt(entry: Entry, step: Callable[[], None]) -> OperationError | None:
    """Run a job's step; its failure as an OperationError (None if it succeeded)."""
    try:
        step()
    except OperationFailed as exc:
        return exc.error
    except Exception as exc:  # recorded on the operation, logged in full
        log.exception("operation %s: unexpected error", entry.op.id)
        return OperationError("internal-error",
                              f"unexpected {type(exc).__name__} (see the operator's log)")
    return None
