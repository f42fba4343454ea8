"""Desired state never acts on a VM it was not made for, end to end: a real operator over HTTP
driving the Tart simulator, VMs deleted and cloned again by hand (``Operator.tart``, outside
the API) while the operator runs and while it is down; prune; and two operators on two Tart
homes of one user. A pass of the reconciler is known to have happened when a witness VM
(named to come after the others: a pass takes the specs in name order) is running again."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import Operator
from support import kill_tart_processes, processes_with_tart_home, wait_for
from test_fleet_file import plan, reload

FAST = ["--reconcile-interval", "0.2"]
LINUX = "ubuntu-runner"  # a seeded Linux VM: its clones do not count against the macOS cap
MACOS = "macos-sequoia-base"
UBUNTU = "ghcr.io/cirruslabs/ubuntu:latest"
MERGE = {"Content-Type": "application/merge-patch+json"}
WITNESS = "zz-witness"
WAIT = 30.0

Factory = Callable[..., Operator]


def by_hand(op: Operator, *args: str) -> None:
    done = op.tart(*args)
    assert done.returncode == 0, (args, done.stderr)


def seen(op: Operator, name: str, exists: bool) -> None:
    """Wait until the operator's listing (fresh within --cache-ttl) shows what was done by hand."""
    wait_for(lambda: (op.json("GET", f"/vms/{name}")[0] == 200) == exists, timeout=WAIT,
             message=f"{name} {'listed' if exists else 'gone'}")


def cloned(op: Operator, source: str, name: str) -> None:
    by_hand(op, "clone", source, name)
    seen(op, name, True)


def deleted(op: Operator, name: str) -> None:
    by_hand(op, "delete", name)
    seen(op, name, False)


def post(op: Operator, path: str) -> dict[str, Any]:
    status, body = op.json("POST", path)
    assert status in (200, 202), body  # a start: 202 while the guest is not ready yet
    return body  # type: ignore[no-any-return]


def patch(op: Operator, name: str, **body: object) -> None:
    status, doc = op.json("PATCH", f"/vms/{name}", MERGE, json.dumps(body))
    assert status == 200, doc


def runs_of(op: Operator, name: str) -> int:
    return sum(1 for call in op.calls("run") if name in call.argv)


def witness(op: Operator) -> None:
    """A Linux VM desired running under ``restart: always``."""
    cloned(op, LINUX, WITNESS)
    patch(op, WITNESS, restart="always")
    post(op, f"/vms/{WITNESS}/start")


def a_pass_went_by(op: Operator) -> None:
    """Kill the witness's run and wait until the reconciler started it again: a pass that took
    every spec named before it has happened since."""
    run = op.detail(WITNESS)["last_run"]
    assert run is not None and run["finished_at"] is None, run
    os.kill(run["pid"], signal.SIGKILL)

    def again() -> bool:
        now = op.detail(WITNESS)
        later = now["last_run"]
        return (now["state"] == "running" and later is not None and later["pid"] != run["pid"]
                and later["finished_at"] is None)
    wait_for(again, timeout=WAIT, message="the witness started again by a pass")


def forgotten(op: Operator, name: str) -> dict[str, Any]:
    """The VM's detail holds nothing of the VM that carried the name before."""
    vm = op.detail(name)
    assert vm["state"] == "stopped", vm
    assert (vm["spec"], vm["last_run"], vm["condition"], vm["last_exit"],
            vm["restart_count"], vm["next_attempt_at"]) == (None, None, None, None, 0, None), vm
    status, _, body = op.request("GET", f"/vms/{name}/logs")
    assert status == 404, body  # the gone VM's run log is not this VM's
    return vm


# --- the reconciler ---------------------------------------------------------------------------


def test_a_vm_deleted_and_made_again_by_hand_while_the_operator_runs_is_left_alone(
        operator_factory: Factory) -> None:
    op = operator_factory(args=FAST)
    cloned(op, MACOS, "victim")  # Tart suspends macOS guests only
    patch(op, "victim", restart="always")
    post(op, "/vms/victim/start?suspendable=true")
    post(op, "/vms/victim/suspend")  # desired running still; a suspended VM can be deleted
    witness(op)
    deleted(op, "victim")
    cloned(op, MACOS, "victim")  # the user's own VM now
    a_pass_went_by(op)
    forgotten(op, "victim")
    assert runs_of(op, "victim") == 1  # the start through the API, of the VM that is gone


def test_a_vm_deleted_and_made_again_while_the_operator_was_down_is_not_started_at_start_up(
        operator_factory: Factory) -> None:
    first = operator_factory(args=FAST)
    for name in ("victim", WITNESS):
        cloned(first, LINUX, name)
        post(first, f"/vms/{name}/start")  # restart: never; both desired running
    by_hand(first, "stop", "victim")
    wait_for(lambda: first.detail("victim")["condition"] == "exited", timeout=WAIT,
             message="victim's run seen ending")
    code, _ = first.stop()
    assert code == 0
    kill_tart_processes(first.tart_home)  # the Mac reboots
    wait_for(lambda: not processes_with_tart_home(first.tart_home), timeout=WAIT,
             message="every tart run gone")
    by_hand(first, "delete", "victim")
    by_hand(first, "clone", LINUX, "victim")
    second = operator_factory(args=FAST, tart_home=first.tart_home, state_dir=first.state_dir)
    # the first pass brings back what is desired running: the witness, not the new victim
    wait_for(lambda: second.detail(WITNESS)["state"] == "running", timeout=WAIT,
             message="the witness started at start-up")
    forgotten(second, "victim")
    assert runs_of(second, "victim") == 0


