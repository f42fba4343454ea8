"""Applying the declarative file in process (core/fleet_apply.py over tests/unit/fakes.py): what it
publishes on the event bus, and that a refused file changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import FakeClock, FakeStore, FakeTart

from vm_operator.config import load_config
from vm_operator.core.errors import ConfigRefused
from vm_operator.core.events import Event, Subscription
from vm_operator.core.fleet_apply import FleetApplier
from vm_operator.core.operations import OperationQueue
from vm_operator.core.service import Settings, VmService
from vm_operator.store.specs import SpecStore
from vm_operator.tart.names import VmName


@pytest.fixture
def service(tmp_path: Path) -> VmService:
    tart = FakeTart()
    tart.add("ci")  # stopped, 4 CPUs, 8192 MB
    operations = OperationQueue(lambda: "2026-01-01T00:00:00.000Z")  # never started
    specs = SpecStore(tmp_path / "specs", tmp_path)
    return VmService(tart, FakeStore(), FakeClock(), operations, specs,
                     lambda exc: type(exc).__name__, Settings(max_running=0))


def drain(sub: Subscription) -> list[Event]:
    found = []
    while (event := sub.get(0.05)) is not None:
        found.append(event)
    return found


def test_a_refused_file_publishes_config_refused_and_changes_nothing(service: VmService,
                                                                      tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    path.write_text('[vms.ci]\nfrom = "img/x:1"\ndesired = "stopped"\nrestart = "always"\n'
                    "cpu = 3\nmemroy_mb = 4096\n")
    records: list[dict[str, object]] = []
    applier = FleetApplier(service, str(path), lambda record: records.append(dict(record)))
    sub = service.events.subscribe()
    with pytest.raises(ConfigRefused) as caught:
        applier.apply("api")
    assert (caught.value.line, caught.value.key) == (6, "vms.ci.memroy_mb")
    (event,) = [e for e in drain(sub) if e.type.startswith("config.")]
    assert (event.type, event.vm) == ("config.refused", None)
    assert (event.data["file"], event.data["line"], event.data["key"]) == (
        str(path), 6, "vms.ci.memroy_mb")
    assert records[-1]["event"] == "config-refused"
    assert service.spec(VmName("ci")) is None  # the previous state: no spec at all
    assert service.tart.vms["ci"].state == "stopped"  # type: ignore[attr-defined]


def test_an_applied_file_publishes_config_applied_with_its_steps(service: VmService,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    path.write_text('[vms.ci]\nfrom = "img/x:1"\ndesired = "stopped"\nrestart = "always"\n')
    applier = FleetApplier(service, str(path))
    sub = service.events.subscribe()
    applied = applier.apply("SIGHUP")
    assert [(s.step.render(), s.outcome) for s in applied.steps] == [
        ("set ci: desired unset -> stopped, restart unset -> always", "done")]
    (event,) = [e for e in drain(sub) if e.type.startswith("config.")]
    assert (event.type, event.vm) == ("config.applied", None)
    assert event.data["cause"] == "SIGHUP"
    assert event.data["steps"] == ["set ci: desired unset -> stopped, restart unset -> always: done"]
    spec = service.spec(VmName("ci"))
    assert spec is not None
    assert (spec.desired, spec.restart, spec.source) == ("stopped", "always", "config")
    # applied again: nothing to do
    assert applier.apply("api").steps == ()


def test_the_config_setting_is_the_files_absolute_path(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vms.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    assert load_config(["--config", "vms.toml"], env={}).config == str(tmp_path / "vms.toml")
    assert load_config([], env={"VM_OPERATOR_CONFIG": "vms.toml"}).config == str(
        tmp_path / "vms.toml")
    assert load_config([], env={}).config is None
    with pytest.raises(SystemExit, match="VM_OPERATOR_CONFIG: cannot read gone.toml"):
        load_config([], env={"VM_OPERATOR_CONFIG": "gone.toml"})
