"""The operator's /metrics, proven by its consumer: a real Prometheus server scrapes it.

A real operator (tests/conftest.py's ``Operator``: ``python -m vm_operator`` on loopback driving
the simulator) gets known traffic — lists, a detail, a start and a stop, 404s, bad queries — while
Debian's ``/usr/bin/prometheus``, run here with a throw-away config and TSDB on a free
127.0.0.1 port, scrapes it every second. The tests then ask Prometheus' own HTTP API (never our
parser) what it stored: the target is up without a scrape error, every family the operator
exposes is there, the request and Tart-call counters hold what was sent, histograms have
``_bucket``/``_sum``/``_count``, and no series carries a name that is not an existing VM.

So that these checks can fail, the same Prometheus also scrapes a tiny loopback server that serves
malformed expositions (one defect each) and a well-formed control: the malformed targets must be
down with a scrape error, the control up.

Prometheus scrapes only 127.0.0.1 ports this module opened; the Debian package's own service is
never used. Without the binary the module skips with the reason; ``VM_OPERATOR_REQUIRE_PROMETHEUS=1``
(CI, scripts/test.sh) turns that into a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import Operator
from support import free_port, http_request, kill_tart_processes, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")
REQUIRE_PROMETHEUS = os.environ.get("VM_OPERATOR_REQUIRE_PROMETHEUS") == "1"
OPERATOR_JOB = "vm-operator"
MISSING_VM = "no-such-vm-for-prometheus"
BOGUS_STATE = "bogus-state-for-prometheus"
# Labels Prometheus attaches to every series of a target.
TARGET_LABELS = {"__name__", "job", "instance"}

# Each body has one defect an exposition written by hand could have, and that Prometheus 2.42
# rejects. (It accepts some things the format forbids, e.g. a TYPE line repeated or a sample
# without a final newline: those are for tests/api/test_vms.py's own parser to catch.)
MALFORMED = {
    "unescaped-quote-in-label": (
        "# TYPE vm_operator_http_requests_total counter\n"
        'vm_operator_http_requests_total{method="GET",route="/vms/"x"",status="200"} 1\n'
    ),
    "value-not-a-number": (
        "# TYPE vm_operator_tart_runs gauge\n"
        "vm_operator_tart_runs one\n"
    ),
    "label-given-twice": (
        "# TYPE vm_operator_tart_call_duration_seconds histogram\n"
        'vm_operator_tart_call_duration_seconds_bucket{le="0.1",le="+Inf"} 1\n'
    ),
    "raw-newline-in-help": (
        "# HELP vm_operator_vms VMs by state,\nas of the last tart list.\n"
        "# TYPE vm_operator_vms gauge\n"
        'vm_operator_vms{state="running"} 1\n'
    ),
    "unknown-type": (
        "# TYPE vm_operator_vms gauges\n"
        'vm_operator_vms{state="running"} 1\n'
    ),
}
WELL_FORMED = (
    "# HELP control_total A well-formed control series.\n"
    "# TYPE control_total counter\n"
    'control_total{kind="a \\"quoted\\" \\\\ value"} 3\n'
)


def _require(reason: str) -> None:
    if REQUIRE_PROMETHEUS:
        pytest.fail(f"VM_OPERATOR_REQUIRE_PROMETHEUS=1 but {reason}")
    pytest.skip(f"Prometheus tier skipped: {reason}")


# ============================================================== a malformed exposition server


class _ExpositionHandler(BaseHTTPRequestHandler):
    server: _ExpositionServer

    def do_GET(self) -> None:
        name = self.path.strip("/")
        body = WELL_FORMED if name == "control" else MALFORMED.get(name)
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        with self.server.lock:
            self.server.served[name] += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ExpositionServer(ThreadingHTTPServer):
    """Serves /NAME for each body in MALFORMED, and /control; counts what it served."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ExpositionHandler)
        self.lock = threading.Lock()
        self.served: Counter[str] = Counter()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


# ============================================================== a real Prometheus server


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    port: int
    path: str


