"""One scenario against one server (``drive``): throughput, latencies, the Tart calls it caused
and the CPU it cost; and the median of several rounds."""

from __future__ import annotations

import statistics
import threading
import time

from benchmark.calllog import calls_between, max_concurrent
from benchmark.common import client_cpu, cpu_seconds, log, rss_mib
from benchmark.load import CONDITIONAL, Control, Worker, ms, percentile, plan_for
from benchmark.records import LoadResult
from benchmark.servers import Server, wait_tart_quiet


def drive(server: Server, scenario: str, clients: int, duration: float, client: str, *,
          drain_cap: float, requests: int | None = None, reconnect_every: int = 0,
          rss_samples: list[tuple[float, float]] | None = None, rss_every: float = 1.0,
          quiet: list[Server]) -> LoadResult:
    """Run one scenario against one server; returns throughput, latencies, Tart calls, CPU
    (``rss_samples``: the server's RSS every ``rss_every`` seconds, appended)."""
    wait_tart_quiet(60, quiet)
    control = Control(duration=duration)

    def begin() -> None:
        control.start = time.perf_counter()
        control.deadline = control.start + duration

    barrier = threading.Barrier(clients, action=begin, timeout=120)
    per_client = None if requests is None else [requests // clients + (i < requests % clients)
                                                for i in range(clients)]
    workers = [Worker(i, server, plan_for(scenario, i), client, barrier, control,
                      requests=None if per_client is None else per_client[i],
                      reconnect_every=reconnect_every, conditional=scenario in CONDITIONAL)
               for i in range(clients)]
    wall0 = time.time()
    for worker in workers:
        worker.start()
    # Wait for the barrier, then for the end of the run (plus a bounded drain of requests in
    # flight).
    while control.start == 0.0 and any(w.is_alive() for w in workers):
        time.sleep(0.01)
    started = control.start
    cpu_start, (srv_start, kids_start) = client_cpu(), cpu_seconds(server.pid)
    hard_stop = time.perf_counter() + duration + drain_cap
    last_sample = 0.0
    aborted_at = None
    abandoned = 0
    while any(w.is_alive() for w in workers):
        if time.perf_counter() >= hard_stop:
            aborted_at = time.perf_counter()
            abandoned = sum(1 for w in workers if w.in_flight)
            control.abort.set()
            for worker in workers:
                worker.conn.abort()
            break
        if rss_samples is not None and time.perf_counter() - last_sample >= rss_every:
            last_sample = time.perf_counter()
            value = rss_mib(server.pid)
            if value is not None:
                rss_samples.append((round(last_sample - started, 1), value))
        time.sleep(0.02)
    for worker in workers:
        worker.join(timeout=5)
    unfinished = sum(1 for w in workers if w.is_alive())
    served_all = sum(len(w.latencies) + len(w.write_latencies) for w in workers)
    # The run lasts until the last response, and at least its duration (or until abandoned).
    ended = max([w.last_done for w in workers] + [started])
    if aborted_at is not None:
        ended = aborted_at
    elif requests is None or served_all < requests:
        ended = max(ended, control.deadline)
    elapsed = max(ended - started, 1e-6)
    cpu1, (srv1, kids1) = client_cpu(), cpu_seconds(server.pid)
    wall1 = time.time()

    latencies = sorted(x for w in workers for x in w.latencies)
    writes = sorted(x for w in workers for x in w.write_latencies)
    everything = sorted(latencies + writes)
    statuses: dict[str, int] = {}
    for worker in workers:
        for status, count in worker.statuses.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    errors = [e for w in workers for e in w.errors]
    errors += [w.warm_error for w in workers if w.warm_error]
    served = len(everything)
    # 409 (VM limit, OCI image) and 503 (per-VM write queue full) are the operator's deliberate
    # refusals under contention, not failures; 304 answers a conditional GET
    refused = sum(n for s, n in statuses.items() if s in ("409", "503"))
    bad = sum(n for s, n in statuses.items()
              if not (200 <= int(s) < 300 or s in ("304", "409", "503")))
    result: LoadResult = {
        "clients": clients,
        "requests": served,
        "seconds": round(elapsed, 3),
        "rps": round(served / elapsed, 1),
        "p50_ms": ms(percentile(everything, 0.50)),
        "p99_ms": ms(percentile(everything, 0.99)),
        "max_ms": ms(everything[-1] if everything else None),
        "statuses": statuses,
        "errors": len(errors) + bad,
        "refused": refused,
        "error_samples": sorted(set(errors))[:3],
        "abandoned_requests": abandoned,
        "unfinished_clients": unfinished,
        "client_cpu_pct": round(100 * (cpu1 - cpu_start) / elapsed, 1),
        "server_cpu_pct": round(100 * (srv1 - srv_start) / elapsed, 1),
        "tart_cpu_pct": round(100 * (kids1 - kids_start) / elapsed, 1),
        # CPU the server process spent per request (its own threads; Tart children excluded):
        # steadier than req/s on a busy machine, and what a faster hot path would lower
        # (None when the process clock, in 10 ms ticks, saw too little to divide)
        "server_cpu_us_per_request": (round(1e6 * (srv1 - srv_start) / served, 1)
                                      if served >= 100 and srv1 - srv_start >= 0.1 else None),
        "client_cpu_us_per_request": (round(1e6 * (cpu1 - cpu_start) / served, 1)
                                      if served >= 100 and cpu1 - cpu_start >= 0.1 else None),
    }
    if writes:
        result["reads"] = {"requests": len(latencies), "p50_ms": ms(percentile(latencies, 0.5)),
                           "p99_ms": ms(percentile(latencies, 0.99))}
        result["writes"] = {"requests": len(writes), "p50_ms": ms(percentile(writes, 0.5)),
                            "p99_ms": ms(percentile(writes, 0.99))}
    log(f"      {served} requests in {elapsed:.2f} s: {result['rps']} req/s, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, errors {result['errors']}")
    if server.call_log is not None:
        wait_tart_quiet(drain_cap, [server])
        calls = calls_between(server.call_log, wall0, wall1)
        spawned: dict[str, int] = {}
        for call in calls:
            spawned[call.command] = spawned.get(call.command, 0) + 1
        result["tart_spawns"] = spawned
        result["tart_spawns_total"] = sum(spawned.values())
        result["tart_list_spawns"] = spawned.get("list", 0)
        result["max_concurrent_tart_list"] = max_concurrent(calls, "list", time.time())
    return result


