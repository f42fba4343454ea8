"""The read path against the bare server: the reads (``load.READS``) in alternating rounds at
each client count, plain or over TLS; the long run; and the soak, the read mix for minutes with
the server's RSS sampled. Every figure comes from ``drive``."""

from __future__ import annotations

import argparse
import socket
import statistics
import time

from benchmark.common import HOST, log, request, rss_mib
from benchmark.drive import drive, median_ratio, merge_rounds
from benchmark.load import LABELS, READS, READY_VM
from benchmark.records import ByClients, ByScenario, LoadResult, Memory, Soak
from benchmark.servers import Server

SOAK_WARMUP_S = 60.0  # a soak's end is compared with its first sample past this (if it is long)
READY_TIMEOUT_S = 60.0


def prepare_ready_vm(server: Server) -> None:
    """Start ``READY_VM`` and wait until its detail says ready, with a spec: what the
    dashboard polls (the mixed scenario and ``stop_all`` stop it again)."""
    tls = server.client_tls
    status, doc = request(server.port, "GET", f"/vms/{READY_VM}", tls=tls)
    if status == 200 and doc.get("ready") is True and doc.get("spec") is not None:
        return  # still running since the last client count's rounds
    status, answer = request(server.port, "POST", f"/vms/{READY_VM}/start", tls=tls)
    if status not in (200, 202):
        raise RuntimeError(f"POST /vms/{READY_VM}/start answered {status}: {answer!r}")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        status, doc = request(server.port, "GET", f"/vms/{READY_VM}", tls=tls)
        if status == 200 and doc.get("ready") is True and doc.get("spec") is not None:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{READY_VM} not ready with a spec after {READY_TIMEOUT_S:g} s: "
                               f"{status} {doc!r}"[:500])
        time.sleep(0.1)


def p99_ratio(mine: list[LoadResult], bare: list[LoadResult]) -> float | None:
    """The median over the rounds of (p99 ÷ the bare server's p99 in the same round)."""
    pairs = [(m["p99_ms"], b["p99_ms"]) for m, b in zip(mine, bare)]
    ratios = [m / b for m, b in pairs if m is not None and b]
    return round(statistics.median(ratios), 3) if ratios else None


def read_rounds(bare: Server, op: Server, clients: int, args: argparse.Namespace,
                quiet: list[Server]) -> tuple[LoadResult, dict[str, LoadResult]]:
    """The reads at ``clients`` connections: ``--rounds`` rounds, each the bare server then
    every read on the operator (the ready VM prepared first); the bare server's merged
    figures and each read's, with its ratios to the bare server (req/s and p99)."""
    prepare_ready_vm(op)
    where = " over TLS" if op.client_tls is not None else ""
    rounds: dict[str, list[LoadResult]] = {k: [] for k in ("bare", *READS)}
    for r in range(args.rounds):
        for scenario in ("bare", *READS):
            server = bare if scenario == "bare" else op
            log(f"{clients:>3} clients{where}, round {r + 1}/{args.rounds}: {LABELS[scenario]}")
            rounds[scenario].append(drive(server, scenario, clients, args.duration,
                                          args.client, drain_cap=args.drain, quiet=quiet))
    bare_rps = [x["rps"] for x in rounds["bare"]]
    reads: dict[str, LoadResult] = {}
    for scenario in READS:
        merged = merge_rounds(rounds[scenario])
        merged["vs_bare"] = median_ratio([x["rps"] for x in rounds[scenario]], bare_rps)
        merged["p99_vs_bare"] = p99_ratio(rounds[scenario], rounds["bare"])
        reads[scenario] = merged
    return merge_rounds(rounds["bare"]), reads


def all_read_rounds(bare: Server, op: Server, args: argparse.Namespace,
                    quiet: list[Server]) -> tuple[ByClients, ByScenario]:
    """``read_rounds`` at every ``--clients`` count."""
    bare_results: ByClients = {}
    results: ByScenario = {s: {} for s in READS}
    for clients in args.clients:
        bare_results[str(clients)], reads = read_rounds(bare, op, clients, args, quiet)
        for scenario, result in reads.items():
            results[scenario][str(clients)] = result
    return bare_results, results


def measure_long(op: Server, args: argparse.Namespace, memory: Memory,
                 quiet: list[Server]) -> LoadResult:
    """``--long`` requests at ``--long-clients``; the RSS before, during and after, into
    ``memory``."""
    log(f"long run: {args.long} requests, {args.long_clients} clients")
    samples: list[tuple[float, float]] = []
    before = rss_mib(op.pid)
    result = drive(op, "long", args.long_clients, args.long_max_seconds, args.client,
                   drain_cap=args.drain, requests=args.long,
                   reconnect_every=args.reconnect_every, rss_samples=samples, quiet=quiet)
    time.sleep(0.5)
    after = rss_mib(op.pid)
    memory.update({
        "long_requests": result["requests"],
        "long_before_mib": before,
        "long_after_mib": after,
        "long_peak_mib": max([s[1] for s in samples] + [after or 0, before or 0]),
        "long_growth_mib": (None if before is None or after is None
                            else round(after - before, 2)),
        "long_samples": samples,
    })
    return result


def soak_baseline(samples: list[tuple[float, float]], seconds: float,
                  quick: bool) -> tuple[float, float] | None:
    """The sample a soak's end is compared with: the first at or past SOAK_WARMUP_S when the
    soak lasts at least twice that (so the caches and threads have filled), else the first."""
    if not samples:
        return None
    if quick or seconds < 2 * SOAK_WARMUP_S:
        return samples[0]
    return next((s for s in samples if s[0] >= SOAK_WARMUP_S), samples[0])


def measure_soak(op: Server, args: argparse.Namespace, quiet: list[Server],
                 clients: int = 16) -> Soak:
    """The read mix at ``clients`` connections for ``--soak-seconds``, the RSS sampled every
    30 s (quick: 1 s), and once more at the end."""
    every = 1.0 if args.quick else 30.0
    prepare_ready_vm(op)
    log(f"soak: {LABELS['soak']} at {clients} clients for {args.soak_seconds:g} s, RSS every "
        f"{every:g} s")
    samples: list[tuple[float, float]] = []
    result = drive(op, "soak", clients, args.soak_seconds, args.client, drain_cap=args.drain,
                   rss_samples=samples, rss_every=every, quiet=quiet)
    end = rss_mib(op.pid)
    if end is not None:
        samples.append((round(result["seconds"], 1), end))
    baseline = soak_baseline(samples, args.soak_seconds, args.quick)
    return {
        "seconds": args.soak_seconds, "every_s": every, "clients": clients, "load": result,
        "samples": samples,
        "baseline_at_s": None if baseline is None else baseline[0],
        "baseline_mib": None if baseline is None else baseline[1],
        "end_mib": end,
    }


def ready_env() -> dict[str, str]:
    """An operator's settings for a ready VM: the simulated guests listen on a free loopback
    port, the one its readiness probe tries (never a real sshd's port 22)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        guest = str(probe.getsockname()[1])
    return {"TART_SIM_GUEST_PORT": guest, "VM_OPERATOR_READY_PORT": guest}
