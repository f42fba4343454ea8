"""A spec belongs to the VM it was made for, and state to one Tart home: the pure rules
(core/ownership.py, tart/identity.py, tart/home.py, store/home.py), table-driven, and the
reconciler and the API's writes over the fakes of tests/unit/fakes.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import SAFETY, FakeCore, FakeVm

from vm_operator.config import default_state_dir
from vm_operator.core.errors import VmNotFound
from vm_operator.core.ownership import verdict
from vm_operator.core.service import Settings
from vm_operator.store.home import HOME_FILE, HomeMismatch, claim, served_home
from vm_operator.store.specs import VmSpec, spec_from_json
from vm_operator.tart.errors import TartError
from vm_operator.tart.home import home_folder, home_label
from vm_operator.tart.identity import identity_of_stat, parse_identity
from vm_operator.tart.names import VmName
from vm_operator.tart.ssh_settings import SshSettings

# --- the pure rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(("bound", "current", "found"), [
    ("7:1.5", "7:1.5", "same"),
    ("7:1.5", "7:2.5", "other"),  # the inode handed out again, another birth: another VM
    ("7:1.5", "8:1.5", "other"),
    ("7:1.5", None, "missing"),  # no VM carries the name: the spec waits, acts on nothing
    (None, None, "missing"),
    (None, "7:1.5", "unbound"),  # a spec of an earlier version: bound at the next look
    # the host's stat changed flavour: BSD's whole seconds against GNU's nanoseconds
    ("7:1733560000.0", "7:1733560000.942359899", "same"),
    ("7:1733560000.942359899", "7:1733560000.0", "same"),
    ("7:1733560000.0", "7:1733560001.0", "other"),
    ("7:1733560000.942359899", "7:1733560000.5", "other"),  # both precise: they differ
    ("7:1733560000.0", "8:1733560000.942359899", "other"),
])
def test_whose_spec_it_is(bound: str | None, current: str | None, found: str) -> None:
    assert verdict(bound, current) == found


@pytest.mark.parametrize(("answer", "identity"), [
    ("9978051 1796624721.942359899\n", "9978051:1796624721.942359899"),  # GNU stat
    ("9978051 1796624721.940000000", "9978051:1796624721.94"),
    ("12884903 1733560000\n", "12884903:1733560000.0"),  # BSD stat: whole seconds
    ("44 0", "44:0.0"),  # a file system without birth times: the inode alone
    ("44 -", "44:0.0"),
])
def test_a_directory_identity_is_read_from_either_stat(answer: str, identity: str) -> None:
    assert parse_identity(answer) == identity


class Stat:
    """An ``os.stat_result``'s fields that count; ``st_birthtime`` only where given."""

    def __init__(self, ino: int, **birth: float) -> None:
        self.st_ino = ino
        self.__dict__.update(birth)


@pytest.mark.parametrize(("found", "identity"), [
    (Stat(12884903, st_birthtime=1733560000.75), "12884903:1733560000.0"),  # as BSD stat -f %B
    (Stat(12884903, st_birthtime=0), "12884903:0.0"),
    (Stat(12884903), None),  # no birth time here (Linux, Python 3.11): the script asks statx
])
def test_a_local_stat_answers_as_the_script_where_it_knows_birth_times(
        found: Stat, identity: str | None) -> None:
    assert identity_of_stat(found) == identity  # type: ignore[arg-type]


@pytest.mark.parametrize("answer", ["", "12", "a 1", "1 2 3", "1 x", "1 2.x", "٣ 1"])
def test_an_identity_that_is_not_one_is_an_error(answer: str) -> None:
    with pytest.raises(TartError):
        parse_identity(answer)


def test_a_spec_keeps_its_vm_and_one_without_reads_as_unbound() -> None:
    spec = VmSpec("ci", desired="running", vm_id="7:1.5")
    assert spec_from_json(json.loads(json.dumps(spec.to_json()))) == spec
    older = {key: value for key, value in spec.to_json().items() if key != "vm_id"}
    assert spec_from_json(older).vm_id is None


@pytest.mark.parametrize(("env", "ssh", "label"), [
    ({"HOME": "/home/u"}, None, "/home/u/.tart"),
    ({"HOME": "/home/u", "TART_HOME": "/disks/two/tart"}, None, "/disks/two/tart"),
    ({"HOME": "/home/u", "TART_HOME": "/disks/two/tart/"}, None, "/disks/two/tart"),
    ({"HOME": "/home/u", "TART_HOME": "/disks/two/../two/tart"}, None, "/disks/two/tart"),
    ({"HOME": "/home/u", "TART_HOME": "  "}, None, "/home/u/.tart"),
    ({"HOME": "/home/u"}, SshSettings("me@mac", 2222), "ssh://me@mac:2222"),
    ({"HOME": "/home/u", "TART_HOME": "/x"}, SshSettings("mac"), "ssh://mac:22"),
])
def test_the_tart_home_served(env: dict[str, str], ssh: SshSettings | None,
                              label: str) -> None:
    assert home_label(env, ssh) == label


def test_each_tart_home_has_a_default_state_dir_of_its_own() -> None:
    env = {"XDG_STATE_HOME": "/state"}
    homes = ["/home/u/.tart", "/disks/two/tart", "/home/u/.tart2", "ssh://me@mac:22",
             "ssh://me@mac:2222", "/home/u/.tart/"]
    dirs = [default_state_dir(env, home) for home in homes]
    assert len(set(dirs)) == len(dirs)
    assert all(d.startswith("/state/vm-operator/homes/") for d in dirs)
    assert dirs[0] == default_state_dir(env, "/home/u/.tart")  # the same home, the same dir
    assert home_folder("/home/u/.tart").startswith("home-u-.tart-")
    assert "/" not in home_folder("ssh://me@mac:22") and len(home_folder("/" + "x" * 300)) < 80


