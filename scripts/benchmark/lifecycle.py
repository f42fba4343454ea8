"""The lifecycle figures: what a create costs the operator itself,
and how soon a pull's progress shows in GET /operations/{id}.

Both talk HTTP to an operator on the Tart simulator that the run started, and read what the
simulator wrote itself: its call log (TART_SIM_CALL_LOG: when each Tart call began and ended)
and its progress log (TART_SIM_PROGRESS_LOG: when it printed each percentage). Stdlib only.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmark.calllog import finished
from benchmark.common import request
from benchmark.records import CreateCost, CreateSample, Freshness, Lifecycle

CACHED_IMAGE = "ghcr.io/cirruslabs/macos-sequoia-base:latest"  # cached by the demo seed
PULLED_IMAGE = "ghcr.io/cirruslabs/ubuntu:latest"  # not cached: a create pulls it
POLL = 0.01  # seconds between two looks at an operation
TART_SECONDS_METRIC = "vm_operator_tart_call_duration_seconds_sum"


def epoch(timestamp: str) -> float:
    """An API timestamp (ISO 8601, milliseconds, Z) as seconds since the epoch."""
    parsed = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    return parsed.replace(tzinfo=UTC).timestamp()


def tart_seconds(port: int) -> float:
    """The operator's own total of time spent in Tart calls (its /metrics), spawns included."""
    status, text = request(port, "GET", "/metrics")
    total = 0.0
    if status == 200 and isinstance(text, bytes):
        for line in text.decode().splitlines():
            if line.startswith(TART_SECONDS_METRIC + "{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def wait_finished(port: int, path: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, doc = request(port, "GET", path)
        if status == 200 and doc["finished_at"]:
            return doc  # type: ignore[no-any-return]
        time.sleep(POLL)
    raise RuntimeError(f"{path} did not finish within {timeout:g} s")


def settle(port: int, timeout: float = 30) -> None:
    """Wait for the operator's background ``tart --version`` (its first /health starts it) to
    end, so that no Tart call but a create's own falls in a measured window."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, health = request(port, "GET", "/health")
        if status == 200 and health["tart"]["version"]:
            return
        time.sleep(0.05)


def create_cost(port: int, call_log: Path, samples: int) -> CreateCost:
    """Creates from a cached image (clone + set, no pull). The operator's own time is the wall
    time from sending POST /vms to the operation's ``finished_at``, less the Tart calls made
    meanwhile as the simulator's call log times them, less what starting those very calls cost
    beyond that (the simulator is a Python script: fork/exec and an interpreter start and exit,
    which a real Tart does not cost): the operator's own timing of each Tart call (its metrics)
    less the call log's."""
    settle(port)
    rows: list[CreateSample] = []
    for k in range(-1, samples):  # the first (-1) warms up, uncounted
        before = tart_seconds(port)
        sent = time.time()
        status, doc = request(port, "POST", "/vms", {"name": f"bench-create-{k}",
                                                     "from": CACHED_IMAGE})
        if status != 202:
            raise RuntimeError(f"POST /vms answered {status}: {doc}")
        final = wait_finished(port, f"/operations/{doc['id']}")
        if final["state"] != "succeeded":
            raise RuntimeError(f"the create failed: {final}")
        done = epoch(final["finished_at"])
        calls = [c for c in finished(call_log)
                 if c.start >= sent and c.end is not None and c.end <= done + 0.002]
        inside = sum(c.end - c.start for c in calls if c.end is not None)
        spawning = max(0.0, tart_seconds(port) - before - inside)
        wall = done - sent
        if k < 0:
            continue
        rows.append({
            "wall_ms": round(wall * 1000, 1),
            "tart_calls": [c.command for c in calls],
            "tart_logged_ms": round(inside * 1000, 1),
            "tart_spawn_ms": round(spawning * 1000, 1),
            "own_ms": round((wall - inside - spawning) * 1000, 1),
        })
    own = [row["own_ms"] for row in rows]
    return {
        "image": CACHED_IMAGE,
        "samples": rows,
        "own_median_ms": round(statistics.median(own), 1),
        "own_max_ms": max(own),
        "wall_median_ms": round(statistics.median(row["wall_ms"] for row in rows), 1),
        "tart_logged_median_ms": round(statistics.median(
            row["tart_logged_ms"] for row in rows), 1),
        "tart_spawn_median_ms": round(statistics.median(row["tart_spawn_ms"] for row in rows), 1),
    }


def progress_freshness(port: int, progress_log: Path) -> Freshness:
    """A create that pulls: GET /operations/{id} polled every POLL seconds; for each percentage
    the simulator printed (its progress log), how long until a response showed it (or more)."""
    progress_log.unlink(missing_ok=True)
    status, doc = request(port, "POST", "/vms", {"name": "bench-pull", "from": PULLED_IMAGE})
    if status != 202:
        raise RuntimeError(f"POST /vms answered {status}: {doc}")
    path = f"/operations/{doc['id']}"
    seen: list[tuple[float, int]] = []  # (when the answer arrived, the progress it showed)
    while True:
        status, op = request(port, "GET", path)
        if status == 200 and op["progress"] is not None:
            seen.append((time.time(), op["progress"]))
        if status != 200 or op["finished_at"]:
            break
        time.sleep(POLL)
    printed = [(float(when), int(percent)) for when, percent in
               (line.split() for line in progress_log.read_text().splitlines())]
    delays = []
    for printed_at, percent in printed:
        shown = next((when for when, value in seen if value >= percent), None)
        if shown is not None:
            delays.append(max(0.0, shown - printed_at))
    missing = len(printed) - len(delays)
    return {
        "image": PULLED_IMAGE,
        "state": op.get("state") if isinstance(op, dict) else None,
        "percentages_printed": len(printed),
        "never_shown": missing,
        "median_ms": round(statistics.median(delays) * 1000, 1) if delays else None,
        "max_ms": round(max(delays) * 1000, 1) if delays else None,
        "poll_ms": POLL * 1000,
    }


def lifecycle_env(progress_log: Path, pull_seconds: float) -> dict[str, str]:
    """The simulator's knobs for the lifecycle operator: a short pull that prints often."""
    return {"TART_SIM_PULL_SECONDS": f"{pull_seconds:g}", "TART_SIM_PROGRESS_INTERVAL": "0.1",
            "TART_SIM_PROGRESS_LOG": str(progress_log)}


def measure(port: int, call_log: Path, progress_log: Path, samples: int) -> Lifecycle:
    return {"create": create_cost(port, call_log, samples),
            "progress": progress_freshness(port, progress_log)}
