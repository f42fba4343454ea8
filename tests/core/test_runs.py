"""The ``tart run`` processes the operator launches, end to end.

A real operator process over loopback HTTP, driving the Tart simulator as a real subprocess;
TART_SIM_CALL_LOG (``Operator.calls``) proves how many ``tart run`` reached Tart.

- one run per VM: a start while a run the operator launched is still starting waits for that
  run (202 / 504 again / its error), never launches another, also across an operator restart;
  each run's log stays its own (earlier ones are kept as run.1.log ...);
- ``last_run`` of runs an earlier operator process launched is finished once they end;
- ``GET /vms/{name}/logs``: ``?tail=N``, a cut answer starts at a line, headers say so;
- a state directory that became unusable: 503 ``state-dir-unwritable``, never a 500.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

from conftest import LOCAL_VMS, Operator
from support import wait_for

from vm_operator.edge.problems import PROBLEM_BASE
from vm_operator.store.state import LOG_TAIL_BYTES

SEQUOIA, SONOMA, UBUNTU = LOCAL_VMS
FAILURE = "VZErrorDomain Code=1: Internal Virtualization error. The virtual machine failed to start."
UNFINISHED_KEYS = {"started_at", "pid", "suspendable", "finished_at", "exit_code",
                   "exit_code_known", "error"}


def slug(problem: dict[str, Any]) -> str:
    assert problem["type"].startswith(PROBLEM_BASE), problem
    return str(problem["type"][len(PROBLEM_BASE):])


def last_run(op: Operator, name: str) -> dict[str, Any]:
    status, vm = op.json("GET", f"/vms/{name}")
    assert status == 200, vm
    assert isinstance(vm["last_run"], dict), vm
    return dict(vm["last_run"])


def finished_run(op: Operator, name: str) -> dict[str, Any] | None:
    record = last_run(op, name)
    return record if record["finished_at"] is not None else None


def start_until_settled(op: Operator, name: str, attempts: int = 6) -> tuple[int, Any, list[int]]:
    """POST start until it is no longer a 504 (each one waits the start timeout)."""
    statuses = []
    for _ in range(attempts):
        status, body = op.json("POST", f"/vms/{name}/start")
        statuses.append(status)
        if status != 504:
            return status, body, statuses
        assert slug(body) == "start-timeout", body
    raise AssertionError(f"start still 504 after {attempts} attempts: {statuses}")


def log_of(op: Operator, name: str) -> bytes:
    status, _, body = op.request("GET", f"/vms/{name}/logs")
    assert status == 200, body
    return body


def log_containing(op: Operator, name: str, needle: bytes) -> bytes:
    """The run log, once it holds ``needle`` (Tart prints after it reports the VM running)."""
    def ready() -> bytes | None:
        body = log_of(op, name)
        return body if needle in body else None
    return wait_for(ready, message=f"{needle!r} in the log of {name}")


def run_folder(op: Operator, name: str) -> Path:
    return op.state_dir / "vms" / name


def assert_no_traceback(op: Operator) -> None:
    stderr = op.stderr_path.read_text(errors="replace")
    assert "Traceback" not in stderr, stderr[-3000:]


# --- one tart run per VM ---------------------------------------------------------


def test_a_start_after_a_start_timeout_waits_for_the_same_run(operator_factory):
    op = operator_factory(env={"TART_SIM_RUN_DELAY": "4"}, args=["--start-timeout", "2"])
    status, problem = op.json("POST", f"/vms/{SEQUOIA}/start")
    assert (status, slug(problem)) == (504, "start-timeout"), problem
    first = last_run(op, SEQUOIA)
    assert first["finished_at"] is None

    status, vm, statuses = start_until_settled(op, SEQUOIA)
    assert status == 202 and vm["state"] == "running" and vm["changed"] is True, (statuses, vm)
    runs = op.calls("run")
    assert len(runs) == 1, [call.argv for call in runs]
    assert last_run(op, SEQUOIA) == first  # still the record of the run that owns the VM
    assert first["pid"] == runs[0].pid
    starting = f"[tart-sim] starting VM {SEQUOIA}".encode()  # printed just after it locks
    log = log_containing(op, SEQUOIA, starting)
    assert log.count(starting) == 1, log
    assert b"already running" not in log

    again = op.json("POST", f"/vms/{SEQUOIA}/start")
    assert again[0] == 200 and again[1]["changed"] is False
    assert len(op.calls("run")) == 1
    assert op.json("POST", f"/vms/{SEQUOIA}/stop")[0] == 200
    assert wait_for(lambda: finished_run(op, SEQUOIA))["exit_code"] == 0


def test_a_start_waiting_for_a_pending_run_reports_its_failure(operator_factory):
    op = operator_factory(env={"TART_SIM_RUN_DELAY": "3", "TART_SIM_RUN_FAIL": FAILURE},
                          args=["--start-timeout", "2"])
    status, problem = op.json("POST", f"/vms/{SEQUOIA}/start")
    assert (status, slug(problem)) == (504, "start-timeout"), problem
    status, problem, statuses = start_until_settled(op, SEQUOIA)  # the run fails meanwhile
    assert (status, slug(problem)) == (502, "tart-failed"), (statuses, problem)
    assert FAILURE in problem["detail"]
    assert len(op.calls("run")) == 1
    record = last_run(op, SEQUOIA)
    assert record["exit_code"] == 1 and record["exit_code_known"] is True
    assert FAILURE in record["error"]


def test_runs_still_starting_hold_their_macos_slots(operator_factory):
    op = operator_factory(env={"TART_SIM_RUN_DELAY": "3"}, args=["--start-timeout", "1"])
    assert op.tart("clone", SEQUOIA, "macos-third").returncode == 0
    for name in (SEQUOIA, SONOMA):
        status, problem = op.json("POST", f"/vms/{name}/start")
        assert (status, slug(problem)) == (504, "start-timeout"), problem
    status, problem = op.json("POST", "/vms/macos-third/start")
    assert (status, slug(problem)) == (409, "vm-limit"), problem
    # both still-starting runs hold a slot (the refusal says how many, not which)
    assert "running or starting now: 2" in problem["detail"], problem
    assert [call.argv[-1] for call in op.calls("run")] == [SEQUOIA, SONOMA]


def test_a_vm_whose_start_is_under_way_holds_its_macos_slot(operator_factory):
    """SONOMA's start is inside ``tart run`` (the simulator's run gate holds it: nothing lists it
    running, Tart's own count does not see it): a third macOS start is refused before Tart."""
    op = operator_factory()
    assert op.tart("clone", SEQUOIA, "macos-third").returncode == 0
    status, vm = op.json("POST", f"/vms/{SEQUOIA}/start")
    assert status in (200, 202), vm
    gate = op.tart_home / "vms" / SONOMA / ".tart-sim-run-gate"
    gate.touch()
    answers: list[tuple[int, Any]] = []
    launching = threading.Thread(target=lambda: answers.append(
        op.json("POST", f"/vms/{SONOMA}/start")))
    launching.start()
    wait_for(lambda: [call.argv[-1] for call in op.calls("run")] == [SEQUOIA, SONOMA],
             message="SONOMA's tart run launched")
    status, problem = op.json("POST", "/vms/macos-third/start")
    assert (status, slug(problem)) == (409, "vm-limit"), problem
    assert "running or starting now: 2" in problem["detail"], problem  # SONOMA's counted
    gate.unlink()
    launching.join(timeout=30)
    assert answers and answers[0][0] in (200, 202) and answers[0][1]["state"] == "running", answers
    assert [call.argv[-1] for call in op.calls("run")] == [SEQUOIA, SONOMA]


