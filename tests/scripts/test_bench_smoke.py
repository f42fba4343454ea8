"""Smoke test of scripts/bench.py: a --quick run end to end, checking the shape of its JSON.

No timing assertions: the speed goals live in the benchmark's own PASS/MISS table.
"""
from __future__ import annotations

import json
import numbers
import os
import subprocess
import sys
from typing import Any

import pytest
from support import REPO_ROOT

pytestmark = pytest.mark.slow  # a few minutes: a whole (short) benchmark run, TLS and soak included

BENCH = REPO_ROOT / "scripts" / "bench.py"
SCENARIOS = ("health", "vms", "vm", "mixed")
READS = ("health", "vms", "vm", "vms_etag")  # each against the bare server, plain and over TLS
CLIENTS = ("1", "16", "64")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", "--json-file", str(out)],
        check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=480,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(proc.stdout)
    assert json.loads(out.read_text()) == data
    return data


def is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def assert_figures(result: dict[str, Any], where: str) -> None:
    for key in ("rps", "p50_ms", "p99_ms"):
        assert is_number(result.get(key)), f"{where}: {key} = {result.get(key)!r}"
    assert result["requests"] > 0, where
    assert result["rps"] > 0, where


def test_every_scenario_and_client_count_has_figures(report: dict[str, Any]) -> None:
    for scenario in SCENARIOS:
        for clients in CLIENTS:
            result = report["operator"][scenario][clients]
            assert_figures(result, f"operator {scenario} x {clients}")
            assert result["clients"] == int(clients)
            assert is_number(result["vs_bare"])
            assert is_number(result["tart_spawns_total"])
            assert is_number(result["max_concurrent_tart_list"])


def test_references_are_measured(report: dict[str, Any]) -> None:
    for clients in CLIENTS:
        assert_figures(report["bare"][clients], f"bare x {clients}")
    assert report["naive"], "no --cache-ttl 0 reference"
    for scenario in SCENARIOS:
        assert report["naive"][scenario], scenario
        for clients, result in report["naive"][scenario].items():
            assert is_number(result["rps"]), (scenario, clients)
            assert is_number(result["tart_spawns_total"])
    # the reference really spawns Tart per request: at least one `tart list` per GET /vms served
    vms16 = report["naive"]["vms"]["16"]
    assert_figures(vms16, "naive vms x 16")
    assert vms16["tart_list_spawns"] >= vms16["requests"]
    assert is_number(report["operator"]["vms"]["16"]["vs_naive"])


def test_cached_mode_spawns_far_fewer_tart_list_than_requests(report: dict[str, Any]) -> None:
    for scenario in ("vms", "vm"):
        for clients in CLIENTS:
            result = report["operator"][scenario][clients]
            if result["requests"] >= 200:
                assert result["tart_list_spawns"] * 20 <= result["requests"], (scenario, clients)
    served = sum(report["operator"][s][c]["requests"] for s in ("vms", "vm") for c in CLIENTS)
    lists = sum(report["operator"][s][c]["tart_list_spawns"]
                for s in ("vms", "vm") for c in CLIENTS)
    assert served >= 200, served
    assert lists * 20 <= served, (lists, served)
    # health probes never spawn Tart per request (at most a retried `tart --version`)
    assert report["operator"]["health"]["16"]["tart_spawns_total"] <= 1


def test_memory_and_start_figures(report: dict[str, Any]) -> None:
    memory = report["memory"]
    for key in ("operator_idle_mib", "operator_after_run_mib", "long_before_mib", "long_after_mib",
                "long_growth_mib", "bare_idle_mib"):
        assert is_number(memory[key]), key
    assert memory["operator_idle_mib"] > 1
    assert memory["long_requests"] > 0
    start = report["start"]
    assert start["samples"] and all(s["status"] in (200, 202) for s in start["samples"])
    assert is_number(start["median_ms"])


def test_lifecycle_figures(report: dict[str, Any]) -> None:
    create, fresh = report["lifecycle"]["create"], report["lifecycle"]["progress"]
    assert create["samples"] and all(row["tart_calls"] for row in create["samples"])
    assert "clone" in create["samples"][0]["tart_calls"]
    for key in ("own_median_ms", "own_max_ms", "wall_median_ms", "tart_logged_median_ms"):
        assert is_number(create[key]), key
    assert fresh["state"] == "succeeded" and fresh["percentages_printed"] > 2
    assert is_number(fresh["max_ms"]) and is_number(fresh["median_ms"])
    names = " ".join(t["target"] for t in report["targets"])
    assert "a create from a cached image" in names and "every percentage" in names


