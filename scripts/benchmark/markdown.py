"""The report as Markdown (what the README's Performance section prints): tables and sentences
made from a run's typed results, nothing measured here."""

from __future__ import annotations

from typing import cast

from benchmark.beside import beside_text
from benchmark.load import LABELS, OPERATOR_SCENARIOS, SCENARIOS
from benchmark.readsmd import fmt, soak_lines, tls_lines
from benchmark.records import (
    Events,
    HostCost,
    Lifecycle,
    LoadResult,
    Report,
    TunnelFigures,
    Tunnels,
)


def beside_pull_markdown(report: Report) -> str:
    """``--beside-pull-only``: the create beside a pull and its target."""
    return host_cost_markdown(report, "a create beside a pull",
                              [beside_text(report["beside_pull"])])


def host_cost_markdown(report: Report, title: str = "a host that barely notices",
                       text: list[str] | None = None) -> str:
    """``--host-cost-only``: the host-cost section and its targets (or ``text``)."""
    m = report["machine"]
    out = [f"## vm-operator benchmark: {title}", "",
           (f"- machine: {m['nproc']} CPUs usable, {m['cpu_model']}, {m['system']} "
            f"{m['kernel']}, {m['implementation']} {m['python']}; load average "
            f"{m['loadavg_at_start']} at start, {m.get('loadavg_at_end', '?')} at end"),
           f"- command: `{report['command']}`", "",
           *(host_cost_text(report["host_cost"]) if text is None else text), "",
           "| target | measured | result |", "|---|---|---|"]
    out += [f"| {t['target']} | {t['measured']} | **{t['result']}** |" for t in report["targets"]]
    return "\n".join(out) + "\n"


def spawns_text(result: LoadResult) -> str:
    spawns = result.get("tart_spawns")
    if spawns is None:
        return "–"
    if not spawns:
        return "0"
    return ", ".join(f"{k} {v}" for k, v in sorted(spawns.items(), key=lambda kv: -kv[1]))


def refused_text(result: LoadResult) -> str:
    extra = []
    if result.get("refused"):
        extra.append(f"{result['refused']} refused")
    if result.get("abandoned_requests"):
        extra.append(f"{result['abandoned_requests']} abandoned")
    return f" ({', '.join(extra)})" if extra else ""