# --- control requests -----------------------------------------------------------------------


def median_ratio(numerators: list[float], denominators: list[float]) -> float | None:
    ratios = [n / d for n, d in zip(numerators, denominators) if d]
    return round(statistics.median(ratios), 3) if ratios else None


def merge_rounds(rounds: list[LoadResult]) -> LoadResult:
    """The median round's figures, with every round's req/s kept."""
    ordered = sorted(rounds, key=lambda r: r["rps"])
    merged = ordered[len(ordered) // 2].copy()
    merged["rps"] = round(statistics.median(r["rps"] for r in rounds), 1)
    merged["rounds_rps"] = [r["rps"] for r in rounds]
    merged["errors"] = sum(r["errors"] for r in rounds)
    merged["requests"] = sum(r["requests"] for r in rounds)
    if "tart_spawns" in rounds[0]:
        spawns: dict[str, int] = {}
        for r in rounds:
            for k, v in r["tart_spawns"].items():
                spawns[k] = spawns.get(k, 0) + v
        merged["tart_spawns"] = spawns
        merged["tart_spawns_total"] = sum(spawns.values())
        merged["tart_list_spawns"] = spawns.get("list", 0)
        merged["max_concurrent_tart_list"] = max(r["max_concurrent_tart_list"] for r in rounds)
    return merged