def test_a_restarted_operator_never_launches_a_second_run_either(operator_factory):
    first = operator_factory(env={"TART_SIM_RUN_DELAY": "3"}, args=["--start-timeout", "1"])
    status, problem = first.json("POST", f"/vms/{SEQUOIA}/start")
    assert (status, slug(problem)) == (504, "start-timeout"), problem
    pid = last_run(first, SEQUOIA)["pid"]
    assert first.stop()[0] == 0
    second = operator_factory(env={"TART_SIM_RUN_DELAY": "3"}, args=["--start-timeout", "10"],
                              tart_home=first.tart_home, state_dir=first.state_dir)
    status, vm = second.json("POST", f"/vms/{SEQUOIA}/start")
    assert status in (200, 202) and vm["state"] == "running", vm  # 200: it ran before we asked
    assert second.calls("run") == []
    assert last_run(second, SEQUOIA)["pid"] == pid


def test_each_run_keeps_its_own_log(operator):
    status, vm = operator.json("POST", f"/vms/{SEQUOIA}/start?suspendable=true")
    assert status == 202, vm
    assert operator.json("POST", f"/vms/{SEQUOIA}/suspend")[0] == 200
    wait_for(lambda: finished_run(operator, SEQUOIA))
    assert operator.json("POST", f"/vms/{SEQUOIA}/start")[0] == 202  # resumes: a second run
    current = log_containing(operator, SEQUOIA, b"resuming VM")  # printed once it locks
    assert b"snapshot created" not in current, current
    earlier = (run_folder(operator, SEQUOIA) / "run.1.log").read_bytes()
    assert b"snapshot created" in earlier and b"resuming VM" not in earlier, earlier


