"""Desired state and restart policies, against a real operator over HTTP driving the
Tart simulator: runs killed, guests that end by themselves, stops through the API, a reboot, the
macOS slot cap, and the operator killed while it writes specs."""

from __future__ import annotations

import calendar
import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import MACOS_VMS, Operator
from support import kill_tart_processes, processes_with_tart_home, wait_for

from vm_operator.core.clock import utc_now
from vm_operator.store.specs import spec_from_json

JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
FAST = ["--reconcile-interval", "0.2"]  # passes often, so that a test waits little
LINUX_VM = "ubuntu-runner"
WAIT = 20.0  # seconds: a bound on every wait (a start is a few simulator calls)


def patch(op: Operator, name: str, **body: object) -> dict[str, Any]:
    status, vm = op.json("PATCH", f"/vms/{name}", MERGE, json.dumps(body))
    assert status == 200, vm
    return vm  # type: ignore[no-any-return]


def start(op: Operator, name: str) -> None:
    status, vm = op.json("POST", f"/vms/{name}/start")
    assert status in (200, 202), vm


def macs_started(operator_factory: Callable[..., Operator],
                 restart: str) -> tuple[Operator, tuple[str, str]]:
    """A quickly reconciling operator whose two macOS VMs were started under ``restart``."""
    op = operator_factory(args=FAST)
    for name in MACOS_VMS:
        patch(op, name, restart=restart)
        start(op, name)
    return op, (MACOS_VMS[0], MACOS_VMS[1])


def stop(op: Operator, name: str) -> None:
    status, vm = op.json("POST", f"/vms/{name}/stop?timeout=5")
    assert status == 200, vm


def run_pid(op: Operator, name: str) -> int:
    run = op.detail(name)["last_run"]
    assert run is not None and run["finished_at"] is None, run
    return int(run["pid"])


def kill_run(op: Operator, name: str) -> int:
    """SIGKILL the VM's ``tart run`` (the simulator process the operator launched)."""
    pid = run_pid(op, name)
    os.kill(pid, signal.SIGKILL)
    return pid


def with_condition(op: Operator, name: str, condition: str | None) -> dict[str, Any]:
    return wait_for(lambda: (vm := op.detail(name))["condition"] == condition and vm,
                    timeout=WAIT, message=f"{name}'s condition {condition}")


def runs_of(op: Operator, name: str) -> int:
    return sum(1 for call in op.calls("run") if name in call.argv)