def markdown(report: Report) -> str:
    m, s = report["machine"], report["settings"]
    out = [
        "## vm-operator benchmark",
        "",
        (f"- machine: {m['nproc']} CPUs usable ({m['cpu_count']} online), {m['cpu_model']}, "
         f"{m['system']} {m['kernel']}, {m['implementation']} {m['python']} "
         f"({m['python_executable']}); load average {m['loadavg_at_start']} at start, "
         f"{m.get('loadavg_at_end', '?')} at end"),
        f"- command: `{report['command']}`",
        (f"- Tart: simulator with TART_SIM_DELAY={s['tart_delay_ms']:g} ms per call; cached "
         f"operator `--cache-ttl {s['cache_ttl_s']:g}`, reference `--cache-ttl 0` (spawns Tart "
         "per request)"),
        f"- operator output: {s['operator_logging']}",
        (f"- load: {s['duration_s']:g} s per scenario (per-request spawn: "
         f"{s['naive_duration_s']:g} s), {s['rounds']} alternating bare/operator round(s) per "
         f"client count (median req/s and ratio), client `{s['client']}` keep-alive threads in "
         "the bench process, servers in their own processes"),
        "",
        "### Throughput and latency",
        "",
        ("| scenario | clients | req/s | p50 ms | p99 ms | × bare | p99 × bare "
         "| × per-request spawn | server CPU µs/req | Tart spawned | max `tart list` at once "
         "| errors (refused) | CPU % client/server/Tart |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]

    def cpu(r: LoadResult) -> str:
        return f"{r['client_cpu_pct']:.0f}/{r['server_cpu_pct']:.0f}/{r['tart_cpu_pct']:.0f}%"

    def row(label: str, r: LoadResult, vs_bare: float | None, vs_naive: float | None) -> str:
        return (f"| {label} | {r['clients']} | {fmt(r['rps'])} | {fmt(r['p50_ms'])} "
                f"| {fmt(r['p99_ms'])} | {fmt(vs_bare, '×')} "
                f"| {fmt(r.get('p99_vs_bare', 1.0 if vs_bare == 1.0 else None), '×')} "
                f"| {fmt(vs_naive, '×')} "
                f"| {fmt(r['server_cpu_us_per_request'])} | {spawns_text(r)} "
                f"| {r.get('max_concurrent_tart_list', '–')} | {r['errors']}{refused_text(r)} "
                f"| {cpu(r)} |")

    clients = list(report["bare"])
    for c in clients:
        out.append(row(LABELS["bare"], report["bare"][c], 1.0, None))
    for scenario in OPERATOR_SCENARIOS:
        for c in clients:
            r = report["operator"][scenario][c]
            out.append(row(LABELS[scenario], r, r.get("vs_bare"), r.get("vs_naive")))
    out += [
        "",
        ("× bare: median over the rounds of (req/s ÷ the bare server's req/s in the same round) "
         "at the same client count; p99 × bare: the same for the 99th percentile. GET "
         "/vms/{name} reads a VM started and polled until ready with a spec before each client "
         "count's rounds; If-None-Match sends the ETag its connection last saw (304s and 200s "
         "are in the JSON's statuses). × per-request spawn: req/s ÷ the `--cache-ttl 0` "
         "operator's. Server CPU µs/req: CPU time of the server process (all its threads, not "
         "its Tart children) per request. Tart spawned: calls logged in TART_SIM_CALL_LOG during "
         "the scenario, warm-up included. Max `tart list` at once: from the start/end times of "
         "the call log (the simulator's run time, after its interpreter started). Refused: 409 "
         "(VM limit) and 503 (per-VM write queue full) answers, the operator's deliberate "
         "back-pressure; abandoned: requests still in flight when the drain cap ran out."),
        "",
        *tls_lines(report),
        "Reference: the same operator with `--cache-ttl 0` (Tart spawned for every request):",
        "",
        ("| scenario | clients | req/s | p50 ms | p99 ms | × bare | server CPU µs/req "
         "| Tart spawned | max `tart list` at once | errors (refused) "
         "| CPU % client/server/Tart |"),
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for scenario in SCENARIOS:
        for c, r in report["naive"][scenario].items():
            bare = report["bare"].get(c)
            bare_rps = bare["rps"] if bare else None
            vs_bare = r["rps"] / bare_rps if bare_rps else None
            out.append(f"| {LABELS[scenario]} | {c} | {fmt(r['rps'])} | {fmt(r['p50_ms'])} "
                       f"| {fmt(r['p99_ms'])} | {fmt(vs_bare, '×')} "
                       f"| {fmt(r['server_cpu_us_per_request'])} | {spawns_text(r)} "
                       f"| {r['max_concurrent_tart_list']} | {r['errors']}{refused_text(r)} "
                       f"| {cpu(r)} |")
    notes = []
    for c in clients:
        r = report["operator"]["mixed"][c]
        if "writes" in r:
            reads, writes = r["reads"], r["writes"]
            notes.append(f"{c} clients: reads p50/p99 {fmt(reads['p50_ms'])}/"
                         f"{fmt(reads['p99_ms'])} ms, writes ({writes['requests']}) p50/p99 "
                         f"{fmt(writes['p50_ms'])}/{fmt(writes['p99_ms'])} ms, "
                         f"statuses {r['statuses']}")
    if notes:
        out += ["", "Mixed scenario, cached operator: " + "; ".join(notes) + "."]
    mem, lr = report["memory"], report["long"]
    out += [
        "",
        "### Memory (VmRSS, MiB)",
        "",
        "| process | idle | after the scenarios |",
        "|---|---:|---:|",
        (f"| operator (cached) | {fmt(mem['operator_idle_mib'])} "
         f"| {fmt(mem['operator_after_run_mib'])} |"),
        (f"| operator (`--cache-ttl 0`) | {fmt(mem['naive_idle_mib'])} "
         f"| {fmt(mem['naive_after_run_mib'])} |"),
        (f"| bare ThreadingHTTPServer | {fmt(mem['bare_idle_mib'])} "
         f"| {fmt(mem['bare_after_run_mib'])} |"),
        "",
        (f"Long run ({LABELS['long']}, {lr['clients']} clients, reconnecting every "
         f"{s.get('reconnect_every', 0) or 'never'} requests): {lr['requests']} of "
         f"{s['long_requests']} requests (cap {s['long_max_seconds']:g} s) in "
         f"{fmt(lr['seconds'])} s ({fmt(lr['rps'])} req/s, p99 {fmt(lr['p99_ms'])} ms, "
         f"{lr['errors']} errors); RSS {fmt(mem['long_before_mib'])} → "
         f"{fmt(mem['long_after_mib'])} MiB (growth {fmt(mem['long_growth_mib'])} MiB, peak "
         f"{fmt(mem['long_peak_mib'])} MiB); Tart spawned: {spawns_text(lr)}."),
    ]
    if "soak" in report:
        out += ["", *soak_lines(report["soak"])[:-1]]
    st = report["start"]
    samples = ", ".join(f"{r['after_running_ms']}" for r in st["samples"])
    out += [
        "",
        "### POST /vms/{name}/start",
        "",
        (f"The response arrives {fmt(st['median_ms'])} ms (median; max {fmt(st['max_ms'])} ms; "
         f"samples: {samples}) after the simulated `tart run` took the VM's lock, i.e. after "
         f"`tart list` would first report it running (lock moment: {st['lock_source']}); the "
         f"whole POST takes {fmt(st['post_median_ms'])} ms (median)."),
        "",
        "### Cost of one Tart call",
        "",
        ("| command | calls | as the operator sees it (ms, mean) "
         "| inside the simulator (ms, mean) |"),
        "|---|---:|---:|---:|",
        *[f"| {cmd} | {c['calls']} | {fmt(c['operator_mean_ms'])} | {fmt(c['simulator_mean_ms'])} |"
          for cmd, c in report["tart_call_cost"].items()],
        "",
        (f"(Cached operator, whole run. TART_SIM_DELAY ({s['tart_delay_ms']:g} ms) stands for all "
         "of a real Tart's cost; the simulator is a Python script, so every call also pays a "
         "fork/exec and an interpreter start: the gap between the two columns is that extra, "
         "which a real Tart does not add on top.)"),
        "",
        "### Creating VMs (operations)",
        "",
        *lifecycle_text(report["lifecycle"]),
        "",
        *([beside_text(report["beside_pull"]), ""] if "beside_pull" in report else []),
        "### Watching (GET /events)",
        "",
        *events_text(report["events"]),
        "",
        "### A host that barely notices",
        "",
        *host_cost_text(report["host_cost"]),
        "",
        "### Tunnels (GET /vms/{name}/port-forward)",
        "",
        *tunnels_text(report["tunnels"]),
        "",
        "### Targets",
        "",
        "| target | measured | result |",
        "|---|---|---|",
    ]
    out += [f"| {t['target']} | {t['measured']} | **{t['result']}** |" for t in report["targets"]]
    return "\n".join(out) + "\n"


def events_text(events: Events) -> list[str]:
    return [
        (f"An operator of its own (watch interval 1 s): `tart list` {events['tart_list_per_s_1_watcher']}"
         f"/s with one SSE watcher, {events['tart_list_per_s_100_watchers']}/s with "
         f"{events['watchers']} ({events['window_s']:g} s each); RSS {events['rss_idle_mib']} MiB "
         f"idle, {events['rss_100_watchers_mib']} MiB with the watchers. An outside `tart run` / "
         f"`tart stop` (the simulator run by hand on the operator's Tart home) reached a watcher "
         f"as vm.state (cause outside) {fmt(events['outside_median_ms'])} ms after the change "
         "in Tart (median: the run's lock taken, `tart stop` returned; max "
         f"{fmt(events['outside_max_ms'])} ms; {events['outside_lost']} of "
         f"{events['outside_samples']} lost), {fmt(events['outside_from_command_median_ms'])} ms "
         "after the command was started (the simulator's own start-up included)."),
    ]


def host_cost_text(cost: HostCost) -> list[str]:
    local, ssh = cost["local"], cost["ssh"]
    out = [(f"A dashboard polling GET /vms and each of {local['vms']} VMs' detail once a second "
            f"({local['requests_per_tick']} requests a tick, {local['ticks']} ticks after a "
            f"warm-up one) made the operator spawn {local['tart_processes']} Tart processes in "
            f"{local['seconds']} s: {local['tart_per_second']} per second. A cold GET "
            f"/vms/{{name}} (a VM not described yet, past the listing's bound: a `tart list` "
            f"and a `tart get`) took {fmt(local['cold_detail_median_ms'])} ms (median of "
            f"{len(local['cold_detail_samples_ms'])}).")]
    if "skipped" in ssh:
        out += ["", f"Over SSH: skipped ({ssh['skipped']})."]
    else:
        out += ["", (f"Over SSH (a throw-away sshd on 127.0.0.1, the simulator as its `tart`): "
                     f"the same dashboard for {ssh['seconds']} s cost "
                     f"{ssh['logins_during_dashboard']} SSH logins "
                     f"({ssh['logins_per_minute']} per minute; {ssh['logins_whole_run']} in the "
                     f"whole run, the first request's included); a cold GET /vms/{{name}} took "
                     f"{fmt(ssh['cold_detail_median_ms'])} ms (median of "
                     f"{len(ssh['cold_detail_samples_ms'])}: "
                     f"{', '.join(str(x) for x in ssh['cold_detail_samples_ms'])}); the very "
                     f"first request, which opens the connection, "
                     f"{fmt(ssh['first_request_ms'])} ms. The difference to the same figure "
                     "locally is what SSH adds; the rest is the simulator's own cost (a Python "
                     "interpreter started per Tart call, and TART_SIM_DELAY).")]
    return out


def lifecycle_text(lifecycle: Lifecycle) -> list[str]:
    create, fresh = lifecycle["create"], lifecycle["progress"]
    own = ", ".join(f"{row['own_ms']}" for row in create["samples"])
    calls = " + ".join(create["samples"][0]["tart_calls"]) if create["samples"] else "none"
    return [
        (f"A create from a cached image (`{create['image']}`: Tart calls {calls}) takes "
         f"{fmt(create['wall_median_ms'])} ms from sending POST /vms to the operation's "
         f"`finished_at` (median): {fmt(create['tart_logged_median_ms'])} ms in the Tart calls "
         f"as the simulator's call log times them, {fmt(create['tart_spawn_median_ms'])} ms "
         "starting them (the operator's timing of each call less the call log's: fork/exec and "
         "the simulator's Python interpreter, which a real Tart does not cost), and "
         f"{fmt(create['own_median_ms'])} ms the operator itself (median; max "
         f"{fmt(create['own_max_ms'])} ms; samples: {own}): HTTP, the name's reservation, the "
         "queue, the operation records written whole on every change."),
        "",
        (f"A create that pulls (`{fresh['image']}`, {fresh['percentages_printed']} percentages "
         f"printed): each showed in GET /operations/{{id}} {fmt(fresh['median_ms'])} ms (median; "
         f"max {fmt(fresh['max_ms'])} ms) after the simulator printed it (its progress log), "
         f"polled every {fresh['poll_ms']:g} ms; {fresh['never_shown']} never shown."),
    ]


# --- entry point ----------------------------------------------------------------------------


def tunnels_text(figures: Tunnels) -> list[str]:
    out = [("| where | round trip MiB/s, tunnel (direct) | 1-byte round trip ms, tunnel "
            "(direct) | added ms |"), "|---|---:|---:|---:|"]
    for where, measured in (("local", figures["local"]), ("over SSH", figures["ssh"])):
        if "skipped" in measured:
            out.append(f"| {where} | skipped: {cast(dict[str, str], measured)['skipped']} | | |")
            continue
        found = cast(TunnelFigures, measured)
        out.append(f"| {where} | {found['tunnel_mib_s']} ({found['direct_mib_s']}) | "
                   f"{found['tunnel_rtt_ms']} ({found['direct_rtt_ms']}) | {found['added_ms']} |")
    return out


def tunnels_markdown(report: Report) -> str:
    """``--tunnels-only``: the machine, then the tunnels' table."""
    m = report["machine"]
    return "\n".join([
        "## vm-operator tunnels", "",
        (f"- machine: {m['nproc']} CPUs usable, {m['system']} {m['kernel']}, "
        f"{m['implementation']} {m['python']}"), f"- command: `{report['command']}`", "",
        *tunnels_text(report["tunnels"])]) + "\n"
