"""A stop the reconciler owes (desired just set stopped on a running VM) stays owed while the
VM's name is held by someone else (an operation that copies it, a request that changes it):
the pass that cannot act leaves it due, and a later pass stops the VM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import FakeCore

from vm_operator.core.operations import Job
from vm_operator.core.service import Settings
from vm_operator.tart.names import VmName


@pytest.fixture
def core(tmp_path: Path) -> Iterator[FakeCore]:
    core = FakeCore(tmp_path, Settings(max_running=2))
    yield core
    core.tart.release_all()


def test_a_stop_due_while_a_create_copies_the_vm_is_made_once_the_create_ends(
        core: FakeCore) -> None:
    core.tart.add("base")
    core.service.start(VmName("base"))
    queue = core.service.lifecycle.queue
    copying = queue.submit("create", Job(lambda ctx: None), vm="copy", image="base")  # queued
    core.service.set_desired(VmName("base"), desired="stopped", source="api")
    core.reconciler.reconcile_once()
    assert (core.tart.count("stop", "base"), core.tart.vms["base"].state) == (0, "running")

    queue.cancel(copying.id)
    core.reconciler.reconcile_once()
    assert core.tart.count("stop", "base") == 1
    assert core.tart.vms["base"].state == "stopped"


def test_a_stop_due_while_a_request_holds_the_vm_is_made_by_the_next_pass(
        core: FakeCore) -> None:
    core.tart.add("base")
    core.service.start(VmName("base"))
    core.service.set_desired(VmName("base"), desired="stopped", source="api")
    with core.service.lifecycle.queue.reserve("base"):  # a DELETE or a PATCH under way
        core.reconciler.reconcile_once()
        assert core.tart.count("stop", "base") == 0
    core.reconciler.reconcile_once()
    assert core.tart.count("stop", "base") == 1
    core.reconciler.reconcile_once()
    assert core.tart.count("stop", "base") == 1  # once: the stop was due once
