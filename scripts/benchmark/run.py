"""A whole run: start the servers, measure every scenario at every client count in alternating
rounds, then memory, starts, creates, watchers and the host's cost; stop everything."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from benchmark import beside, events, hostcost, lifecycle, tunnels
from benchmark.calllog import max_concurrent, read_calls
from benchmark.common import SIMULATOR, loadavg, log, machine, rss_mib
from benchmark.drive import drive
from benchmark.load import LABELS, OPERATOR_SCENARIOS, SCENARIOS
from benchmark.probes import measure_start, stop_all, tart_call_cost
from benchmark.reads import (
    all_read_rounds,
    measure_long,
    measure_soak,
    read_rounds,
    ready_env,
)
from benchmark.records import (
    BesidePull,
    ByClients,
    ByScenario,
    Events,
    HostCost,
    Lifecycle,
    Memory,
    Report,
    SshDashboard,
    Tunnels,
)
from benchmark.servers import Servers
from benchmark.targets import (
    beside_pull_targets,
    evaluate,
    host_cost_targets,
    memory_targets,
    read_targets,
)


def run(args: argparse.Namespace) -> Report:
    tart_delay = args.tart_delay / 1000
    fleet = Servers(args.keep, Path(args.operator_src).resolve())
    report: Report = {
        "machine": machine(),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "settings": {
            "tart_delay_ms": args.tart_delay, "duration_s": args.duration,
            "naive_duration_s": args.naive_duration, "rounds": args.rounds,
            "long_max_seconds": args.long_max_seconds,
            "clients": args.clients, "naive_clients": args.naive_clients,
            "long_requests": args.long, "long_clients": args.long_clients,
            "start_samples": args.start_samples, "cache_ttl_s": args.cache_ttl,
            "client": args.client,
            "operator_logging": ("access log on" if args.access_log else "--no-access-log")
            + "; stdout drained and discarded after the listening line",
            "quick": args.quick,
            "operator_src": str(fleet.operator_src),
        },
    }
    only = (("tunnels", args.tunnels_only), ("beside_pull", args.beside_pull_only),
            ("host_cost", args.host_cost_only))
    if args.reads_only or args.tls_only:
        try:
            measure_reads(report, fleet, args, tart_delay)
            report["machine"]["loadavg_at_end"] = loadavg()
            return report
        finally:
            log("stopping everything this run started")
            fleet.close()
    for part, asked in only:
        if asked:
            try:
                measure_only(part, report, fleet, args, tart_delay)
                report["machine"]["loadavg_at_end"] = loadavg()
                return report
            finally:
                log("stopping everything this run started")
                fleet.close()
    try:
        log(f"starting servers in {fleet.root}")
        bare = fleet.start_bare()
        op = fleet.start_operator("operator", args.cache_ttl, tart_delay, args.access_log,
                                  ready_env())
        naive = fleet.start_operator("naive", 0, tart_delay, args.access_log)
        fleet.quiet[:] = quiet = [op, naive]
        time.sleep(0.5)  # let the background `tart --version` finish
        memory: Memory = {
            "operator_idle_mib": rss_mib(op.pid),
            "naive_idle_mib": rss_mib(naive.pid),
            "bare_idle_mib": rss_mib(bare.pid),
        }
        report["servers"] = {
            "operator": {"pid": op.pid, "argv": op.argv},
            "naive": {"pid": naive.pid, "argv": naive.argv},
            "bare": {"pid": bare.pid},
        }
        drain = args.drain
        bare_results: ByClients = {}
        results: ByScenario = {s: {} for s in OPERATOR_SCENARIOS}
        naive_results: ByScenario = {s: {} for s in SCENARIOS}
        for clients in args.clients:
            bare_results[str(clients)], reads = read_rounds(bare, op, clients, args, quiet)
            for scenario, result in reads.items():
                results[scenario][str(clients)] = result
            log(f"{clients:>3} clients: {LABELS['mixed']}")
            mixed = drive(op, "mixed", clients, args.duration, args.client, drain_cap=drain,
                          quiet=quiet)
            stop_all(op)
            mixed["vs_bare"] = round(mixed["rps"] / bare_results[str(clients)]["rps"], 3)
            results["mixed"][str(clients)] = mixed
        naive_drain = args.naive_drain
        for clients in args.naive_clients:
            for scenario in SCENARIOS:
                log(f"{clients:>3} clients, per-request spawn (--cache-ttl 0): {LABELS[scenario]}")
                naive_results[scenario][str(clients)] = drive(
                    naive, scenario, clients, args.naive_duration, args.client,
                    drain_cap=naive_drain, quiet=quiet)
                if scenario == "mixed":
                    stop_all(naive)
        for scenario in OPERATOR_SCENARIOS:
            for clients in args.clients:
                mine = results[scenario][str(clients)]
                ref = naive_results.get(scenario, {}).get(str(clients))
                mine["vs_naive"] = (round(mine["rps"] / ref["rps"], 1)
                                    if ref and ref["rps"] else None)
        log("POST start latency after Tart reports the VM running")
        start = measure_start(op, args.start_samples, tart_delay, quiet)
        memory["operator_after_run_mib"] = rss_mib(op.pid)
        memory["naive_after_run_mib"] = rss_mib(naive.pid)
        memory["bare_after_run_mib"] = rss_mib(bare.pid)
        long_result = measure_long(op, args, memory, quiet)
        report["soak"] = measure_soak(op, args, quiet)
        report["tls_bare"], report["tls_operator"] = measure_tls(fleet, args, tart_delay)
        report["lifecycle"] = measure_lifecycle(fleet, args, tart_delay)
        report["beside_pull"] = measure_beside_pull(fleet, args, tart_delay)
        report["events"] = measure_events(fleet, args, tart_delay)
        report["host_cost"] = measure_host_cost(fleet, args, tart_delay)
        report["tunnels"] = measure_tunnels(fleet, args, tart_delay)
        all_calls = read_calls(op.call_log) if op.call_log else []
        report.update({
            "bare": bare_results,
            "operator": results,
            "naive": naive_results,
            "long": long_result,
            "memory": memory,
            "start": start,
            "tart_list_max_concurrent_whole_run": max_concurrent(all_calls, "list", time.time()),
            "tart_calls_whole_run": len(all_calls),
        })
        report["machine"]["loadavg_at_end"] = loadavg()
        report["tart_call_cost"] = tart_call_cost(op)
        report["targets"] = evaluate(report)
        return report
    finally:
        log("stopping everything this run started")
        fleet.close()


def measure_reads(report: Report, fleet: Servers, args: argparse.Namespace,
                  tart_delay: float) -> None:
    """``--reads-only``: the reads against the bare server, idle memory, the long run and the
    soak; ``--tls-only``: the reads over TLS; their figures and targets into ``report``."""
    report["targets"] = []
    if args.reads_only:
        bare = fleet.start_bare()
        op = fleet.start_operator("operator", args.cache_ttl, tart_delay, args.access_log,
                                  ready_env())
        fleet.quiet[:] = quiet = [op]
        time.sleep(0.5)  # let the background `tart --version` finish
        memory: Memory = {"operator_idle_mib": rss_mib(op.pid), "naive_idle_mib": None,
                          "bare_idle_mib": rss_mib(bare.pid)}
        report["servers"] = {"operator": {"pid": op.pid, "argv": op.argv},
                             "bare": {"pid": bare.pid}}
        report["bare"], report["operator"] = all_read_rounds(bare, op, args, quiet)
        report["long"] = measure_long(op, args, memory, quiet)
        report["memory"] = memory
        report["soak"] = measure_soak(op, args, quiet)
        report["targets"] += read_targets(report["operator"]) + memory_targets(
            memory, report["soak"])
    if args.tls_only:
        report["tls_bare"], report["tls_operator"] = measure_tls(fleet, args, tart_delay)
        report["targets"] += read_targets(report["tls_operator"], tls=True)


def measure_tls(fleet: Servers, args: argparse.Namespace,
                tart_delay: float) -> tuple[ByClients, ByScenario]:
    """The reads over HTTPS: a bare server and an operator of their own, with the same
    certificate (the operator's ``tls init``)."""
    log("TLS: the reads against a bare HTTPS server with the operator's certificate")
    bare = fleet.start_bare(tls=True)
    op = fleet.start_operator("operator-tls", args.cache_ttl, tart_delay, args.access_log,
                              ready_env(), tls=True)
    time.sleep(0.5)
    return all_read_rounds(bare, op, args, [op])


def measure_lifecycle(fleet: Servers, args: argparse.Namespace, tart_delay: float) -> Lifecycle:
    """Creates on an operator of their own (its own Tart home and logs): the operator's own cost
    per create from a cached image, and how soon a pull's percentages show (lifecycle.py)."""
    progress_log = fleet.root / "lifecycle-progress.log"
    log(f"lifecycle: {args.create_samples} creates from a cached image, one create that pulls")
    server = fleet.start_operator("lifecycle", args.cache_ttl, tart_delay, args.access_log,
                                  lifecycle.lifecycle_env(progress_log, args.pull_seconds))
    assert server.call_log is not None
    return lifecycle.measure(server.port, server.call_log, progress_log,
                                   args.create_samples)


def measure_only(part: str, report: Report, fleet: Servers, args: argparse.Namespace,
                 tart_delay: float) -> None:
    """One part of the benchmark alone (``--tunnels-only``, ``--beside-pull-only``,
    ``--host-cost-only``): its figures and its targets into ``report``."""
    if part == "tunnels":
        report["tunnels"] = measure_tunnels(fleet, args, tart_delay)
        report["targets"] = []
    elif part == "beside_pull":
        report["beside_pull"] = measure_beside_pull(fleet, args, tart_delay)
        report["targets"] = beside_pull_targets(report["beside_pull"])
    else:
        report["host_cost"] = measure_host_cost(fleet, args, tart_delay)
        report["targets"] = host_cost_targets(report["host_cost"])


def measure_beside_pull(fleet: Servers, args: argparse.Namespace,
                        tart_delay: float) -> BesidePull:
    """Creates from a cached image while a 30 s pull of another image runs, on an operator of
    their own (beside.py)."""
    log(f"beside a pull: {args.create_samples} creates from a cached image during a "
        f"{beside.PULL_SECONDS:g} s pull of another image")
    server = fleet.start_operator("beside-pull", args.cache_ttl, tart_delay, args.access_log,
                                  beside.beside_env())
    return beside.measure(server.port, args.create_samples)


def measure_events(fleet: Servers, args: argparse.Namespace, tart_delay: float) -> Events:
    """Watchers on an operator of their own: the Tart calls of 1 and of 100 SSE watchers, its
    RSS with 100, and how soon an outside `tart run` / `tart stop` reaches them
    (events.py)."""
    log(f"events: 1 then {events.WATCHERS} watchers over {args.events_window:g} s each, "
        f"{args.events_samples} outside run/stop")
    server = fleet.start_operator("events", args.cache_ttl, tart_delay, args.access_log)
    assert server.call_log is not None and server.tart_home is not None
    return events.measure(server.port, server.pid, server.call_log, server.tart_home,
                                SIMULATOR, fleet.env(), args.events_window, args.events_samples)


def measure_host_cost(fleet: Servers, args: argparse.Namespace,
                      tart_delay: float) -> HostCost:
    """A 1 Hz dashboard over 10 VMs, locally and over SSH (hostcost.py)."""
    log(f"host cost: a 1 Hz dashboard over {hostcost.VM_COUNT} VMs for "
        f"{args.dashboard_seconds:g} s")
    server = fleet.start_operator("dashboard", args.cache_ttl, tart_delay, args.access_log,
                                  prepare=hostcost.add_local_vms)
    assert server.call_log is not None
    local = hostcost.local_dashboard(server.port, server.call_log, args.dashboard_seconds,
                                           args.cold_samples)
    if args.no_ssh:
        ssh: SshDashboard = {"skipped": "--no-ssh"}
    else:
        log(f"host cost over SSH: {args.cold_samples} cold details, the dashboard for "
            f"{args.ssh_dashboard_seconds:g} s")

        def start(settings: dict[str, str]) -> int:
            return fleet.start_ssh_operator("dashboard-ssh", args.cache_ttl, settings).port

        ssh = hostcost.over_ssh(start, args.ssh_dashboard_seconds, args.cold_samples,
                                tart_delay)
        here, there = local["cold_detail_median_ms"], ssh.get("cold_detail_median_ms")
        if here is not None and there:
            ssh["cold_detail_ssh_adds_ms"] = round(there - here, 1)
    return {"local": local, "ssh": ssh}


def measure_tunnels(fleet: Servers, args: argparse.Namespace, tart_delay: float) -> Tunnels:
    """Tunnel throughput and added latency, locally and over SSH (tunnels.py)."""
    size = int(args.tunnel_mib * (1 << 20))
    log(f"tunnels: {args.tunnel_mib:g} MiB round trip and {args.tunnel_pings} pings, "
        "tunnel against direct")
    echo = tunnels.free_port()
    server = fleet.start_operator("tunnels", args.cache_ttl, tart_delay, args.access_log,
                                  {"TART_SIM_GUEST_SERVICES": f"{echo}=echo"})
    tunnels.start_vm(server.port)
    local = tunnels.measure(server.port, echo, size, args.tunnel_pings)
    if args.no_ssh:
        return {"local": local, "ssh": {"skipped": "--no-ssh"}}

    def start(settings: dict[str, str]) -> int:
        return fleet.start_ssh_operator("tunnels-ssh", args.cache_ttl, settings).port

    log("tunnels over SSH")
    return {"local": local, "ssh": tunnels.over_ssh(start, size, args.tunnel_pings)}
