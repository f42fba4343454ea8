"""The operations queue: a create from a local VM holds that VM, shared with other creates
from it, until it has finished (a reservation of it, or an operation on it, is refused), and
is refused itself while a reservation or an operation holds the VM it would copy."""

from __future__ import annotations

import threading

import pytest

from vm_operator.core.operations import Job, NameBusy, OperationContext, OperationQueue

WAIT = 10.0  # seconds: only reached when something is broken


def stamp() -> str:
    return "2025-01-01T00:00:00Z"


def test_a_vm_being_copied_is_held_until_its_create_has_finished() -> None:
    queue = OperationQueue(stamp)
    queue.start()
    started, release = threading.Event(), threading.Event()

    def run(ctx: OperationContext) -> None:
        started.set()
        assert release.wait(WAIT)

    create = queue.submit("create", Job(run), vm="copy-1", image="base")
    assert started.wait(WAIT)
    with pytest.raises(NameBusy) as busy:
        queue.reserve("base")  # a DELETE, a PATCH
    assert (busy.value.name, busy.value.operation_id) == ("base", create.id)
    with pytest.raises(NameBusy):
        queue.submit("delete", Job(lambda ctx: None), vm="base")
    second = queue.submit("create", Job(lambda ctx: None), vm="copy-2", image="base")
    assert second.state == "queued"  # copied too, after the first (one operation per name)
    with pytest.raises(NameBusy):
        queue.reserve("base")  # still held by the second
    release.set()
    assert queue.wait(create.id, WAIT).state == "succeeded"
    assert queue.wait(second.id, WAIT).state == "succeeded"
    queue.reserve("base").release()  # free again
    # an OCI image is no VM name: a pull or a create from it holds no VM
    assert queue.submit("pull", Job(lambda ctx: None), image="ghcr.io/a/b:1").state in (
        "queued", "running")
    queue.close(WAIT)


@pytest.mark.parametrize("holder", ["reservation", "operation"])
def test_a_create_is_refused_while_the_vm_it_would_copy_is_held(holder: str) -> None:
    queue = OperationQueue(stamp)  # not started: an operation stays queued
    if holder == "reservation":
        held = queue.reserve("base")
        expected = None
    else:
        expected = queue.submit("delete", Job(lambda ctx: None), vm="base").id
    with pytest.raises(NameBusy) as busy:
        queue.submit("create", Job(lambda ctx: None), vm="copy", image="base")
    assert (busy.value.name, busy.value.operation_id) == ("base", expected)
    assert queue.holder("copy") is None  # nothing was queued
    if holder == "reservation":
        held.release()
        assert queue.submit("create", Job(lambda ctx: None), vm="copy", image="base")