def test_missing_clears_once_the_vm_is_back(operator_factory: Factory) -> None:
    op = operator_factory(args=FAST)
    cloned(op, LINUX, "victim")
    post(op, "/vms/victim/start")  # restart: never
    witness(op)
    by_hand(op, "stop", "victim")
    wait_for(lambda: op.detail("victim")["condition"] == "exited", timeout=WAIT,
             message="victim's run seen ending")
    by_hand(op, "rename", "victim", "victim-away")
    a_pass_went_by(op)  # it saw the VM missing
    by_hand(op, "rename", "victim-away", "victim")  # the same VM, back under its name
    a_pass_went_by(op)
    vm = op.detail("victim")
    assert (vm["state"], vm["condition"]) == ("stopped", None), vm
    assert vm["spec"]["desired"] == "running" and vm["last_run"] is not None  # still its own
    assert runs_of(op, "victim") == 1


def test_delete_drops_the_spec_of_a_vm_tart_no_longer_lists(operator_factory: Factory) -> None:
    op = operator_factory(args=FAST)
    cloned(op, LINUX, "victim")
    patch(op, "victim", desired="stopped", restart="always")
    spec = op.state_dir / "specs" / "victim.json"
    assert spec.exists()
    deleted(op, "victim")
    status, doc = op.json("PATCH", "/vms/victim", MERGE, json.dumps({"restart": "never"}))
    assert status == 404, doc  # no VM to change: PATCH never brings a spec back
    status, _, body = op.request("DELETE", "/vms/victim")
    assert status == 204, body
    assert not spec.exists()
    status, _, body = op.request("DELETE", "/vms/victim")
    assert status == 404, body  # nothing kept any more
    cloned(op, LINUX, "victim")
    assert op.detail("victim")["spec"] is None


# --- the declarative file -----------------------------------------------------------------------


def test_prune_never_deletes_a_vm_the_user_made_again_under_a_file_vms_name(
        operator_factory: Factory, tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text(f'[vms.other]\nfrom = "{UBUNTU}"\ndesired = "stopped"\n')
    op = operator_factory(args=["--config", str(path)])
    wait_for(lambda: op.json("GET", "/vms/other")[0] == 200
             and op.detail("other")["state"] == "stopped", timeout=60,
             message="other created from the file")
    assert op.detail("other")["spec"]["source"] == "config"
    by_hand(op, "delete", "other")
    by_hand(op, "clone", UBUNTU, "other")  # the user's own VM
    path.write_text("prune = true\n")
    status, doc = reload(op)
    assert (status, doc["steps"]) == (200, []), doc
    vm = op.detail("other")
    assert (vm["state"], vm["spec"]) == ("stopped", None), vm
    code, out, err = plan(op.url, path)
    assert (code, out) == (0, f"nothing to do: the VMs are as {path} says\n"), err


def test_a_file_vm_made_again_by_hand_is_claimed_for_its_settings_never_for_prune(
        operator_factory: Factory, tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    declared = f'[vms.other]\nfrom = "{LINUX}"\ndesired = "stopped"\nrestart = "on-failure"\n'
    path.write_text(declared)
    op = operator_factory(args=["--config", str(path)])
    wait_for(lambda: op.json("GET", "/vms/other")[0] == 200
             and op.detail("other")["state"] == "stopped", timeout=60,
             message="other created from the file")
    by_hand(op, "delete", "other")
    by_hand(op, "clone", LINUX, "other")
    # the file names it: the VM that carries the name gets the file's settings ...
    status, doc = reload(op)
    assert status == 200, doc
    assert [(s["kind"], s["vm"], s["outcome"]) for s in doc["steps"]] == [
        ("set", "other", "done")], doc
    assert op.detail("other")["spec"] == {"desired": "stopped", "restart": "on-failure",
                                           "source": "config", "created_at": None}
    # ... but the operator did not create it: prune leaves it
    path.write_text("prune = true\n")
    status, doc = reload(op)
    assert (status, doc["steps"]) == (200, []), doc
    assert op.detail("other")["state"] == "stopped"


# --- one state directory per Tart home ------------------------------------------------------------


def listening(op: Operator) -> dict[str, Any]:
    return next(r for r in op.log_records() if r.get("event") == "listening")


def test_two_operators_on_two_tart_homes_share_nothing_of_one_state_home(
        operator_factory: Factory, tmp_path: Path) -> None:
    xdg = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    first = operator_factory(env=xdg, default_state_dir=True)
    post(first, f"/vms/{LINUX}/start")  # desired running, its run lock held
    second = operator_factory(env=xdg, default_state_dir=True)  # another TART_HOME
    dirs = [Path(listening(op)["state_dir"]) for op in (first, second)]
    assert dirs[0] != dirs[1]
    for op, state_dir in zip((first, second), dirs, strict=True):
        assert state_dir.parent == tmp_path / "xdg" / "vm-operator" / "homes"
        record = json.loads((state_dir / "tart-home.json").read_text())
        assert record["tart_home"] == str(op.tart_home.resolve())
    # the second home's VM of the same name is not the first's: no spec, no run, no lock
    vm = second.detail(LINUX)
    assert (vm["state"], vm["spec"], vm["last_run"]) == ("stopped", None, None), vm
    assert post(second, f"/vms/{LINUX}/start")["state"] == "running"
    assert first.detail(LINUX)["last_run"]["pid"] != second.detail(LINUX)["last_run"]["pid"]
