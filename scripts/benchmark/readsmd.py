"""The read path's part of the report as Markdown: the reads against the bare server (plain and
over TLS), the soak's RSS curve, and the whole of ``--reads-only`` / ``--tls-only``."""

from __future__ import annotations

from benchmark.load import LABELS, READS
from benchmark.records import ByClients, ByScenario, LoadResult, Report, Soak


def fmt(value: object, suffix: str = "") -> str:
    """A figure as the whole report writes it (markdown.py too): – for none; a float with one
    decimal from 10 up (thousands separated), two below."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}{suffix}" if abs(value) >= 10 else f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def answers(r: LoadResult) -> str:
    """The answers by status, e.g. ``200: 12, 304: 4,810``."""
    return ", ".join(f"{s}: {n:,}" for s, n in sorted(r["statuses"].items()))


def reads_table(bare: ByClients, op: ByScenario, where: str = "") -> list[str]:
    """One row per read and client count, the bare server's first."""
    out = [("| scenario | clients | req/s | p50 ms | p99 ms | × bare req/s | × bare p99 "
            "| answers | server CPU µs/req | errors |"),
           "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]

    def row(label: str, r: LoadResult, ratio: float | None, p99: float | None) -> str:
        return (f"| {label}{where} | {r['clients']} | {fmt(r['rps'])} | {fmt(r['p50_ms'])} "
                f"| {fmt(r['p99_ms'])} | {fmt(ratio, '×')} | {fmt(p99, '×')} | {answers(r)} "
                f"| {fmt(r['server_cpu_us_per_request'])} | {r['errors']} |")

    for r in bare.values():
        out.append(row(LABELS["bare"], r, 1.0, 1.0))
    for scenario in READS:
        for r in op.get(scenario, {}).values():
            out.append(row(LABELS[scenario], r, r.get("vs_bare"), r.get("p99_vs_bare")))
    return out


READS_NOTE = (
    "× bare req/s: median over the rounds of (req/s ÷ the bare server's req/s in the same round) "
    "at the same client count; × bare p99: the same for the 99th percentile latency. The detail "
    "is of a VM started (POST start) and polled until it is ready with a spec before each "
    "client count's rounds; the If-None-Match reads send the ETag their connection last saw "
    "(a 200 means the listing changed, and brings the new one).")


def tls_lines(report: Report) -> list[str]:
    """The reads over TLS, against a bare HTTPS server with the operator's certificate."""
    if "tls_operator" not in report:
        return []
    return ["### Reads over TLS", "",
            ("A bare `ThreadingHTTPServer` over HTTPS and an operator with `--tls-cert` / "
             "`--tls-key`, both with the same self-signed certificate (`vm-operator tls init`); "
             "the load client verifies it. Connections are opened (handshake included) before "
             "the clock starts."), "",
            *reads_table(report["tls_bare"], report["tls_operator"], " (TLS)"), ""]


def soak_lines(soak: Soak | None) -> list[str]:
    """The soak: what ran, and the RSS curve as a table."""
    if soak is None:
        return []
    load = soak["load"]
    return ["### Soak", "",
            (f"{LABELS['soak']} at {soak['clients']} keep-alive connections for "
             f"{soak['seconds']:g} s: {load['requests']:,} requests ({fmt(load['rps'])} req/s, "
             f"p99 {fmt(load['p99_ms'])} ms, {load['errors']} errors); the operator's RSS "
             f"sampled every {soak['every_s']:g} s and once at the end. Compared: "
             f"{fmt(soak['baseline_mib'])} MiB at {soak['baseline_at_s']} s → "
             f"{fmt(soak['end_mib'])} MiB at the end."), "",
            "| seconds | RSS MiB |", "|---:|---:|",
            *[f"| {t:g} | {mib:.2f} |" for t, mib in soak["samples"]], ""]


def reads_markdown(report: Report) -> str:
    """``--reads-only`` and/or ``--tls-only``: their tables and targets."""
    m, s = report["machine"], report["settings"]
    out = ["## vm-operator benchmark: the read path", "",
           (f"- machine: {m['nproc']} CPUs usable, {m['cpu_model']}, {m['system']} "
            f"{m['kernel']}, {m['implementation']} {m['python']}; load average "
            f"{m['loadavg_at_start']} at start, {m.get('loadavg_at_end', '?')} at end"),
           f"- command: `{report['command']}`",
           (f"- load: {s['duration_s']:g} s per scenario, {s['rounds']} alternating "
            f"bare/operator round(s) per client count, client `{s['client']}`; Tart: simulator "
            f"with TART_SIM_DELAY={s['tart_delay_ms']:g} ms, `--cache-ttl "
            f"{s['cache_ttl_s']:g}`"), ""]
    if "operator" in report:
        out += ["### Reads", "", *reads_table(report["bare"], report["operator"]), "",
                READS_NOTE, ""]
    out += tls_lines(report)
    if "memory" in report and "long" in report:
        mem, lr = report["memory"], report["long"]
        out += ["### Memory (VmRSS, MiB)", "",
                (f"Idle: operator {fmt(mem['operator_idle_mib'])}, bare server "
                 f"{fmt(mem['bare_idle_mib'])}. Long run ({LABELS['long']}, {lr['clients']} "
                 f"clients): {lr['requests']:,} requests in {fmt(lr['seconds'])} s, RSS "
                 f"{fmt(mem.get('long_before_mib'))} → {fmt(mem.get('long_after_mib'))} "
                 f"(peak {fmt(mem.get('long_peak_mib'))})."), ""]
    out += soak_lines(report.get("soak"))
    out += ["### Targets", "", "| target | measured | result |", "|---|---|---|"]
    out += [f"| {t['target']} | {t['measured']} | **{t['result']}** |" for t in report["targets"]]
    return "\n".join(out) + "\n"
