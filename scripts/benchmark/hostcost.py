"""The host-cost figures ("a host that barely notices"): what a
dashboard that polls costs the Mac the VMs run on.

- Locally: an operator on the simulator with 10 local VMs, and a dashboard that once a second
  asks ``GET /vms`` and then ``GET /vms/{name}`` of each VM (one keep-alive connection): the
  Tart processes the operator spawns per second, from the simulator's call log.
- Over SSH (when tests/sshd_env.py can run a throw-away sshd here: Linux, root): the same
  dashboard against an operator whose Tart is reached through ssh to 127.0.0.1: the SSH logins
  per minute (sshd's own log), and the median of a cold ``GET /vms/{name}`` (a VM whose
  configuration the operator has not read yet, past the listing's freshness bound).

Stdlib only; the operators are stopped by ``servers.Servers``, the sshd here.
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.calllog import started_between
from benchmark.common import HOST, LOCAL_VMS, SIMULATOR, sshd_fixture
from benchmark.records import LocalDashboard, SshDashboard

VM_COUNT = 10
SEED_LOCAL = LOCAL_VMS  # the demo seed
EXTRA_VMS = tuple(f"bench-vm-{i}" for i in range(1, VM_COUNT - len(SEED_LOCAL) + 1))
PAST_STATE_TTL = 1.2  # seconds between two cold details: past the listing's bound (1 s)


class Dashboard:
    """One keep-alive connection; each tick: the list, then every VM's detail."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.errors = 0

    def get(self, path: str) -> tuple[int, Any]:
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            self.errors += 1
        return response.status, json.loads(body) if body else None

    def tick(self) -> None:
        status, vms = self.get("/vms")
        for vm in vms if status == 200 else []:
            if vm["source"] == "local":
                self.get(f"/vms/{vm['name']}")

    def run(self, seconds: float) -> tuple[float, float, int]:
        """Tick once a second for ``seconds``; returns (start, end, ticks) in wall time."""
        ticks = max(1, round(seconds))
        start = time.time()
        for k in range(ticks):
            self.tick()
            delay = start + k + 1 - time.time()
            if delay > 0:
                time.sleep(delay)
        return start, time.time(), ticks

    def close(self) -> None:
        self.conn.close()


def add_local_vms(env: dict[str, str]) -> None:
    """Clone the demo's Linux VM up to 10 local VMs, outside the call log."""
    quiet = {k: v for k, v in env.items() if k not in ("TART_SIM_CALL_LOG", "TART_SIM_DELAY")}
    for name in EXTRA_VMS:
        subprocess.run([str(SIMULATOR), "clone", "ubuntu-runner", name], env=quiet, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def cold_details(board: Dashboard, names: tuple[str, ...]) -> list[float]:
    """Milliseconds of GET /vms/{name} of VMs not described yet, each past the listing's
    freshness bound: a `tart list` and a `tart get` each."""
    cold = []
    for name in names:
        time.sleep(PAST_STATE_TTL)
        began = time.perf_counter()
        status, _ = board.get(f"/vms/{name}")
        if status == 200:
            cold.append(round((time.perf_counter() - began) * 1000, 1))
    return cold


def local_dashboard(port: int, call_log: Path, seconds: float, samples: int) -> LocalDashboard:
    """Cold details (the reference for those over SSH), then Tart processes per second under
    the 1 Hz dashboard, after one warm-up tick."""
    board = Dashboard(port)
    try:
        cold = cold_details(board, (*SEED_LOCAL[1:], *EXTRA_VMS)[:samples])
        board.tick()  # warm-up: the first look at each VM reads its configuration
        time.sleep(1.0)
        start, end, ticks = board.run(seconds)
    finally:
        board.close()
    time.sleep(0.3)  # a refresh the last tick started in the background gets logged
    spawned = started_between(call_log, start, end)
    return {"vms": VM_COUNT, "ticks": ticks, "seconds": round(end - start, 2),
            "requests_per_tick": 1 + VM_COUNT, "tart_processes": spawned,
            "tart_per_second": round(spawned / (end - start), 3), "errors": board.errors,
            "cold_detail_samples_ms": cold,
            "cold_detail_median_ms": round(statistics.median(cold), 1) if cold else None}


# --- over SSH -----------------------------------------------------------------------------------


def logins(sshd_log: Path) -> int:
    return sshd_log.read_text(errors="replace").count("Accepted publickey for")


def over_ssh(start_operator: Callable[[dict[str, str]], int], seconds: float, samples: int,
             tart_delay: float) -> SshDashboard:
    """The dashboard and the cold details against an operator whose Tart is on a throw-away
    sshd on 127.0.0.1. ``start_operator(env)`` starts the operator with the SSH settings
    ``env`` and returns its port."""
    sshd_env = sshd_fixture()
    if isinstance(sshd_env, str):
        return {"skipped": sshd_env}
    server = sshd_env.create()
    try:
        config = server.root / "sshd_config"  # every remote Tart call pays the same delay
        config.write_text(config.read_text().replace(
            "SetEnv PATH=", f"SetEnv TART_SIM_DELAY={tart_delay:g} PATH=", 1))
        server.start()
        made = server.ssh("for n in " + " ".join(EXTRA_VMS)
                          + '; do tart clone ubuntu-runner "$n" || exit 1; done', timeout=120)
        if made.returncode != 0:
            return {"skipped": f"cloning the VMs over ssh failed: {made.stderr.strip()[:200]}"}
        before_start = logins(server.sshd_log)
        port = start_operator(server.settings_env())
        board = Dashboard(port)
        try:
            first = time.perf_counter()
            board.get(f"/vms/{SEED_LOCAL[0]}")  # the first request: it opens the connection
            first_ms = (time.perf_counter() - first) * 1000
            cold = cold_details(board, (*SEED_LOCAL[1:], *EXTRA_VMS)[:samples])
            board.tick()  # every VM's configuration read: the dashboard's steady state
            at_start = logins(server.sshd_log)
            start, end, ticks = board.run(seconds)
            during = logins(server.sshd_log) - at_start
        finally:
            board.close()
        return {
            "vms": VM_COUNT, "ticks": ticks, "seconds": round(end - start, 2),
            "logins_during_dashboard": during,
            "logins_per_minute": round(during * 60 / (end - start), 2),
            "logins_whole_run": logins(server.sshd_log) - before_start,
            "first_request_ms": round(first_ms, 1),
            "cold_detail_samples_ms": cold,
            "cold_detail_median_ms": round(statistics.median(cold), 1) if cold else None,
            "errors": board.errors,
        }
    finally:
        server.cleanup()
