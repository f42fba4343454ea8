"""Tests of the mechanisms behind promises whose outcome alone can hide a broken part.

Each one is built so that the mechanism failing changes what a client sees: one request (not a
re-poll) after the cache TTL, a write queue that must overflow, a hung Tart with a child of its
own, a Host header that only looks like localhost. A real operator process over loopback HTTP,
driving the Tart simulator, as in tests/api/test_vms.py.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from conftest import LOCAL_VMS, Operator
from support import wait_for

from vm_operator.core.power import MAX_QUEUED_WRITES

SEQUOIA, _, UBUNTU = LOCAL_VMS


def api_state(op: Operator, name: str) -> str:
    """The state GET /vms gives for one VM: exactly one request."""
    status, vms = op.json("GET", "/vms")
    assert status == 200, vms
    return {vm["name"]: vm["state"] for vm in vms}[name]


def problem_type(body: bytes) -> str:
    doc = json.loads(body)
    assert isinstance(doc["type"], str), doc
    return doc["type"]


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process from /proc, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    return fields[0], int(fields[1])


def is_dead(pid: int) -> bool:
    """Gone, or a zombie: it has exited and only waits for its (new) parent to collect it."""
    stat = proc_stat(pid)
    return stat is None or stat[0] == "Z"


# --- 1. the cache: one request after the TTL shows a change made outside ------------------------


def test_one_request_sent_just_after_the_ttl_shows_a_change_made_outside(
        operator_factory: Any) -> None:
    ttl = 2.0
    op = operator_factory(args=["--cache-ttl", f"{ttl:g}"])
    op.spawn_run(SEQUOIA)
    wait_for(lambda: op.tart_state(SEQUOIA) == "running", message="Tart lists the VM running")
    # The cache now holds a listing fetched just before the change below, so an operator that
    # let answers live longer than the TTL would still serve it to the one request after it.
    assert api_state(op, SEQUOIA) == "running"
    stopped = op.tart("stop", SEQUOIA)  # outside the API; returns once the VM is stopped
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(ttl + 0.1)  # just over the TTL since the change; then one request, no retry
    assert api_state(op, SEQUOIA) == "stopped"


def test_one_request_after_the_ttl_is_fresh_while_a_background_refresh_runs(
        operator_factory: Any) -> None:
    # Every `tart list` takes far longer than the TTL, and steady traffic keeps one refresh
    # after another in flight: the cached answer is then always older than the TTL while a
    # refresh runs. A cache that hands out its last answer because a refresh is already running
    # would answer with a listing begun more than `tart_delay` before the request, which is
    # before the change (seeing the change through `tart list` takes well under a second).
    ttl, tart_delay = 0.2, 1.5
    op = operator_factory(env={"TART_SIM_DELAY": f"{tart_delay:g}"},
                          args=["--cache-ttl", f"{ttl:g}"])
    quit_traffic = threading.Event()

    def traffic() -> None:
        while not quit_traffic.is_set():
            op.request("GET", "/vms")

    background = threading.Thread(target=traffic, name="traffic")
    background.start()
    try:
        wait_for(lambda: len(op.calls("list")) >= 2, timeout=15,
                 message="the cache refreshes back to back")
        op.spawn_run(SEQUOIA)
        wait_for(lambda: op.tart_state(SEQUOIA) == "running", message="Tart lists the VM running")
        time.sleep(ttl + 0.1)
        state = api_state(op, SEQUOIA)  # one request
    finally:
        quit_traffic.set()
        background.join(15)
    assert state == "running"


# --- 2. the per-VM write queue is bounded -----------------------------------------------------


def test_a_full_write_queue_refuses_the_next_write_at_once(operator_factory: Any) -> None:
    # Every `tart stop` hangs (for --timeout + --tart-timeout, 70 s): the first stop holds the
    # VM's write lock for the whole test, so every other write to that VM queues behind it.
    op = operator_factory(env={"TART_SIM_HANG": "stop"})
    status, vm = op.json("POST", f"/vms/{UBUNTU}/start")
    assert status == 202 and vm["state"] == "running", vm
    path = f"/vms/{UBUNTU}/stop?timeout=60"
    admitted = 1 + MAX_QUEUED_WRITES  # the holder and the queue
    extra = 3
    answers: list[tuple[int, http.client.HTTPMessage, bytes] | None] = []
    lock = threading.Lock()

    def stop() -> None:
        try:
            answer: tuple[int, http.client.HTTPMessage, bytes] | None = op.request(
                "POST", path, timeout=120)
        except (OSError, http.client.HTTPException):
            answer = None  # the operator was killed while this one waited: never answered
        with lock:
            answers.append(answer)

    clients = [threading.Thread(target=stop) for _ in range(admitted + extra)]
    for client in clients:
        client.start()
    wait_for(lambda: len(answers) == extra, timeout=15,
             message=f"{extra} of {admitted + extra} writes turned away")
    hung = wait_for(lambda: op.calls("stop"), message="the first stop reached Tart")
    assert len(hung) == 1 and not hung[0].finished  # and hangs there, holding the VM's lock
    # One more, now that the queue stands full: refused, not queued behind a 70 s stop.
    status, headers, body = op.request("POST", path, timeout=20)
    with lock:
        shed = list(answers)
    for answer in [*shed, (status, headers, body)]:
        assert answer is not None
        status, headers, body = answer
        assert status == 503, body
        assert problem_type(body).endswith("vm-busy")
        assert headers["Retry-After"] == "1"
    op.proc.kill()  # the queued writes end unanswered, so none could have been shed later
    op.proc.wait(timeout=10)
    for client in clients:
        client.join(15)
    assert len(answers) == admitted + extra
    assert sum(answer is not None for answer in answers) == extra


# --- 3. a timed-out Tart call is killed with its whole process group ----------------------------


def test_a_timed_out_tart_call_is_killed_with_the_processes_it_spawned(
        operator_factory: Any, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    op = operator_factory(env={"TART_SIM_HANG": "list", "TART_SIM_HANG_CHILD": str(pid_file)},
                          args=["--tart-timeout", "2"])
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(op.request, "GET", "/vms")
        wait_for(pid_file.exists, message="the hung tart list forked its child")
        grandchild = int(pid_file.read_text())
        stat = proc_stat(grandchild)
        assert stat is not None and stat[0] != "Z", "the grandchild hangs alive"
        tart = proc_stat(stat[1])
        assert tart is not None and tart[1] == op.pid  # operator -> tart list -> grandchild
        assert not pending.done()
        status, _, body = pending.result(timeout=30)
    assert status == 504, body
    wait_for(lambda: is_dead(grandchild), message=f"Tart's child (pid {grandchild}) was killed")
    assert is_dead(stat[1])


# --- 4. the Host check: a name that only ends in "localhost" ------------------------------------


def test_host_evillocalhost_is_refused_without_a_token(operator: Operator) -> None:
    for host in ("evillocalhost", f"evillocalhost:{operator.port}"):
        status, headers, body = operator.request("GET", "/vms", headers={"Host": host})
        assert status == 403, (host, body)
        assert headers.get_content_type() == "application/problem+json"
        assert problem_type(body).endswith("host-not-allowed")
    assert operator.calls("list") == []  # refused before Tart was asked
    # The same request naming a real subdomain of localhost is served: the name made the 403.
    status, _, body = operator.request("GET", "/vms",
                                       headers={"Host": f"foo.localhost:{operator.port}"})
    assert status == 200, body