# --- last_run after an operator restart -------------------------------------------


def test_a_restarted_operator_finishes_the_records_of_earlier_runs(operator_factory):
    first = operator_factory()
    for name in (SEQUOIA, SONOMA, UBUNTU):
        assert first.json("POST", f"/vms/{name}/start")[0] == 202
    before = {name: last_run(first, name) for name in (SEQUOIA, SONOMA, UBUNTU)}
    assert first.stop()[0] == 0  # the VMs keep running
    assert first.tart("stop", UBUNTU).returncode == 0  # ends while no operator runs

    second = operator_factory(tart_home=first.tart_home, state_dir=first.state_dir)
    noticed = wait_for(lambda: finished_run(second, UBUNTU))
    assert noticed == {**before[UBUNTU], "finished_at": noticed["finished_at"]}
    assert (noticed["exit_code"], noticed["exit_code_known"], noticed["error"]) == (None, False, None)
    assert noticed["finished_at"] > noticed["started_at"]
    # Still running: still unfinished.
    assert last_run(second, SEQUOIA) == before[SEQUOIA]
    assert set(before[SEQUOIA]) == UNFINISHED_KEYS and before[SEQUOIA]["exit_code_known"] is False

    status, vm = second.json("POST", f"/vms/{SEQUOIA}/stop")  # through the API
    assert (status, vm["changed"]) == (200, True), vm
    stopped = wait_for(lambda: finished_run(second, SEQUOIA))
    assert stopped == {**before[SEQUOIA], "finished_at": stopped["finished_at"]}

    assert second.tart("stop", SONOMA).returncode == 0  # outside the API
    outside = wait_for(lambda: finished_run(second, SONOMA))
    assert (outside["exit_code"], outside["exit_code_known"]) == (None, False)

    # Persisted: a third operator shows the same finished records. (Its shutdown latency is
    # checked elsewhere; here a loaded CI machine once took over 10 s: see the session note.)
    assert second.stop(timeout=30)[0] == 0
    third = operator_factory(tart_home=first.tart_home, state_dir=first.state_dir)
    assert last_run(third, SEQUOIA) == stopped
    # A run this operator launches itself has its exit code again.
    assert third.json("POST", f"/vms/{SEQUOIA}/start")[0] == 202
    assert third.json("POST", f"/vms/{SEQUOIA}/stop")[0] == 200
    own = wait_for(lambda: finished_run(third, SEQUOIA))
    assert (own["exit_code"], own["exit_code_known"], own["error"]) == (0, True, None)


# --- logs -----------------------------------------------------------------------