def test_a_killed_run_comes_back_under_always_and_on_failure_not_under_never(
        operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(args=FAST)
    policies = {MACOS_VMS[0]: "always", MACOS_VMS[1]: "on-failure", LINUX_VM: "never"}
    for name, policy in policies.items():
        vm = patch(op, name, restart=policy)
        assert vm["spec"] == {"desired": None, "restart": policy, "source": "api",
                              "created_at": None}
        start(op, name)
        assert op.detail(name)["spec"]["desired"] == "running"
    pids = {name: kill_run(op, name) for name in policies}
    for name in (MACOS_VMS[0], MACOS_VMS[1]):
        vm = op.running_again(name, pids[name])
        assert vm["restart_count"] == 1
        assert vm["last_exit"]["signal"] == signal.SIGKILL and vm["last_exit"]["exit_code"] is None
    vm = with_condition(op, LINUX_VM, "exited")
    assert vm["state"] == "stopped" and vm["restart_count"] == 0
    assert vm["last_exit"]["signal"] == signal.SIGKILL
    assert vm["spec"] == {"desired": "running", "restart": "never", "source": "api",
                          "created_at": None}
    assert runs_of(op, LINUX_VM) == 1


def test_a_guest_that_shuts_down_cleanly_stays_down_under_on_failure(
        operator_factory: Callable[..., Operator]) -> None:
    op, (clean, failing) = macs_started(operator_factory, "on-failure")
    failing_pid = run_pid(op, failing)
    op.guest_exits(clean, 0)
    op.guest_exits(failing, 3)
    vm = op.running_again(failing, failing_pid)
    assert vm["last_exit"]["exit_code"] == 3 and vm["restart_count"] == 1
    vm = with_condition(op, clean, "exited")
    assert vm["state"] == "stopped" and vm["last_exit"]["exit_code"] == 0
    assert vm["next_attempt_at"] is None
    assert runs_of(op, clean) == 1


def test_a_stop_through_the_api_is_never_undone(
        operator_factory: Callable[..., Operator]) -> None:
    op, (stopped, witness) = macs_started(operator_factory, "always")
    stop(op, stopped)
    assert op.detail(stopped)["spec"] == {"desired": "stopped", "restart": "always",
                                          "source": "api", "created_at": None}
    # the reconciler acts after the stop: it brings the witness back ...
    op.running_again(witness, kill_run(op, witness))
    # ... and never the VM stopped through the API
    vm = op.detail(stopped)
    assert vm["state"] == "stopped" and vm["condition"] is None and vm["restart_count"] == 0
    assert runs_of(op, stopped) == 1


def test_after_a_reboot_the_vms_desired_running_run_again_the_others_stay_stopped(
        operator_factory: Callable[..., Operator]) -> None:
    first = operator_factory(args=FAST)
    kept, stopped = MACOS_VMS
    patch(first, kept, restart="never")  # the policy is for ends while the operator runs
    start(first, kept)
    start(first, LINUX_VM)
    start(first, stopped)
    stop(first, stopped)
    code, _ = first.stop()
    assert code == 0
    # the Mac reboots: every tart run is gone
    kill_tart_processes(first.tart_home)
    wait_for(lambda: not processes_with_tart_home(first.tart_home), timeout=WAIT,
             message="every tart run gone")
    assert first.tart("list", "--format", "json").stdout.count('"running"') == 0
    second = operator_factory(args=FAST, tart_home=first.tart_home, state_dir=first.state_dir)
    for name in (kept, LINUX_VM):
        vm = wait_for(lambda n=name: (vm := second.detail(n))["restart_count"] == 1 and vm,
                      timeout=WAIT, message=f"{name} started again")
        assert vm["state"] == "running" and vm["spec"]["desired"] == "running"
    assert second.detail(stopped)["state"] == "stopped"
    assert not [call for call in second.calls("run") if stopped in call.argv]


def create_vm(op: Operator, name: str, source: str) -> None:
    status, _, data = op.request("POST", "/vms", JSON, json.dumps({"name": name, "from": source}))
    assert status == 202, data
    path = json.loads(data)["id"]
    wait_for(lambda: op.json("GET", f"/operations/{path}")[1]["state"] == "succeeded",
             timeout=WAIT, message="create succeeded")


def test_three_macos_vms_desired_running_with_two_slots_one_waits_then_runs(
        operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(args=FAST)
    third = "macos-third"
    create_vm(op, third, MACOS_VMS[0])
    names = (*MACOS_VMS, third)
    for name in names:
        patch(op, name, desired="running", restart="always")

    def settled() -> dict[str, dict[str, Any]] | None:
        vms = {name: op.detail(name) for name in names}
        running = [name for name, vm in vms.items() if vm["state"] == "running"]
        waiting = [name for name, vm in vms.items() if vm["condition"] == "waiting-for-slot"]
        return vms if len(running) == 2 and len(waiting) == 1 else None

    vms = wait_for(settled, timeout=WAIT, message="two running, one waiting for a slot")
    waiting = next(name for name, vm in vms.items() if vm["condition"] == "waiting-for-slot")
    vm = vms[waiting]
    assert vm["state"] == "stopped" and vm["next_attempt_at"] is None
    assert vm["restart_count"] == 0
    assert runs_of(op, waiting) == 0  # refused before Tart: no crash, no backoff
    freed = next(name for name in names if name != waiting)
    stop(op, freed)
    vm = wait_for(lambda: (vm := op.detail(waiting))["state"] == "running" and vm,
                  timeout=WAIT, message=f"{waiting} runs once a slot is free")
    assert vm["condition"] is None and vm["restart_count"] == 1
    assert op.detail(freed)["state"] == "stopped"


def test_a_create_records_its_restart_policy_and_desired_power(operator: Operator) -> None:
    status, _, data = operator.request("POST", "/vms", JSON, json.dumps(
        {"name": "svc", "from": LINUX_VM, "start": True, "restart": "on-failure"}))
    assert status == 202, data
    op_id = json.loads(data)["id"]
    wait_for(lambda: operator.json("GET", f"/operations/{op_id}")[1]["state"] == "succeeded",
             timeout=WAIT, message="create succeeded")
    spec = operator.detail("svc")["spec"]
    assert isinstance(spec.pop("created_at"), str)  # the operator created it
    assert spec == {"desired": "running", "restart": "on-failure", "source": "api"}
    status, problem = operator.json("PATCH", "/vms/svc", MERGE, json.dumps({"restart": "maybe"}))
    assert status == 400 and problem["errors"][0]["pointer"] == "/restart"
    status, problem = operator.json("PATCH", "/vms/svc", MERGE, json.dumps({"desired": None}))
    assert status == 400 and problem["errors"][0]["pointer"] == "/desired"
    assert operator.detail("svc")["spec"]["restart"] == "on-failure"  # a refusal loses nothing
    assert operator.detail("macos-sonoma-xcode")["spec"] is None  # nobody asked: not managed


def test_the_operator_killed_while_writing_specs_leaves_every_spec_whole(
        operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(args=["--reconcile-interval", "60"])
    specs = Path(op.state_dir) / "specs"
    names = [f"vm-{i}" for i in range(6)]
    for name in names:
        assert op.tart("clone", LINUX_VM, name).returncode == 0
    stop_writing = threading.Event()
    written = [0]

    def writer(name: str) -> None:
        policies = ("never", "on-failure", "always")
        i = 0
        while not stop_writing.is_set():
            try:
                status, _ = op.json("PATCH", f"/vms/{name}", MERGE,
                                    json.dumps({"restart": policies[i % 3]}), timeout=5)
            except OSError:
                return  # the operator is gone
            if status == 200:
                written[0] += 1
            i += 1

    threads = [threading.Thread(target=writer, args=(name,), daemon=True) for name in names]
    for thread in threads:
        thread.start()
    wait_for(lambda: written[0] >= 40, timeout=60, message="specs being written")
    op.proc.send_signal(signal.SIGKILL)  # in the middle of the writes
    op.proc.wait(timeout=10)
    stop_writing.set()
    for thread in threads:
        thread.join(timeout=10)
    files = sorted(path for path in specs.iterdir() if path.suffix == ".json"
                   and not path.name.startswith("%tmp-"))
    assert {path.stem for path in files} == set(names)
    for path in files:
        spec = spec_from_json(json.loads(path.read_bytes()))
        assert spec.name == path.stem and spec.restart in ("never", "on-failure", "always")


def start_under_way(op: Operator, target: str, witness: str
                    ) -> tuple[threading.Thread, dict[str, tuple[int, Any]]]:
    """Both VMs restart always, the witness runs, and a start of ``target`` is under way in a
    thread (its tart run is launched and waits TART_SIM_RUN_DELAY before it runs: the start
    holds the VM's writes); the thread puts the start's answer in ``answers["start"]``."""
    for name in (target, witness):
        patch(op, name, restart="always")
    start(op, witness)
    answers: dict[str, tuple[int, Any]] = {}
    starting = threading.Thread(
        target=lambda: answers.update(start=op.json("POST", f"/vms/{target}/start")))
    starting.start()
    wait_for(lambda: runs_of(op, target) == 1, timeout=WAIT, message="the start under way")
    return starting, answers


def test_a_stop_sent_while_a_start_is_under_way_wins(
        operator_factory: Callable[..., Operator]) -> None:
    """The stop is served after the start (the VM's writes are served in arrival order), so its
    desire is the one that stays: on disk, for the reconciler and for the next operator."""
    op = operator_factory(env={"TART_SIM_RUN_DELAY": "4"}, args=FAST)
    target, witness = LINUX_VM, MACOS_VMS[0]
    starting, answers = start_under_way(op, target, witness)
    status, vm = op.json("POST", f"/vms/{target}/stop?timeout=5")
    starting.join(timeout=WAIT)
    assert answers["start"][0] in (200, 202), answers
    assert status == 200 and vm["state"] == "stopped", vm
    assert op.detail(target)["spec"]["desired"] == "stopped"
    # the reconciler passes after both (it brings the witness back) and leaves the VM stopped
    op.running_again(witness, kill_run(op, witness))
    vm = op.detail(target)
    assert vm["state"] == "stopped" and vm["restart_count"] == 0
    assert runs_of(op, target) == 1
    code, _ = op.stop()
    assert code == 0
    on_disk = spec_from_json(json.loads((op.state_dir / "specs" / f"{target}.json").read_bytes()))
    assert on_disk.desired == "stopped"  # what the next operator's first pass acts on


def test_a_stop_patched_while_a_start_is_under_way_wins(
        operator_factory: Callable[..., Operator]) -> None:
    """PATCH {"desired": "stopped"} is a stop too: its wish is written in the order the VM's
    writes are served, after the start under way, so it stays and the reconciler stops the VM
    (it was undone: the start wrote desired running after it, and the VM ran on)."""
    op = operator_factory(env={"TART_SIM_RUN_DELAY": "4"}, args=FAST)
    target, witness = LINUX_VM, MACOS_VMS[0]
    starting, answers = start_under_way(op, target, witness)
    vm = patch(op, target, desired="stopped")
    starting.join(timeout=WAIT)
    assert answers["start"][0] in (200, 202), answers
    assert vm["spec"]["desired"] == "stopped", vm
    wait_for(lambda: op.detail(target)["state"] == "stopped", timeout=WAIT,
             message="the reconciler stops the VM the start brought up")
    op.running_again(witness, kill_run(op, witness))  # a pass after all that
    vm = op.detail(target)
    assert vm["state"] == "stopped" and vm["spec"]["desired"] == "stopped", vm
    assert runs_of(op, target) == 1


def test_a_restart_comes_when_its_backoff_ends_not_at_the_next_periodic_pass(
        operator_factory: Callable[..., Operator]) -> None:
    """No periodic pass within the test: each end's own pass finds the backoff (1 s, then 2 s)
    not over, so only a wake-up at its end restarts the VM; meanwhile next_attempt_at is never
    a time past."""
    op = operator_factory(args=["--reconcile-interval", "3600"])
    patch(op, LINUX_VM, restart="always")
    start(op, LINUX_VM)
    for restarts in (1, 2):
        old_pid = kill_run(op, LINUX_VM)
        seen: list[str] = []

        def again(old_pid: int = old_pid, seen: list[str] = seen) -> dict[str, Any] | None:
            asked_at = utc_now()
            vm = op.detail(LINUX_VM)
            if vm["next_attempt_at"] is not None:
                seen.append(vm["next_attempt_at"])
                assert vm["next_attempt_at"] >= asked_at, vm
            run = vm["last_run"]
            fresh = run is not None and run["pid"] != old_pid and run["finished_at"] is None
            return vm if fresh and vm["state"] == "running" else None

        vm = wait_for(again, timeout=WAIT, message="restarted once its backoff ended")
        assert seen, "the backoff was never shown"
        assert vm["restart_count"] == restarts and vm["condition"] is None


def test_a_create_whose_start_finds_no_slot_waits_for_one_and_the_reconciler_logs_its_start(
        operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(args=FAST)
    for name in MACOS_VMS:
        start(op, name)
    status, _, data = op.request("POST", "/vms", JSON, json.dumps(
        {"name": "third", "from": MACOS_VMS[0], "start": True}))
    assert status == 202, data
    op_id = json.loads(data)["id"]
    final = wait_for(lambda: (o := op.json("GET", f"/operations/{op_id}")[1])["state"] not in (
        "queued", "running") and o, timeout=WAIT, message="create finished")
    assert final["state"] == "succeeded" and final["error"] is None, final
    assert final["result"].startswith("VM created, waiting for a slot"), final
    vm = with_condition(op, "third", "waiting-for-slot")
    assert vm["state"] == "stopped" and vm["spec"]["desired"] == "running"
    assert runs_of(op, "third") == 0  # refused before Tart
    stop(op, MACOS_VMS[1])
    wait_for(lambda: op.detail("third")["state"] == "running", timeout=WAIT,
             message="third started once a slot freed")
    lines = [record for record in op.log_records() if record.get("vm") == "third"]
    assert {"level": "info", "event": "reconcile-waiting", "vm": "third",
            "condition": "waiting-for-slot"} in lines
    started = [line for line in lines if line.get("event") == "reconcile-action"]
    assert started and started[-1]["action"] == "start" and started[-1]["level"] == "info"
    assert started[-1]["reason"] == "desired running, found stopped"


def test_the_reconciler_logs_its_stops_and_failures(
        operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(args=FAST)
    start(op, LINUX_VM)
    patch(op, LINUX_VM, desired="stopped")
    wait_for(lambda: op.detail(LINUX_VM)["state"] == "stopped", timeout=WAIT,
             message="stopped by the reconciler")
    patch(op, MACOS_VMS[0], restart="always")
    start(op, MACOS_VMS[0])
    kill_run(op, MACOS_VMS[0])
    wait_for(lambda: any(r.get("event") == "reconcile-failed" for r in op.log_records()),
             timeout=WAIT, message="the failure logged")
    records = op.log_records()
    assert {"level": "info", "event": "reconcile-action", "vm": LINUX_VM, "action": "stop",
            "reason": "desired stopped"} in records
    failed = next(r for r in records if r.get("event") == "reconcile-failed")
    assert failed["level"] == "warning" and failed["vm"] == MACOS_VMS[0]
    assert "killed by signal 9" in failed["error"] and failed["next_attempt_at"]


def test_a_tart_run_that_keeps_failing_backs_off_longer_each_time_into_a_crash_loop(
        operator_factory: Callable[..., Operator]) -> None:
    """Not a run that ends: ``tart run`` itself fails each time (exit 1 before the VM runs). Each
    failed start counts: the backoff doubles (1, 2 s) and the third makes a crash loop."""
    op = operator_factory(env={"TART_SIM_RUN_FAIL": "the VM cannot boot"}, args=FAST)
    patch(op, LINUX_VM, desired="running", restart="always")
    vm = with_condition(op, LINUX_VM, "crash-loop")
    assert vm["state"] == "stopped" and vm["restart_count"] == 0
    status, events = op.json("GET", f"/vms/{LINUX_VM}/events")
    assert status == 200
    failed = [event for event in events["events"] if event["type"] == "reconcile.failed"]
    assert len(failed) == 3 == runs_of(op, LINUX_VM), failed
    waits = [later_stamp(event["data"]["next_attempt_at"]) - later_stamp(event["time"])
             for event in failed]
    assert [round(wait) for wait in waits] == [1, 2, 4], failed


def later_stamp(stamp: str) -> float:
    """An API timestamp as seconds since the epoch."""
    whole, _, millis = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(millis) / 1000


def test_an_on_failure_vm_whose_run_was_started_outside_is_restarted_when_that_run_ends(
        operator_factory: Callable[..., Operator]) -> None:
    """The operator does not watch that run, so its exit is unknown: an unknown exit is a
    failure, and ``on-failure`` starts the VM again (under a run of its own)."""
    op = operator_factory(args=FAST)
    outside, witness = MACOS_VMS[0], LINUX_VM  # the pass looks at them in this (name) order
    run = op.spawn_run(outside)
    wait_for(lambda: op.detail(outside)["state"] == "running", timeout=WAIT,
             message="the outside run up")
    patch(op, outside, desired="running", restart="on-failure")
    patch(op, witness, desired="running")
    # the pass that started the witness had seen the outside run running
    wait_for(lambda: op.detail(witness)["restart_count"] == 1, timeout=WAIT,
             message="a pass after both specs")
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=WAIT)

    def ours_running() -> dict[str, Any] | None:
        vm = op.detail(outside)
        last = vm["last_run"]
        ours = last is not None and last["finished_at"] is None and last["pid"] != run.pid
        return vm if ours and vm["state"] == "running" else None

    vm = wait_for(ours_running, timeout=WAIT, message="started again by the operator")
    assert vm["restart_count"] == 1 and vm["condition"] is None
    assert vm["last_exit"] is not None
    assert (vm["last_exit"]["exit_code"], vm["last_exit"]["signal"]) == (None, None)
    assert runs_of(op, outside) == 1


def close_gate(op: Operator, name: str) -> None:
    """The simulator's test gate: from now on the VM's ``tart run`` waits before it runs."""
    (op.tart_home / "vms" / name / ".tart-sim-run-gate").touch()


def open_gate(op: Operator, name: str) -> None:
    (op.tart_home / "vms" / name / ".tart-sim-run-gate").unlink()


def sent(op: Operator, method: str, path: str) -> http.client.HTTPConnection:
    """The request is sent (its answer is read later, with ``answer``)."""
    connection = http.client.HTTPConnection("127.0.0.1", op.port, timeout=60)
    connection.request(method, path)
    return connection


def answer(connection: http.client.HTTPConnection) -> tuple[int, Any]:
    response = connection.getresponse()
    status, data = response.status, response.read()
    connection.close()
    return status, json.loads(data)


def test_a_stop_that_comes_between_the_reconcilers_pass_and_its_start_wins(
        operator_factory: Callable[..., Operator]) -> None:
    """The pass decides to start the target while an API start holds the target's writes and an
    API stop waits behind it; the reconciler's start comes after the stop, asks again once it
    has the VM, and starts nothing."""
    op = operator_factory(args=["--reconcile-interval", "3600"])  # passes only when kicked
    busy, target, witness = MACOS_VMS[0], LINUX_VM, "zz-witness"  # the order of a pass
    assert op.tart("clone", LINUX_VM, witness).returncode == 0
    for name in (busy, target):
        close_gate(op, name)
    patch(op, busy, desired="running")  # a pass starts it, and waits at its gate
    wait_for(lambda: runs_of(op, busy) == 1, timeout=WAIT, message="the pass busy")
    patch(op, target, desired="running", restart="always")  # for the next pass
    patch(op, witness, desired="running")
    starting = sent(op, "POST", f"/vms/{target}/start")
    wait_for(lambda: runs_of(op, target) == 1, timeout=WAIT, message="the API start under way")
    stopping = sent(op, "POST", f"/vms/{target}/stop?timeout=5")  # waits behind the start
    open_gate(op, busy)  # that pass ends; the next one decides to start the target

    def decided() -> bool:
        _, found = op.json("GET", f"/vms/{target}/events")
        return any(event["type"] == "reconcile.action" and event["data"]["action"] == "start"
                   for event in found["events"])

    wait_for(decided, timeout=WAIT, message="the pass decided to start the target")
    open_gate(op, target)
    status, vm = answer(starting)
    assert status in (200, 202) and vm["state"] == "running", vm
    status, vm = answer(stopping)
    assert status == 200 and vm["state"] == "stopped", vm
    wait_for(lambda: op.detail(witness)["state"] == "running", timeout=WAIT,
             message="the pass went on past the target")
    vm = op.detail(target)
    assert vm["state"] == "stopped" and vm["spec"]["desired"] == "stopped"
    assert vm["restart_count"] == 0 and runs_of(op, target) == 1