def test_targets_and_context_are_reported(report: dict[str, Any]) -> None:
    assert {t["result"] for t in report["targets"]} <= {"PASS", "MISS", "n/a"}
    assert len(report["targets"]) >= 6
    machine = report["machine"]
    assert machine["nproc"] >= 1 and machine["cpu_model"] and machine["python"]
    assert "bench.py" in report["command"]
    assert "--no-access-log" in " ".join(report["servers"]["operator"]["argv"])
    assert report["naive"]["vms"]["1"]["tart_list_spawns"] >= 1
    assert report["tart_call_cost"].get("list", {}).get("calls", 0) >= 1


def test_event_figures(report: dict[str, Any]) -> None:
    events = report["events"]
    assert events["watchers"] == 100
    for key in ("tart_list_per_s_1_watcher", "tart_list_per_s_100_watchers",
                "rss_100_watchers_mib", "rss_idle_mib"):
        assert is_number(events[key]), key
    assert events["tart_list_per_s_1_watcher"] > 0  # one watcher makes the watcher list
    assert events["outside_samples"] == 2 * report["settings"].get("events_samples", 1)
    names = " ".join(t["target"] for t in report["targets"])
    assert "SSE watchers" in names and "outside" in names and "watchers <=" in names


def test_host_cost_figures(report: dict[str, Any]) -> None:
    local, ssh = report["host_cost"]["local"], report["host_cost"]["ssh"]
    assert local["vms"] == 10 and local["ticks"] >= 1 and local["errors"] == 0
    assert is_number(local["tart_per_second"]) and is_number(local["cold_detail_median_ms"])
    names = " ".join(t["target"] for t in report["targets"])
    assert "Tart process per second" in names
    if "skipped" in ssh:  # no sshd here (Linux and root): say why, unless CI demands it
        assert os.environ.get("VM_OPERATOR_REQUIRE_SSH") != "1", ssh["skipped"]
        return
    assert ssh["errors"] == 0 and ssh["logins_whole_run"] >= 1
    for key in ("logins_per_minute", "cold_detail_median_ms", "first_request_ms"):
        assert is_number(ssh[key]), key
    assert "SSH login per minute" in names and "cold GET" in names


def test_reads_have_ratios_to_the_bare_server_plain_and_over_tls(report: dict[str, Any]) -> None:
    for where, bare in (("operator", "bare"), ("tls_operator", "tls_bare")):
        for clients in CLIENTS:
            assert_figures(report[bare][clients], f"{bare} x {clients}")
            for scenario in READS:
                result = report[where][scenario][clients]
                assert_figures(result, f"{where} {scenario} x {clients}")
                assert is_number(result["vs_bare"]) and is_number(result["p99_vs_bare"])
                assert result["errors"] == 0, (where, scenario, clients, result["error_samples"])
    for where in ("operator", "tls_operator"):
        for clients in CLIENTS:
            # the conditional listing is answered 304 (a 200 only when the listing changed)
            statuses = report[where]["vms_etag"][clients]["statuses"]
            assert statuses.get("304", 0) > statuses.get("200", 0), (where, clients, statuses)
    names = [t["target"] for t in report["targets"]]
    for scenario in ("GET /health", "GET /vms", "GET /vms/{name}", "If-None-Match"):
        for clients in CLIENTS:
            plain = [n for n in names if scenario in n and f", {clients} clients: >= 0.9x" in n]
            assert any("p99 <= 1.5x" in n and "TLS" not in n for n in plain), (scenario, clients)
            assert any("over TLS" in n for n in plain), (scenario, clients)


def test_the_soak_samples_rss_and_has_its_target(report: dict[str, Any]) -> None:
    soak = report["soak"]
    assert soak["clients"] == 16 and soak["seconds"] == 5 and soak["load"]["requests"] > 0
    assert len(soak["samples"]) >= 3 and all(is_number(mib) for _, mib in soak["samples"])
    assert is_number(soak["baseline_mib"]) and is_number(soak["end_mib"])
    names = " ".join(t["target"] for t in report["targets"])
    assert "soak: RSS at the end" in names and "after 2000 requests" in names


def test_the_markdown_report_shows_every_section_and_target(report: dict[str, Any]) -> None:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        from benchmark.markdown import markdown
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))
    text = markdown(report)  # type: ignore[arg-type]  # the JSON read back has the same shape
    for heading in ("### Throughput and latency", "### Memory (VmRSS, MiB)",
                    "### POST /vms/{name}/start", "### Cost of one Tart call",
                    "### Creating VMs (operations)", "### Watching (GET /events)",
                    "### A host that barely notices", "### Reads over TLS", "### Soak",
                    "### Targets"):
        assert heading in text, heading
    for target in report["targets"]:
        assert f"| {target['target']} | {target['measured']} | **{target['result']}** |" in text