@dataclass(frozen=True)
class Target:
    job: str
    health: str
    last_error: str
    scrape_url: str


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class Prometheus:
    """``/usr/bin/prometheus`` with its own config and TSDB under ``workdir``, on 127.0.0.1 only."""

    def __init__(self, workdir: Path, jobs: list[ScrapeJob]) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "prometheus.yml"
        self.tsdb_path = workdir / "tsdb"
        self.log_path = workdir / "prometheus.log"
        # JSON is YAML: the config needs no YAML writer.
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": job.name, "metrics_path": job.path, "scheme": "http",
                 "static_configs": [{"targets": [f"127.0.0.1:{job.port}"]}]}
                for job in jobs
            ],
        }
        self.config_path.write_text(json.dumps(config, indent=2))
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            for _ in range(3):  # the free port may be taken between probing and binding
                self.port = free_port()
                if self._start():
                    return
            pytest.fail(f"Prometheus did not start: {self._log_tail()}")
        except BaseException:
            self.close()
            raise

    def _start(self) -> bool:
        argv = [str(PROMETHEUS), f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.tsdb_path}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=self.tsdb_path.parent, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _, _ = http_request(self.port, "GET", "/-/ready", timeout=2)
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"Prometheus was not ready within 20 s: {self._log_tail()}")
        # The server on that port is the one started here, with this config and TSDB.
        flags = self.api("/api/v1/status/flags")
        assert flags["config.file"] == str(self.config_path), flags
        assert flags["storage.tsdb.path"] == str(self.tsdb_path), flags
        return True

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return "(no log)"

    def api(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        query = f"?{urlencode(params)}" if params else ""
        status, _, body = http_request(self.port, "GET", path + query, timeout=10)
        document = json.loads(body)
        assert status == 200 and document.get("status") == "success", (path, params, document)
        return document["data"]

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """An instant query, now or ``at`` (a Unix time: the same data for every query)."""
        params = [("query", promql)] + ([("time", repr(at))] if at is not None else [])
        data = self.api("/api/v1/query", params)
        assert data["resultType"] == "vector", data
        return [Sample(dict(item["metric"]), float(item["value"][1])) for item in data["result"]]

    def series(self, match: str) -> list[dict[str, str]]:
        return [dict(labels) for labels in self.api("/api/v1/series", [("match[]", match)])]

    def names(self, match: str) -> set[str]:
        return set(self.api("/api/v1/label/__name__/values", [("match[]", match)]))

    def targets(self) -> dict[str, Target]:
        active = self.api("/api/v1/targets", [("state", "active")])["activeTargets"]
        return {t["labels"]["job"]: Target(t["labels"]["job"], t["health"], t["lastError"],
                                           t["scrapeUrl"]) for t in active}

    def close(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


# ============================================================== the scenario


@dataclass
class Scene:
    operator: Operator
    prometheus: Prometheus
    expositions: _ExpositionServer
    sent: Counter[tuple[str, str, str]]  # (method, route pattern, status) -> requests sent
    vm_names: set[str]
    at: float  # when Prometheus last scraped the operator: the time every operator query uses
    exposed_types: dict[str, str]  # family name -> TYPE, from the operator's own /metrics

    def query(self, promql: str) -> list[Sample]:
        return self.prometheus.query(promql, self.at)


def _send(op: Operator, sent: Counter[tuple[str, str, str]], method: str, path: str, route: str,
          expected: int) -> bytes:
    status, _, body = op.request(method, path)
    assert status == expected, (method, path, status, body[:300])
    sent[(method, route, str(status))] += 1
    return body


def _drive(op: Operator, sent: Counter[tuple[str, str, str]]) -> set[str]:
    """Known traffic, counted in ``sent``; returns the names of the VMs that exist."""
    listing: list[dict[str, Any]] = []
    for _ in range(2):
        listing = json.loads(_send(op, sent, "GET", "/vms", "/vms", 200))
    names = {vm["name"] for vm in listing}
    stopped = sorted(vm["name"] for vm in listing
                     if vm["state"] == "stopped" and vm["source"] == "local")
    assert stopped, listing
    vm = stopped[0]
    _send(op, sent, "GET", f"/vms/{vm}", "/vms/{name}", 200)
    for _ in range(3):
        _send(op, sent, "GET", f"/vms/{MISSING_VM}", "/vms/{name}", 404)
    for _ in range(2):
        _send(op, sent, "GET", f"/vms?state={BOGUS_STATE}", "/vms", 400)
    _send(op, sent, "POST", f"/vms/{vm}/start", "/vms/{name}/start", 202)
    _send(op, sent, "POST", f"/vms/{vm}/stop", "/vms/{name}/stop", 200)
    wait_for(lambda: all(call.finished for call in op.calls("run")), timeout=10,
             message="the stopped VM's tart run ended")
    return names


def _exposed_types(op: Operator) -> dict[str, str]:
    """Family name -> TYPE, for the families that have at least one sample: a family declared
    with no series yet (a counter of operations before any ran) stores nothing in Prometheus."""
    status, _, body = op.request("GET", "/metrics")
    assert status == 200
    types = {}
    sampled = set()
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            sampled.add(line.split("{", 1)[0].split(" ", 1)[0])
    families = {name: kind for name, kind in types.items()
                if name in sampled or {f"{name}_count", f"{name}_bucket"} & sampled}
    assert families, body[:500]
    return families


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    if not PROMETHEUS.is_file() or not os.access(PROMETHEUS, os.X_OK):
        _require(f"no {PROMETHEUS} (Debian: apt-get install prometheus)")
    workdir = tmp_path_factory.mktemp("prometheus")
    op = Operator(workdir / "operator", env=None, args=None, seed=True, tart_home=None,
                  state_dir=None)
    expositions = _ExpositionServer()
    threading.Thread(target=expositions.serve_forever, daemon=True).start()
    prometheus: Prometheus | None = None
    try:
        jobs = [ScrapeJob(OPERATOR_JOB, op.port, "/metrics"),
                ScrapeJob("control", expositions.port, "/control")]
        jobs += [ScrapeJob(name, expositions.port, f"/{name}") for name in MALFORMED]
        prometheus = Prometheus(workdir / "prometheus", jobs)
        sent: Counter[tuple[str, str, str]] = Counter()
        vm_names = _drive(op, sent)
        traffic_done = time.time()

        def scraped_since_traffic() -> dict[str, float]:
            """The last scrape time of each job, once every job was scraped after the traffic."""
            assert prometheus is not None
            stamps = {s.labels["job"]: s.value for s in prometheus.query("timestamp(up)")}
            done = all(stamps.get(job.name, 0) > traffic_done for job in jobs)
            return stamps if done else {}

        stamps = wait_for(scraped_since_traffic, timeout=20, interval=0.2,
                          message="Prometheus scraped every target after the traffic")
        yield Scene(op, prometheus, expositions, sent, vm_names, stamps[OPERATOR_JOB],
                    _exposed_types(op))
    finally:
        if prometheus is not None:
            prometheus.close()
        expositions.shutdown()
        expositions.server_close()
        op.close()
        kill_tart_processes(op.tart_home)


def _of_operator(metric: str = "", matcher: str = "") -> str:
    """A PromQL selector for ``metric`` (every metric if empty) scraped from the operator."""
    matchers = [f'job="{OPERATOR_JOB}"'] + ([matcher] if matcher else [])
    return metric + "{" + ",".join(matchers) + "}"


# ============================================================== the operator, as Prometheus sees it


def test_operator_target_is_up_without_a_scrape_error(scene: Scene) -> None:
    target = scene.prometheus.targets()[OPERATOR_JOB]
    assert target.scrape_url == f"http://127.0.0.1:{scene.operator.port}/metrics"
    assert (target.health, target.last_error) == ("up", "")
    up = scene.query(_of_operator("up"))
    assert [s.value for s in up] == [1.0]


def test_every_family_the_operator_exposes_is_stored(scene: Scene) -> None:
    expected = set()
    for name, kind in scene.exposed_types.items():
        if kind == "histogram":
            expected |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            expected.add(name)
    stored = scene.prometheus.names(_of_operator())
    # Prometheus adds `up` and `scrape_*` for every target; everything else came from /metrics.
    from_exposition = {n for n in stored if n != "up" and not n.startswith("scrape_")}
    assert from_exposition == expected


def test_request_counter_holds_the_requests_sent(scene: Scene) -> None:
    samples = scene.query(_of_operator("vm_operator_http_requests_total", 'route!="/metrics"'))
    stored = {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
              for s in samples}
    assert stored == {key: float(n) for key, n in scene.sent.items()}
    assert stored[("GET", "/vms/{name}", "404")] == 3
    assert stored[("GET", "/vms", "400")] == 2


def test_tart_call_counter_shows_the_run_launches(scene: Scene) -> None:
    starts = scene.sent[("POST", "/vms/{name}/start", "202")]
    assert starts > 0
    launches = scene.query(
        "sum(" + _of_operator("vm_operator_tart_calls_total", 'command="run"') + ")")
    assert [s.value for s in launches] == [float(starts)]
    assert len(scene.operator.calls("run")) == starts  # the simulator's own call log


def test_event_series_count_the_state_changes_told(scene: Scene) -> None:
    """The start and the stop were each told once (vm.state, cause api); nobody watched."""
    changes = scene.sent[("POST", "/vms/{name}/start", "202")] + scene.sent[
        ("POST", "/vms/{name}/stop", "200")]
    published = scene.query(_of_operator("vm_operator_events_published_total"))
    assert [s.value for s in published] == [float(changes)]
    watchers = scene.query(_of_operator("vm_operator_event_watchers"))
    assert [s.value for s in watchers] == [0.0]


def test_histograms_have_bucket_sum_and_count_series(scene: Scene) -> None:
    histograms = [name for name, kind in scene.exposed_types.items() if kind == "histogram"]
    assert histograms

    def by_labels(samples: list[Sample]) -> dict[tuple[tuple[str, str], ...], float]:
        """Samples keyed by their labels without the name and ``le``."""
        return {tuple(sorted((k, v) for k, v in s.labels.items() if k not in {"le", "__name__"})):
                s.value for s in samples}

    for name in histograms:
        inf = by_labels(scene.query(_of_operator(f"{name}_bucket", 'le="+Inf"')))
        count = by_labels(scene.query(_of_operator(f"{name}_count")))
        total = by_labels(scene.query(_of_operator(f"{name}_sum")))
        assert inf and inf == count, name
        assert set(total) == set(count), name
        buckets = scene.prometheus.series(_of_operator(f"{name}_bucket"))
        assert len({b["le"] for b in buckets}) > 1, name
    # The request histogram counted exactly the requests sent, per method and route.
    observed = scene.query(_of_operator("vm_operator_http_request_duration_seconds_count",
                                        'route!="/metrics"'))
    per_route: Counter[tuple[str, str]] = Counter()
    for (method, route, _), n in scene.sent.items():
        per_route[(method, route)] += n
    assert {(s.labels["method"], s.labels["route"]): s.value for s in observed} == \
        {key: float(n) for key, n in per_route.items()}


def test_no_series_names_anything_but_an_existing_vm(scene: Scene) -> None:
    series = scene.prometheus.series(_of_operator())
    assert series
    values = {v for labels in series for k, v in labels.items() if k not in TARGET_LABELS}
    # What a client sent (a missing VM's name, a bad query value) never became a label value.
    assert not {MISSING_VM, BOGUS_STATE} & values
    for labels in series:
        per_vm = {k: v for k, v in labels.items() if k in {"vm", "name"}}
        assert set(per_vm.values()) <= scene.vm_names, labels


# ============================================================== the checks can fail


@pytest.mark.parametrize("defect", sorted(MALFORMED))
def test_a_malformed_exposition_is_caught(scene: Scene, defect: str) -> None:
    target = scene.prometheus.targets()[defect]
    with scene.expositions.lock:
        served = scene.expositions.served[defect]
    assert served > 0  # Prometheus fetched the body (a 200): the failure is the parse
    assert target.health == "down" and target.last_error, target
    up = scene.prometheus.query(f'up{{job="{defect}"}}')
    assert [s.value for s in up] == [0.0]


def test_a_well_formed_control_on_the_same_server_is_up(scene: Scene) -> None:
    target = scene.prometheus.targets()["control"]
    assert (target.health, target.last_error) == ("up", ""), target
    stored = scene.prometheus.query('control_total{job="control"}')
    assert [(s.labels["kind"], s.value) for s in stored] == [('a "quoted" \\ value', 3.0)]