def test_logs_tail_and_the_size_limit(operator):
    assert operator.json("POST", f"/vms/{SEQUOIA}/start")[0] == 202
    assert operator.json("POST", f"/vms/{SEQUOIA}/stop")[0] == 200
    wait_for(lambda: finished_run(operator, SEQUOIA))
    log = run_folder(operator, SEQUOIA) / "run.log"
    content = b"".join(b"line %07d %s\n" % (i, b"x" * (i % 150)) for i in range(70_000))
    assert len(content) > LOG_TAIL_BYTES + 100_000
    log.write_bytes(content)

    status, headers, body = operator.request("GET", f"/vms/{SEQUOIA}/logs")
    assert status == 200 and headers["Vm-Operator-Log-Truncated"] == "true"
    omitted = int(headers["Vm-Operator-Log-Omitted-Bytes"])
    assert omitted == len(content) - len(body) and 0 < len(body) <= LOG_TAIL_BYTES
    assert body == content[omitted:] and content[omitted - 1:omitted] == b"\n"  # a whole line

    status, headers, body = operator.request("GET", f"/vms/{SEQUOIA}/logs?tail=3")
    assert status == 200 and headers["Vm-Operator-Log-Truncated"] == "false"
    assert body.splitlines() == content.splitlines()[-3:] and body.endswith(b"\n")
    assert int(headers["Vm-Operator-Log-Omitted-Bytes"]) == len(content) - len(body)

    status, headers, body = operator.request("GET", f"/vms/{SEQUOIA}/logs?tail=100000")
    assert status == 200 and headers["Vm-Operator-Log-Truncated"] == "true"  # not all fit
    assert body == content[len(content) - len(body):] and body.startswith(b"line ")

    log.write_bytes(b"first\nsecond\nthird, still being written")
    status, headers, body = operator.request("GET", f"/vms/{SEQUOIA}/logs")
    assert (status, body) == (200, b"first\nsecond\nthird, still being written")
    assert headers["Vm-Operator-Log-Truncated"] == "false"
    assert headers["Vm-Operator-Log-Omitted-Bytes"] == "0"
    status, headers, body = operator.request("GET", f"/vms/{SEQUOIA}/logs?tail=2")
    assert (status, body) == (200, b"second\nthird, still being written")
    assert headers["Vm-Operator-Log-Truncated"] == "false"

    for value in ("0", "100001", "abc", "", "-1", "1.5"):
        status, problem = operator.json("GET", f"/vms/{SEQUOIA}/logs?tail={value}")
        assert (status, slug(problem)) == (400, "invalid-parameter"), (value, problem)
    status, problem = operator.json("GET", f"/vms/{SONOMA}/logs?tail=5")
    assert (status, slug(problem)) == (404, "no-logs")


def test_the_openapi_document_describes_tail_and_the_headers(operator):
    doc = operator.json("GET", "/openapi.json")[1]
    logs = doc["paths"]["/vms/{name}/logs"]["get"]
    tail = next(p for p in logs["parameters"] if p["name"] == "tail")
    assert (tail["in"], tail["schema"]["minimum"], tail["schema"]["maximum"]) == ("query", 1, 100000)
    assert {"Vm-Operator-Log-Truncated", "Vm-Operator-Log-Omitted-Bytes"} <= set(
        logs["responses"]["200"]["headers"])
    record = doc["components"]["schemas"]["VMDetail"]["allOf"][1]["properties"]["last_run"]
    assert "exit_code_known" in record["oneOf"][1]["properties"]


# --- a state directory that became unusable -----------------------------------------


def test_a_state_dir_replaced_by_a_file_is_a_503_naming_it(operator):
    assert operator.json("POST", f"/vms/{SEQUOIA}/start")[0] == 202
    shutil.rmtree(operator.state_dir)
    operator.state_dir.write_text("not a directory\n")

    status, problem = operator.json("POST", f"/vms/{SONOMA}/start")
    assert (status, slug(problem)) == (503, "state-dir-unwritable"), problem
    assert str(operator.state_dir) in problem["detail"]
    assert problem["state_dir"] == str(operator.state_dir)
    assert [call.argv[-1] for call in operator.calls("run")] == [SEQUOIA]  # nothing launched
    status, vm = operator.json("POST", f"/vms/{SEQUOIA}/stop")  # its record cannot be written
    assert (status, vm["state"]) == (200, "stopped"), vm
    record = wait_for(lambda: finished_run(operator, SEQUOIA))  # kept in memory meanwhile
    assert record["exit_code"] == 0
    for path in (f"/vms/{UBUNTU}", f"/vms/{UBUNTU}/logs"):  # reads of it: no 500 either
        status, problem = operator.json("GET", path)
        assert (status, slug(problem)) == (503, "state-dir-unwritable"), (path, problem)
    assert_no_traceback(operator)

    operator.state_dir.unlink()  # repaired: starts work again
    operator.state_dir.mkdir()
    status, vm = operator.json("POST", f"/vms/{SONOMA}/start")
    assert status == 202, vm
    assert json.loads((run_folder(operator, SONOMA) / "last_run.json").read_text())["pid"] == \
        last_run(operator, SONOMA)["pid"]