def test_a_state_dir_records_its_home_once_and_refuses_another(tmp_path: Path) -> None:
    assert served_home(tmp_path) is None
    claim(tmp_path, "/home/u/.tart")
    assert json.loads((tmp_path / HOME_FILE).read_text())["tart_home"] == "/home/u/.tart"
    claim(tmp_path, "/home/u/.tart")  # the same home again: fine
    with pytest.raises(HomeMismatch) as refused:
        claim(tmp_path, "/disks/two/tart")
    assert refused.value.served == "/home/u/.tart"
    assert "serves the Tart home /home/u/.tart, not /disks/two/tart" in refused.value.reason
    assert sorted(p.name for p in tmp_path.iterdir()) == [HOME_FILE]  # no temporary file left
    (tmp_path / HOME_FILE).write_text("{")
    with pytest.raises(HomeMismatch):
        claim(tmp_path, "/home/u/.tart")


# --- over the fakes -----------------------------------------------------------------------------


class Core(FakeCore):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory, Settings(cache_ttl=0))

    def recreate_by_hand(self, name: str) -> FakeVm:
        """``tart delete NAME`` then ``tart clone … NAME`` outside the operator: a new
        directory under the name."""
        old = self.tart.vms.pop(name)
        return self.tart.add(name, old.os)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    core = Core(tmp_path)
    yield core
    core.tart.release_all()


def test_a_spec_binds_to_the_vm_it_was_written_for(core: Core) -> None:
    vm = core.tart.add("ci")
    core.service.set_desired(VmName("ci"), restart="always")
    spec = core.specs.load("ci")
    assert spec is not None and spec.vm_id == vm.identity


def test_a_vm_made_again_by_hand_is_not_started_and_its_predecessor_is_forgotten(
        core: Core) -> None:
    core.tart.add("ci")
    core.service.set_desired(VmName("ci"), restart="always")
    core.service.start(VmName("ci"))
    core.crash("ci", 0)  # and the end reported
    core.recreate_by_hand("ci")
    core.clock.advance(100.0)  # past the backoff: the restart is due
    core.reconciler.reconcile_once()
    assert core.tart.count("run", "ci") == 1  # only the first start
    assert core.specs.load("ci") is None and core.store.read_last_run("ci") is None
    status = core.reconciler.status("ci")
    assert (status["spec"], status["condition"], status["last_exit"]) == (None, None, None)


def test_a_write_through_the_api_does_not_inherit_a_gone_vms_spec(core: Core) -> None:
    core.tart.add("ci")
    core.service.set_desired(VmName("ci"), desired="running", restart="always")
    core.recreate_by_hand("ci")
    spec = core.service.set_desired(VmName("ci"), restart="on-failure")
    assert (spec.desired, spec.restart, spec.vm_id) == (
        None, "on-failure", core.tart.vms["ci"].identity)


def test_a_spec_of_an_earlier_version_is_bound_to_the_vm_found_and_acts(core: Core) -> None:
    core.specs.save(VmSpec("ci", desired="running"))
    vm = core.tart.add("ci")
    core.reconciler.reconcile_once()
    assert core.tart.count("run", "ci") == 1
    spec = core.specs.load("ci")
    assert spec is not None and spec.vm_id == vm.identity


def test_a_missing_vm_keeps_its_spec_until_deleted_and_comes_back_as_it_was(core: Core) -> None:
    core.tart.add("ci")
    core.service.set_desired(VmName("ci"), desired="stopped")
    vm = core.tart.vms.pop("ci")  # renamed away
    core.reconciler.reconcile_once()
    assert core.specs.load("ci") is not None
    core.tart.vms["ci"] = vm  # renamed back: the same directory
    assert core.service.owned_spec(VmName("ci")) is not None
    core.tart.vms.pop("ci")
    core.service.manage.delete(VmName("ci"))
    assert core.specs.load("ci") is None
    with pytest.raises(VmNotFound):  # nothing kept any more: a plain 404
        core.service.manage.delete(VmName("ci"))


def test_an_ephemeral_vms_delete_spares_a_vm_made_again_under_its_name(core: Core) -> None:
    gone = core.tart.add("eph")
    core.specs.save(VmSpec("eph", True, "2026-01-01T00:00:00.000Z", "op-1", "running",
                           vm_id=gone.identity))
    core.store.write_last_run("eph", {
        "started_at": "2026-01-01T00:00:01.000Z", "pid": 4242, "suspendable": False,
        "finished_at": "2026-01-01T00:00:09.000Z", "exit_code": 0, "exit_code_known": True,
        "error": None})
    core.recreate_by_hand("eph")  # its run ended while the operator was down; the user's now
    core.service.operations.start()
    try:
        assert core.service.ephemeral.sweep() == 1
        op = core.service.operations.list_operations()[-1]
        done = core.service.operations.wait(op.id, timeout=SAFETY)
        assert done.state == "succeeded", done
    finally:
        core.service.operations.close(timeout=SAFETY)
    assert "eph" in core.tart.vms and core.tart.count("delete", "eph") == 0
    assert core.specs.load("eph") is None
