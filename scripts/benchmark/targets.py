"""The speed goals and whether a run met them: PASS, MISS, or n/a when not measured."""

from __future__ import annotations

from benchmark.events import WATCHERS
from benchmark.load import LABELS, READS
from benchmark.records import BesidePull, ByScenario, HostCost, Memory, Report, Soak, Target

TARGETS = {  # each goal once; the table's wording and its PASS/MISS are derived from it
    "reads_vs_bare": 0.9,  # every read, every client count, plain and over TLS
    "reads_p99_vs_bare": 1.5,  # plain
    "reads_vs_naive": 50.0,
    "max_concurrent_list": 1,
    "idle_rss_mib": 30.0,
    "long_rss_mib": 35.0,
    "soak_growth_mib": 1.0,
    "start_after_running_ms": 150.0,
    "create_own_ms": 50.0,
    "progress_fresh_ms": 1000.0,
    "create_beside_pull_s": 2.0,
    "outside_event_ms": 1500.0,
    "watchers_rss_mib": 40.0,
    "dashboard_tart_per_second": 1.0,
    "ssh_logins_per_minute": 1.0,
    "ssh_cold_detail_ms": 200.0,
}


def target(name: str, measured: str, ok: bool | None) -> Target:
    """One row of the table (None: not measured in this run)."""
    return {"target": name, "measured": measured,
            "result": "n/a" if ok is None else ("PASS" if ok else "MISS")}


def evaluate(report: Report) -> list[Target]:
    """PASS/MISS for each target, from a whole run's figures."""
    t = TARGETS
    op, naive = report["operator"], report["naive"]
    targets: list[Target] = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        targets.append(target(name, measured, ok))

    targets.extend(read_targets(op))
    sixteen = "16"
    if sixteen in op["vms"]:
        for scenario in ("vms", "vm"):
            mine = op[scenario][sixteen]
            add(f"{LABELS[scenario]}, 16 clients >= {t['reads_vs_naive']:g}x per-request spawn",
                f"{mine['vs_naive']}x ({mine['rps']} vs {naive[scenario][sixteen]['rps']} req/s)",
                mine["vs_naive"] is not None and mine["vs_naive"] >= t["reads_vs_naive"])
            add(f"{LABELS[scenario]}, 16 clients: at most {t['max_concurrent_list']} "
                "`tart list` at a time",
                f"{mine['max_concurrent_tart_list']} (whole cached run: "
                f"{report['tart_list_max_concurrent_whole_run']})",
                mine["max_concurrent_tart_list"] <= t["max_concurrent_list"])
    else:
        add("16-client targets", "16 not among --clients", None)
    targets.extend(memory_targets(report["memory"], report.get("soak")))
    if "tls_operator" in report:
        targets.extend(read_targets(report["tls_operator"], tls=True))
    start = report["start"]
    add(f"POST start <= {t['start_after_running_ms']:g} ms after Tart reports running (median)",
        f"median {start['median_ms']} ms, max {start['max_ms']} ms",
        start["median_ms"] is not None and start["median_ms"] <= t["start_after_running_ms"])
    create = report["lifecycle"]["create"]
    add(f"a create from a cached image: the operator's own time <= {t['create_own_ms']:g} ms "
        "beyond its Tart calls (median)",
        f"median {create['own_median_ms']} ms, max {create['own_max_ms']} ms",
        create["own_median_ms"] <= t["create_own_ms"])
    fresh = report["lifecycle"]["progress"]
    add(f"every percentage Tart printed shows in GET /operations/{{id}} within "
        f"{t['progress_fresh_ms']:g} ms",
        f"max {fresh['max_ms']} ms, median {fresh['median_ms']} ms, "
        f"{fresh['percentages_printed']} printed, {fresh['never_shown']} never shown",
        fresh["max_ms"] is not None and fresh["never_shown"] == 0
        and fresh["max_ms"] <= t["progress_fresh_ms"])
    targets.extend(beside_pull_targets(report.get("beside_pull")))
    events = report["events"]
    one, many = events["tart_list_per_s_1_watcher"], events["tart_list_per_s_100_watchers"]
    slack = 1 / events["window_s"]  # one call more in the window: where the window cuts
    add(f"{events['watchers']} SSE watchers cost the Tart calls of one",
        f"{many} vs {one} tart list/s", events["watchers"] == WATCHERS
        and one > 0 and many <= one + slack)
    median = events["outside_median_ms"]
    add(f"an outside `tart run`/`tart stop` reaches the watchers within "
        f"{t['outside_event_ms']:g} ms (median)",
        f"median {median} ms, max {events['outside_max_ms']} ms, "
        f"{events['outside_lost']} of {events['outside_samples']} lost",
        median is not None and events["outside_lost"] == 0 and median <= t["outside_event_ms"])
    rss = events["rss_100_watchers_mib"]
    add(f"RSS with {WATCHERS} watchers <= {t['watchers_rss_mib']:g} MiB",
        f"{rss} MiB (idle {events['rss_idle_mib']} MiB, after the changes "
        f"{events['rss_100_watchers_after_changes_mib']} MiB)",
        rss is not None and rss <= t["watchers_rss_mib"])
    return targets + host_cost_targets(report["host_cost"])


