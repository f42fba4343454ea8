"""Measurements of single requests: the cost of one Tart call as the operator sees it, and how
soon after Tart reports a VM running the operator answers its start."""

from __future__ import annotations

import json
import statistics
import time

from benchmark.calllog import calls_between, read_calls
from benchmark.common import LOCAL_VMS, RUNTIME_FILE, request
from benchmark.records import CallCost, StartResult, StartSample
from benchmark.servers import Server, wait_tart_quiet


def tart_call_cost(server: Server) -> dict[str, CallCost]:
    """Mean wall time of a Tart call as the operator sees it (its /metrics: spawn, interpreter
    start-up, TART_SIM_DELAY, work) beside the time the simulator itself ran (its call log)."""
    status, text = request(server.port, "GET", "/metrics")
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    if status == 200 and isinstance(text, bytes):
        for line in text.decode().splitlines():
            for suffix, into in (("_sum", sums), ("_count", counts)):
                prefix = f"vm_operator_tart_call_duration_seconds{suffix}{{command=\""
                if line.startswith(prefix):
                    command = line[len(prefix):line.index('"', len(prefix))]
                    command = "version" if command == "--version" else command
                    into[command] = float(line.rsplit(" ", 1)[1])
    inside: dict[str, list[float]] = {}
    for c in read_calls(server.call_log) if server.call_log else []:
        if c.end is not None and c.command != "run":
            inside.setdefault(c.command, []).append(c.end - c.start)
    result: dict[str, CallCost] = {}
    for command in sorted(set(counts) | set(inside)):
        seen = sums.get(command, 0) / counts[command] if counts.get(command) else None
        own = inside.get(command)
        result[command] = {
            "calls": int(counts.get(command, 0)),
            "operator_mean_ms": None if seen is None else round(seen * 1000, 1),
            "simulator_mean_ms": round(1000 * sum(own) / len(own), 1) if own else None,
        }
    return result


def stop_all(server: Server) -> None:
    for vm in LOCAL_VMS:
        request(server.port, "POST", f"/vms/{vm}/stop?timeout=5")


def measure_start(server: Server, samples: int, tart_delay: float,
                  quiet: list[Server]) -> StartResult:
    """How long after the simulated VM holds its lock (what `tart list` calls running) the
    POST /vms/{name}/start response arrives.

    The lock moment is ``startedAt`` from the simulator's own run record (``.tart-sim-run.json``
    in the VM's folder, written right after ``tart run`` takes the lock); the estimate
    "call-log start of `run` + TART_SIM_DELAY" is reported beside it.
    """
    assert server.tart_home is not None and server.call_log is not None
    rows: list[StartSample] = []
    stop_all(server)
    for k in range(samples):
        vm = LOCAL_VMS[k % len(LOCAL_VMS)]
        time.sleep(0.3)
        wait_tart_quiet(30, quiet)
        sent = time.time()
        status, _ = request(server.port, "POST", f"/vms/{vm}/start")
        answered = time.time()
        lock_at, source = None, "none"
        try:
            record = json.loads((server.tart_home / "vms" / vm / RUNTIME_FILE).read_text())
            lock_at, source = float(record["startedAt"]), "simulator run record (startedAt)"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        during = calls_between(server.call_log, sent - 1, answered)
        runs = [c for c in during if c.command == "run" and c.start >= sent]
        estimate = runs[0].start + tart_delay if runs else None
        if lock_at is None and estimate is not None:
            lock_at, source = estimate, "call-log start of run + TART_SIM_DELAY"
        rows.append({
            "vm": vm, "status": status,
            "post_ms": round((answered - sent) * 1000, 1),
            "after_running_ms": None if lock_at is None else round((answered - lock_at) * 1000, 1),
            "after_calllog_estimate_ms": (None if estimate is None
                                          else round((answered - estimate) * 1000, 1)),
            "lock_source": source,
            # the `tart list` calls of this start, as (start, end) in ms from the lock moment:
            # the simulator samples VM states near the end of a call
            "lists_ms_from_lock": [] if lock_at is None else [
                [round((c.start - lock_at) * 1000, 1),
                 None if c.end is None else round((c.end - lock_at) * 1000, 1)]
                for c in during if c.command == "list" and (c.end is None or c.end >= sent)],
        })
        request(server.port, "POST", f"/vms/{vm}/stop?timeout=5")
    after = [r["after_running_ms"] for r in rows
             if r["after_running_ms"] is not None and r["status"] in (200, 202)]
    return {
        "samples": rows,
        "median_ms": round(statistics.median(after), 1) if after else None,
        "max_ms": max(after) if after else None,
        "post_median_ms": round(statistics.median(r["post_ms"] for r in rows), 1) if rows else None,
        "lock_source": rows[0]["lock_source"] if rows else "none",
    }


# --- the run --------------------------------------------------------------------------------
