"""The operations queue refuses with the core's own exceptions (one name each, the ones the
problem catalogue answers), not with exceptions of its own that a caller translates; the parts
the lifecycle jobs share have a module of their own."""

from __future__ import annotations

import threading

import pytest

from vm_operator.core import errors, parts
from vm_operator.core.errors import OperatorError
from vm_operator.core.operations import Job, OperationContext, OperationQueue
from vm_operator.store import operation_records

WAIT = 10.0  # seconds: only reached when something is broken


def stamp() -> str:
    return "2025-01-01T00:00:00Z"


def test_each_refusal_of_the_queue_is_an_exception_of_the_core() -> None:
    queue = OperationQueue(stamp, max_queued=1, retry_after=7)
    queue.start()
    started, release = threading.Event(), threading.Event()

    def run(ctx: OperationContext) -> None:
        started.set()
        assert release.wait(WAIT)

    running = queue.submit("pull", Job(run), image="a/b")
    assert started.wait(WAIT)
    queue.submit("pull", Job(lambda ctx: None), image="a/b")  # the one place of the queue
    with pytest.raises(errors.OperationsFull) as full:  # (it waits: one operation per image)
        queue.submit("pull", Job(lambda ctx: None), image="a/b")
    assert (full.value.limit, full.value.retry_after) == (1, 7)
    assert str(full.value) == "1 operations are waiting already; retry in 7 s"
    release.set()
    assert queue.wait(running.id, WAIT).state == "succeeded"
    with pytest.raises(errors.OperationFinished) as finished:
        queue.cancel(running.id)
    assert str(finished.value) == f"operation {running.id} has succeeded already"
    with pytest.raises(errors.OperationMissing) as missing:
        queue.get("nobody")
    assert str(missing.value) == "no operation 'nobody'"
    queue.close(WAIT)
    with pytest.raises(errors.OperationsClosed):
        queue.submit("prune", Job(lambda ctx: None))
    for refusal in (full, finished, missing):
        assert isinstance(refusal.value, OperatorError)


def test_the_store_declares_no_refusal_of_the_queue() -> None:
    """One name per refusal: the store's records module keeps records, not a second set of
    the queue's exceptions."""
    declared = {name for name, value in vars(operation_records).items()
                if isinstance(value, type) and issubclass(value, Exception)}
    assert declared == {"OperationFailed", "Cancelled"}


def test_the_parts_of_the_lifecycle_jobs_have_their_own_module() -> None:
    assert parts.Parts.__module__ == "vm_operator.core.parts"
    assert {"tart", "inventory", "power", "runs", "store", "specs", "clock", "kind_of",
            "ownership"} <= set(parts.Parts.__dataclass_fields__)
