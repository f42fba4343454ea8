"""A spec that knows no identity (written by a create whose identity read failed, or by an
earlier version) never lets prune or an ephemeral delete take a VM made again by hand after it,
and prune asks again, with the VM held, just before it deletes (core/ownership.py,
core/fleet_apply.py, core/create.py), over the fakes of tests/unit/fakes.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeClock, FakeStore, FakeTart

from vm_operator.core import create
from vm_operator.core.create import CreateJob, CreateRequest
from vm_operator.core.fleet import Fleet, Observed
from vm_operator.core.fleet_apply import FleetApplier
from vm_operator.core.operations import NameBusy, OperationQueue
from vm_operator.core.ownership import verdict
from vm_operator.core.service import Settings, VmService
from vm_operator.store.specs import SpecStore, VmSpec
from vm_operator.tart.errors import TartError
from vm_operator.tart.names import VmName

MADE_AT = "2026-01-01T00:00:00.000Z"  # 1767225600 seconds since the epoch
MADE = 1767225600


@pytest.mark.parametrize(("current", "found"), [
    (f"7:{MADE - 60}.5", "unbound"),  # born before the create wrote its spec: its clone
    (f"7:{MADE + 3}.0", "unbound"),  # within the clocks' slack
    (f"7:{MADE + 60}.25", "other"),  # born a minute after: made again by hand
    ("7:0.0", "unbound"),  # a file system without birth times cannot tell
    (None, "missing"),
])
def test_an_unbound_spec_of_a_created_vm_is_not_a_vm_born_after_it(current: str | None,
                                                                     found: str) -> None:
    assert verdict(None, current, MADE_AT) == found


@pytest.mark.parametrize("made_at", [None, "not a time"])
def test_an_unbound_spec_without_a_creation_time_binds_as_before(made_at: str | None) -> None:
    assert verdict(None, f"7:{MADE + 60}.0", made_at) == "unbound"


class Host:
    def __init__(self, directory: Path) -> None:
        self.tart = FakeTart()
        self.specs = SpecStore(directory / "specs", directory)
        self.service = VmService(
            self.tart, FakeStore(), FakeClock(), OperationQueue(lambda: MADE_AT), self.specs,
            lambda exc: type(exc).__name__, Settings(cache_ttl=0))
        self.file = directory / "vms.toml"
        self.file.write_text("prune = true\n")

    def made_by_the_file_unbound(self, name: str, born: float) -> None:
        """The file created ``name`` and the create could not read which VM its clone made."""
        self.specs.save(VmSpec(name, False, MADE_AT, "op-1", "stopped", "never", "config", None))
        self.tart.add(name).identity = f"{len(self.tart.vms)}:{born}"


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_prune_spares_a_vm_made_by_hand_after_an_unbound_spec(host: Host) -> None:
    host.made_by_the_file_unbound("old", born=MADE + 600.0)  # the user's clone, later
    applied = FleetApplier(host.service, str(host.file)).apply("api")
    assert applied.steps == ()
    assert "old" in host.tart.vms and host.tart.count("delete", "old") == 0
    assert host.specs.load("old") is None  # the gone VM's spec is dropped


def test_prune_still_deletes_the_vm_an_unbound_spec_was_made_for(host: Host) -> None:
    host.made_by_the_file_unbound("old", born=MADE - 30.0)  # the create's own clone
    applied = FleetApplier(host.service, str(host.file)).apply("api")
    assert [(s.step.kind, s.outcome) for s in applied.steps] == [("delete", "done")]
    assert "old" not in host.tart.vms


def test_prune_looks_again_with_the_vm_held_before_it_deletes(host: Host) -> None:
    tart = host.tart
    tart.add("old")
    host.service.set_desired(VmName("old"), desired="stopped", source="config")
    spec = host.specs.load("old")
    assert spec is not None
    host.specs.save(VmSpec("old", False, MADE_AT, "op-1", "stopped", "never", "config",
                           spec.vm_id))
    applier = FleetApplier(host.service, str(host.file))
    looked = applier.observe

    def observe_then_the_user_acts(fleet: Fleet) -> list[Observed]:
        seen = looked(fleet)
        del tart.vms["old"]  # between the plan's look and its delete: deleted and cloned
        tart.add("old")  # again by hand
        return seen

    applier.observe = observe_then_the_user_acts  # type: ignore[method-assign]
    applied = applier.apply("api")
    ((outcome, error),) = [(s.outcome, s.error) for s in applied.steps]
    assert outcome == "failed" and error is not None and "left alone" in error
    assert "old" in tart.vms and tart.count("delete", "old") == 0


def test_a_delete_guard_is_asked_with_the_vm_held_and_can_keep_it(host: Host) -> None:
    host.tart.add("ci")
    asked: list[str] = []

    def guard() -> str | None:
        with pytest.raises(NameBusy):  # the name is held while the guard is asked
            host.service.operations.reserve("ci")
        asked.append("ci")
        return "it is not ours any more"

    assert host.service.manage.delete(VmName("ci"), guard=guard) == "it is not ours any more"
    assert asked == ["ci"] and "ci" in host.tart.vms and host.tart.count("delete", "ci") == 0


def test_a_create_reads_which_vm_its_clone_made_again_after_a_failure(
        host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(create, "IDENTITY_RETRY_DELAY", 0.0)
    host.tart.add("ci").identity = "9:5.0"
    answers: list[str | None] = []

    def flaky(name: str) -> str | None:
        answers.append(name)
        if len(answers) < 3:
            raise TartError("ssh: connection reset")
        return FakeTart.vm_identity(host.tart, name)

    monkeypatch.setattr(host.tart, "vm_identity", flaky)
    job = CreateJob(host.service.lifecycle.parts, CreateRequest(VmName("ci"), VmName("img")))
    assert job._identity() == "9:5.0"
    assert len(answers) == create.IDENTITY_TRIES

    def down(name: str) -> str | None:
        answers.append(name)
        raise TartError("ssh: connection reset")

    answers.clear()
    monkeypatch.setattr(host.tart, "vm_identity", down)
    assert job._identity() is None  # unbound, and judged by its birth time later
    assert len(answers) == create.IDENTITY_TRIES