def read_targets(op: ByScenario, tls: bool = False) -> list[Target]:
    """Each read at each client count: req/s >= reads_vs_bare x the bare server's (median of
    the alternating rounds) and, in plain HTTP, p99 <= reads_p99_vs_bare x the bare server's."""
    t = TARGETS
    targets: list[Target] = []
    for scenario in READS:
        for clients, mine in op.get(scenario, {}).items():
            ratio, p99 = mine.get("vs_bare"), mine.get("p99_vs_bare")
            name = (f"{LABELS[scenario]}{' over TLS' if tls else ''}, {clients} clients: "
                    f">= {t['reads_vs_bare']:g}x bare req/s")
            ok = ratio is not None and ratio >= t["reads_vs_bare"]
            if not tls:
                name += f", p99 <= {t['reads_p99_vs_bare']:g}x bare's"
                ok = ok and p99 is not None and p99 <= t["reads_p99_vs_bare"]
            targets.append(target(name, f"{ratio}x req/s, p99 {p99}x ({mine['p99_ms']} ms); "
                                  f"statuses {mine['statuses']}", ok))
    return targets


def memory_targets(mem: Memory, soak: Soak | None) -> list[Target]:
    """Idle RSS, RSS after the long run, and no growth over the soak (None: not measured)."""
    t = TARGETS
    idle, after = mem["operator_idle_mib"], mem.get("long_after_mib")
    targets = [
        target(f"idle RSS <= {t['idle_rss_mib']:g} MiB", f"{idle} MiB",
               idle is not None and idle <= t["idle_rss_mib"]),
        target(f"RSS <= {t['long_rss_mib']:g} MiB after {mem.get('long_requests')} requests",
               f"{after} MiB (growth {mem.get('long_growth_mib')} MiB, peak "
               f"{mem.get('long_peak_mib')} MiB)",
               after is not None and after <= t["long_rss_mib"])]
    name = f"soak: RSS at the end <= RSS after the warm-up + {t['soak_growth_mib']:g} MiB"
    if soak is None:
        return targets + [target(name, "not measured", None)]
    base, end = soak["baseline_mib"], soak["end_mib"]
    targets.append(target(
        f"{name} ({soak['clients']} clients, {soak['seconds']:g} s)",
        f"{base} MiB at {soak['baseline_at_s']} s -> {end} MiB at the end "
        f"({soak['load']['requests']} requests, {soak['load']['errors']} errors)",
        base is not None and end is not None and soak["load"]["errors"] == 0
        and end <= base + t["soak_growth_mib"]))
    return targets


def beside_pull_targets(beside: BesidePull | None) -> list[Target]:
    """A create from a cached image beside another image's pull (None: not measured)."""
    limit = TARGETS["create_beside_pull_s"]
    name = (f"a create from a cached image answers `succeeded` within {limit:g} s of its request "
            "while another image's 30 s pull runs (max)")
    if beside is None:
        return [target(name, "not measured", None)]
    return [target(name, f"max {beside['max_s']:.2f} s, median {beside['median_s']:.2f} s; the "
                   f"pull {'still ran' if beside['pull_still_running'] else 'had ENDED'}",
                   beside["max_s"] <= limit and beside["pull_still_running"])]


def host_cost_targets(cost: HostCost) -> list[Target]:
    """PASS/MISS for the targets of the host's cost (a dashboard, locally and over SSH)."""
    t = TARGETS
    targets: list[Target] = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        targets.append(target(name, measured, ok))

    local, ssh = cost["local"], cost["ssh"]
    add(f"1 Hz dashboard over {local['vms']} VMs (GET /vms + each detail): <= "
        f"{t['dashboard_tart_per_second']:g} Tart process per second",
        f"{local['tart_per_second']}/s ({local['tart_processes']} in {local['seconds']} s)",
        local["tart_per_second"] <= t["dashboard_tart_per_second"])
    if "skipped" in ssh:
        add("over SSH: the dashboard's logins, a cold detail", f"skipped: {ssh['skipped']}", None)
    else:
        add(f"over SSH, the same dashboard: <= {t['ssh_logins_per_minute']:g} SSH login per "
            "minute",
            f"{ssh['logins_per_minute']}/min ({ssh['logins_during_dashboard']} in "
            f"{ssh['seconds']} s; {ssh['logins_whole_run']} in the whole run)",
            ssh["logins_per_minute"] <= t["ssh_logins_per_minute"])
        cold = ssh["cold_detail_median_ms"]
        add(f"over loopback SSH, a cold GET /vms/{{name}} <= {t['ssh_cold_detail_ms']:g} ms "
            "(median)",
            f"median {cold} ms ({len(ssh['cold_detail_samples_ms'])} samples; locally, on the "
            f"same simulator: {local['cold_detail_median_ms']} ms, so SSH adds "
            f"{ssh.get('cold_detail_ssh_adds_ms')} ms); the first request, which "
            f"logs in: {ssh['first_request_ms']} ms",
            cold is not None and cold <= t["ssh_cold_detail_ms"])
    return targets
