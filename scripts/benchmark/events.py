"""The event-stream figures: what watchers cost the host, how soon
a change made outside the operator reaches them, and the operator's memory with 100 of them.

It talks to an operator on the Tart simulator that bench.py started (default watch interval):
``GET /events`` streams read by threads of this process, the simulator's call log (when each
Tart call of the operator began), and the simulator run by hand on the operator's TART_HOME —
`tart run` and `tart stop` typed "outside", not written to the call log. Stdlib only.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmark.calllog import read_calls
from benchmark.common import HOST, RUNTIME_FILE, repo_module, rss_mib
from benchmark.records import Events

VM = "ubuntu-runner"  # a Linux guest of the demo seed: no macOS slot cap
WATCHERS = 100
DEADLINE = 15.0  # seconds an outside change may take to show before the sample counts as lost


class Watcher:
    """One ``GET /events`` stream, read by a thread; ``events`` gets (arrival time, event JSON)
    of the vm.state events when ``keep`` is set, everything else is read and dropped."""

    def __init__(self, port: int, keep: bool = False) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=30)
        self.sock.sendall(f"GET /events HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode())
        self.keep = keep
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.open = threading.Event()  # the head and the first block (retry) arrived
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    if b"retry:" in block:
                        self.open.set()
                    if self.keep and b"event: vm.state" in block:
                        data = block.split(b"\ndata: ", 1)[1]
                        self.events.put((time.time(), json.loads(data)))
        except OSError:
            return

    def close(self) -> None:
        repo_module("vm_operator.sockets").close_both_ways(self.sock)


def lists_per_second(call_log: Path, seconds: float) -> float:
    before = list_calls(call_log)
    time.sleep(seconds)
    return round((list_calls(call_log) - before) / seconds, 2)


def list_calls(call_log: Path) -> int:
    """How many `tart list` the operator has started so far."""
    return sum(1 for call in read_calls(call_log) if call.command == "list")


def outside_env(tart_home: Path, base: dict[str, str]) -> dict[str, str]:
    """The simulator as a person on the host runs it: the operator's Tart home, no call log,
    no added delay."""
    env = {k: v for k, v in base.items() if not k.startswith(("TART_", "VM_OPERATOR_"))}
    env["TART_HOME"] = str(tart_home)
    return env


def wait_state(watcher: Watcher, to: str, since: float) -> float | None:
    """Seconds from ``since`` to the vm.state event of VM (cause outside) to ``to``."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            arrived, event = watcher.events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            return None
        data = event["data"]
        if event["vm"] == VM and data["to"] == to and data["cause"] == "outside":
            return arrived - since
    return None


def locked_at(tart_home: Path) -> float | None:
    """When the simulator's `tart run` took the VM's lock (its run record): from then on Tart
    lists the VM running."""
    try:
        record = json.loads((tart_home / "vms" / VM / RUNTIME_FILE).read_text())
        return float(record["startedAt"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def outside_latency(watcher: Watcher, simulator: Path, env: dict[str, str], tart_home: Path,
                    samples: int) -> tuple[list[float | None], list[float | None]]:
    """``samples`` times: `tart run` by hand, then `tart stop`. The delay of each event from
    the change in Tart (the run's lock taken; `tart stop` returned), and from the command."""
    from_change: list[float | None] = []
    from_command: list[float | None] = []
    for _ in range(samples):
        began = time.time()
        run = subprocess.Popen([str(simulator), "run", VM, "--no-graphics"], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            delay = wait_state(watcher, "running", began)
            locked = locked_at(tart_home)
            from_command.append(delay)
            from_change.append(None if delay is None or locked is None
                               else delay - (locked - began))
            began = time.time()
            subprocess.run([str(simulator), "stop", VM], env=env, check=False, timeout=30,
                           stdin=subprocess.DEVNULL, capture_output=True)
            stopped = time.time()
            delay = wait_state(watcher, "stopped", began)
            from_command.append(delay)
            from_change.append(None if delay is None else delay - (stopped - began))
        finally:
            try:
                run.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait(timeout=5)
        time.sleep(0.3)
    return from_change, from_command


def measure(port: int, pid: int, call_log: Path, tart_home: Path, simulator: Path,
            base_env: dict[str, str], window: float, samples: int) -> Events:
    """The three figures: Tart calls with 1 and with 100 watchers, RSS with 100, latency."""
    rss_idle = rss_mib(pid, 1)
    first = Watcher(port, keep=True)
    others: list[Watcher] = []
    try:
        first.open.wait(10)
        one = lists_per_second(call_log, window)
        others = [Watcher(port) for _ in range(WATCHERS - 1)]
        opened = sum(w.open.wait(10) for w in others) + 1
        many = lists_per_second(call_log, window)
        rss_watched = rss_mib(pid, 1)
        delays, from_command = outside_latency(first, simulator, outside_env(tart_home, base_env),
                                               tart_home, samples)
        rss_after = rss_mib(pid, 1)
    finally:
        for watcher in [first, *others]:
            watcher.close()
    seen = [max(0.0, d) for d in delays if d is not None]
    commanded = [d for d in from_command if d is not None]
    return {
        "watchers": opened,
        "window_s": window,
        "tart_list_per_s_1_watcher": one,
        "tart_list_per_s_100_watchers": many,
        "rss_idle_mib": rss_idle,
        "rss_100_watchers_mib": rss_watched,
        "rss_100_watchers_after_changes_mib": rss_after,
        "outside_samples": len(delays),
        "outside_lost": len(delays) - len(seen),
        "outside_median_ms": round(statistics.median(seen) * 1000, 1) if seen else None,
        "outside_max_ms": round(max(seen) * 1000, 1) if seen else None,
        "outside_from_command_median_ms": (round(statistics.median(commanded) * 1000, 1)
                                           if commanded else None),
    }
