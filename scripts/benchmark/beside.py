"""A create beside a pull: how soon a create from a cached image answers ``succeeded`` while a
long pull of another image runs. Operations run side by side where Tart allows
(``vm_operator/core/scheduling.py``): Tart's global lock covers a clone's copy, not a pull, so
the create need not wait for the pull (when the queue ran one operation at a time, it waited
the whole pull). Talks HTTP to an operator of its own on the Tart simulator. Stdlib only.
"""

from __future__ import annotations

import statistics
import time

from benchmark.common import request
from benchmark.lifecycle import CACHED_IMAGE, POLL, PULLED_IMAGE, settle
from benchmark.records import BesidePull

PULL_SECONDS = 30.0  # the simulated pull of the other image (TART_SIM_PULL_SECONDS)


def beside_env() -> dict[str, str]:
    """The simulator's knobs: a pull that takes PULL_SECONDS."""
    return {"TART_SIM_PULL_SECONDS": f"{PULL_SECONDS:g}", "TART_SIM_PROGRESS_INTERVAL": "0.5"}


def state(port: int, op_id: str) -> str:
    status, doc = request(port, "GET", f"/operations/{op_id}")
    if status != 200:
        raise RuntimeError(f"GET /operations/{op_id} answered {status}: {doc}")
    return str(doc["state"])


def submit(port: int, path: str, body: dict[str, str]) -> str:
    status, doc = request(port, "POST", path, body)
    if status != 202:
        raise RuntimeError(f"POST {path} answered {status}: {doc}")
    return str(doc["id"])


def measure(port: int, samples: int) -> BesidePull:
    """Start the pull; once it downloads, ``samples`` creates one after another, each timed
    from sending POST /vms to the first GET that shows it finished (polled every POLL s);
    whether the pull was still running when the last one had finished; then cancel the pull."""
    settle(port)
    pull = submit(port, "/images", {"ref": PULLED_IMAGE})
    deadline = time.monotonic() + 60
    while request(port, "GET", f"/operations/{pull}")[1].get("progress") is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the pull never began to download")
        time.sleep(POLL)
    took: list[float] = []
    try:
        for k in range(samples):
            sent = time.monotonic()
            create = submit(port, "/vms", {"name": f"bench-beside-{k}", "from": CACHED_IMAGE})
            while (now := state(port, create)) in ("queued", "running"):
                if time.monotonic() - sent > PULL_SECONDS + 60:
                    raise RuntimeError(f"the create {create} did not finish")
                time.sleep(POLL)
            if now != "succeeded":
                raise RuntimeError(f"the create {create} ended {now}")
            took.append(time.monotonic() - sent)
        still_pulling = state(port, pull) == "running"
    finally:
        request(port, "POST", f"/operations/{pull}/cancel")
    return {
        "image": CACHED_IMAGE,
        "pulling": PULLED_IMAGE,
        "pull_seconds": PULL_SECONDS,
        "samples_s": [round(t, 3) for t in took],
        "median_s": round(statistics.median(took), 3),
        "max_s": round(max(took), 3),
        "pull_still_running": still_pulling,
        "poll_ms": POLL * 1000,
    }


def beside_text(beside: BesidePull) -> str:
    """The README's sentence."""
    return (f"A create from a cached image (`{beside['image']}`) while a "
            f"{beside['pull_seconds']:g} s pull of another image (`{beside['pulling']}`) runs: "
            f"`succeeded` {beside['median_s']:.2f} s after its request (median of "
            f"{len(beside['samples_s'])}; max {beside['max_s']:.2f} s; polled every "
            f"{beside['poll_ms']:g} ms); the pull was "
            f"{'still running' if beside['pull_still_running'] else 'OVER'} by then.")
