"""The operator's own routes (api/system.py), end to end: /health and /ready, /metrics in the
Prometheus text format, /openapi.json against the route table, and the access log."""

from __future__ import annotations

import itertools
import json
import math
import re
import shutil
from typing import Any
from urllib.parse import quote

from conftest import LOCAL_VMS, SIMULATOR
from support import assert_utc_timestamp, wait_for

SEQUOIA, SONOMA, UBUNTU = LOCAL_VMS
PROBLEM = "application/problem+json"


# --- /health, /ready --------------------------------------------------------------------------


def test_health_reports_healthy_with_tart_details(operator):
    status, headers, body = operator.request("GET", "/health")
    assert status == 200 and headers.get_content_type() == "application/json"
    health = json.loads(body)
    assert {"status", "message", "timestamp", "version", "tart"} <= health.keys()
    assert health["status"] == "healthy"
    assert isinstance(health["message"], str) and health["message"]
    assert_utc_timestamp(health["timestamp"])
    assert isinstance(health["version"], str) and health["version"]
    assert health["tart"]["path"] == str(SIMULATOR)
    assert health["tart"]["available"] is True
    # Tart's version is fetched without blocking the probe: it shows up shortly.
    wait_for(lambda: operator.json("GET", "/health")[1]["tart"]["version"] == "2.31.0",
             message="/health reports the simulator's version 2.31.0")


def test_ready_is_200_when_tart_lists(operator):
    ready = operator.ok("GET", "/ready")
    assert ready["status"] == "ready"


def test_missing_binary_is_degraded_and_503(operator_factory):
    op = operator_factory(args=["--tart", "/nonexistent/tart"], seed=False)
    health = op.ok("GET", "/health")
    assert health["status"] == "degraded"
    assert health["tart"]["available"] is False
    assert health["tart"]["path"] == "/nonexistent/tart"
    assert health["tart"]["version"] is None
    assert "brew install cirruslabs/cli/tart" in health["message"]  # what to do, not only what
    op.problem("GET", "/ready", 503, "not-ready")
    op.problem("GET", "/vms", 503, "tart-unavailable")
    op.problem("GET", f"/vms/{SEQUOIA}", 503, "tart-unavailable")
    op.problem("POST", f"/vms/{SEQUOIA}/start", 503, "tart-unavailable")


def test_non_executable_binary_is_503(operator_factory, tmp_path):
    binary = tmp_path / "tart-not-executable"
    shutil.copyfile(SIMULATOR, binary)
    binary.chmod(0o644)
    op = operator_factory(args=["--tart", str(binary)])
    health = op.ok("GET", "/health")
    assert health["status"] == "degraded" and health["tart"]["available"] is False
    op.problem("GET", "/vms", 503, "tart-unavailable")
    op.problem("GET", "/ready", 503, "not-ready")


# --- /metrics ---------------------------------------------------------------------------------


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"')


_VALUE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?Inf|NaN")


_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _parse_sample(line: str) -> tuple[str, dict[str, str], float]:
    match = _NAME.match(line)
    assert match, line
    name, i, labels = match.group(), match.end(), {}
    if line[i:i + 1] == "{":
        i += 1
        while True:
            while line[i] in " \t":
                i += 1
            if line[i] == "}":
                i += 1
                break
            label = _LABEL.match(line, i)
            assert label, f"bad label at {i}: {line}"
            key, i, value = label.group(1), label.end(), ""
            while line[i] != '"':
                if line[i] == "\\":
                    assert line[i + 1] in '\\"n', f"bad escape: {line}"
                    value += {"\\": "\\", '"': '"', "n": "\n"}[line[i + 1]]
                    i += 2
                else:
                    value += line[i]
                    i += 1
            i += 1
            assert key not in labels, f"label {key} twice: {line}"
            labels[key] = value
            while line[i] in " \t":
                i += 1
            if line[i] == ",":
                i += 1
            elif line[i] == "}":
                i += 1
                break
            else:
                raise AssertionError(f"bad label list: {line}")
    rest = line[i:]
    parts = rest.split()
    assert rest[:1] in (" ", "\t") and 1 <= len(parts) <= 2, line
    assert _VALUE.fullmatch(parts[0]), line
    if len(parts) == 2:
        assert re.fullmatch(r"-?\d+", parts[1]), line  # timestamp
    return name, labels, float(parts[0])


def parse_prometheus(text: str) -> dict[str, dict[str, Any]]:
    """Parse text format 0.0.4 strictly; return {family: {type, help, samples}}."""
    assert text.endswith("\n"), "the exposition must end with a line feed"
    families: dict[str, dict[str, Any]] = {}
    closed: set[str] = set()
    current = None

    def family_of(name: str) -> str:
        if name in families:
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and families.get(base, {}).get("type") in ("histogram", "summary"):
                return base
        raise AssertionError(f"sample {name} has no # TYPE line before it")

    def enter(family: str) -> None:
        nonlocal current
        if family != current:
            assert family not in closed, f"lines of {family} are not grouped together"
            if current is not None:
                closed.add(current)
            current = family

    for line in text.split("\n")[:-1]:
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert _NAME.fullmatch(name), line
                family = families.setdefault(name, {"type": None, "help": None, "samples": []})
                enter(name)
                key = parts[1].lower()
                assert family[key] is None, f"second {parts[1]} for {name}"
                if key == "type":
                    assert len(parts) == 4 and parts[3] in _TYPES, line
                    assert not family["samples"], f"TYPE after samples of {name}"
                    family["type"] = parts[3]
                else:
                    family["help"] = parts[3] if len(parts) == 4 else ""
            continue
        name, labels, value = _parse_sample(line)
        family = family_of(name)
        enter(family)
        families[family]["samples"].append((name, labels, value))
    for name, family in families.items():
        assert family["type"] and family["help"] is not None, f"{name} lacks HELP or TYPE"
        keys = [(n, tuple(sorted(l.items()))) for n, l, _ in family["samples"]]
        assert len(keys) == len(set(keys)), f"duplicate samples in {name}"
        if family["type"] == "histogram":
            check_histogram(name, family["samples"])
    return families


def check_histogram(name: str, samples: list[tuple[str, dict[str, str], float]]) -> None:
    series: dict[tuple, dict[str, Any]] = {}
    for sample_name, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        entry = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sample_name == f"{name}_bucket":
            entry["buckets"].append((labels["le"], value))
        elif sample_name == f"{name}_sum":
            entry["sum"] = value
        elif sample_name == f"{name}_count":
            entry["count"] = value
        else:
            raise AssertionError(f"{sample_name} in histogram {name}")
    assert series, f"histogram {name} has no series"
    for key, entry in series.items():
        bounds = [float(le) for le, _ in entry["buckets"]]
        counts = [count for _, count in entry["buckets"]]
        assert entry["buckets"] and entry["buckets"][-1][0] == "+Inf", (name, key)
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), (name, key, bounds)
        assert all(a <= b for a, b in itertools.pairwise(counts)), f"{name}{key} not cumulative: {counts}"
        assert entry["count"] == counts[-1], (name, key, entry)
        assert entry["sum"] is not None and not math.isnan(entry["sum"]), (name, key)


def test_metrics_are_prometheus_text_with_request_and_tart_counts(operator):
    wait_for(lambda: operator.json("GET", "/health")[1]["tart"]["version"])  # version call done
    for path in ("/vms", "/vms", "/nope", "/vms?state=bogus"):
        operator.request("GET", path)
    operator.start_vm(SEQUOIA)

    def scrape() -> dict[str, dict[str, Any]] | None:
        status, headers, body = operator.request("GET", "/metrics")
        assert status == 200 and headers.get_content_type() == "text/plain"
        assert "version=0.0.4" in headers.get("Content-Type", "").replace(" ", "")
        families = parse_prometheus(body.decode("utf-8"))
        requests = [f for f in families.values() if f["type"] == "counter"
                    and any({"method", "status"} <= set(l) for _, l, _ in f["samples"])]
        tart = [f for f in families.values() if f["type"] == "counter"
                and any("command" in l for _, l, _ in f["samples"])]
        assert len(requests) == 1 and len(tart) == 1, sorted(families)

        def requests_with(**want: str) -> float:
            return sum(v for _, l, v in requests[0]["samples"] if want.items() <= l.items())

        # every finished Tart call is counted (the long-lived `tart run` aside)
        finished = [c for c in operator.calls() if c.finished and c.command != "run"]
        tart_total = sum(v for _, l, v in tart[0]["samples"] if l.get("command") != "run")
        if (requests_with(method="GET", status="200") >= 2 and requests_with(status="404") == 1
                and requests_with(status="400") == 1 and requests_with(method="POST", status="202") == 1
                and tart_total == len(finished)):
            return families
        return None

    families = wait_for(scrape, interval=0.1,
                        message="/metrics counts the requests made and every Tart call")
    assert any(f["type"] == "histogram" for f in families.values())


# --- /openapi.json ----------------------------------------------------------------------------


def expected_errors(route: Any) -> set[int]:
    """The 4xx/5xx codes a route can answer, read from its declaration: the status of each
    problem it declares (through the catalogue), and 400 when a parameter can be refused."""
    from vm_operator.edge.problems import ProblemType, problem_of

    codes = set()
    for declared in route.problems:
        problem = declared if isinstance(declared, ProblemType) else problem_of(declared)
        assert problem is not None, f"{route.pattern}: {declared!r} is not catalogued"
        codes.add(problem.status)
    if any(param.type.refuses for param in (*route.path, *route.query)):
        codes.add(400)
    return codes


HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def test_openapi_matches_the_route_table(operator):
    from vm_operator.api import ROUTES

    doc = operator.ok("GET", "/openapi.json")
    assert str(doc["openapi"]).startswith("3.1")
    described = {(method.upper(), path) for path, item in doc["paths"].items()
                 for method in item if method in HTTP_METHODS}
    assert described == {(route.method, route.pattern) for route in ROUTES}
    problems = []
    for route in ROUTES:
        operation = doc["paths"][route.pattern][route.method.lower()]
        params = operation.get("parameters", [])
        query = {p["name"] for p in params if p["in"] == "query"}
        if query != set(route.query_names):
            problems.append(f"{route.method} {route.pattern}: query {sorted(query)} != "
                            f"{route.query_names}")
        path_params = {p["name"]: p for p in params if p["in"] == "path"}
        if set(path_params) != set(re.findall(r"\{(\w+)\}", route.pattern)):
            problems.append(f"{route.method} {route.pattern}: path parameters {sorted(path_params)}")
        if any(p.get("required") is not True for p in path_params.values()):
            problems.append(f"{route.method} {route.pattern}: a path parameter is not required")
        codes = {int(code) for code in operation["responses"] if code.isdigit()}
        if not any(200 <= code < 300 or (code == 101 and route.upgrade) for code in codes):
            problems.append(f"{route.method} {route.pattern}: no success response")
        expected = expected_errors(route)
        if expected - codes:
            problems.append(f"{route.method} {route.pattern}: undescribed {sorted(expected - codes)}")
        for code in codes:
            content = operation["responses"][str(code)].get("content", {})
            if code >= 400 and PROBLEM not in content:
                problems.append(f"{route.method} {route.pattern} {code}: not application/problem+json")
    assert not problems, "\n".join(problems)


# --- access log -------------------------------------------------------------------------------


def test_access_log_is_one_json_line_per_request_without_authorization(operator):
    secret = "s3cr3t-t0ken-value-0123456789"
    auth = {"Authorization": f"Bearer {secret}"}
    sent = [
        ("GET", "/health", {}, 200),
        ("GET", "/vms?source=local", auth, 200),
        ("POST", f"/vms/{SEQUOIA}/start?suspendable=maybe", auth, 400),
        ("GET", "/nope", auth, 404),
    ]
    for method, path, headers, status in sent:
        assert operator.request(method, path, headers=headers)[0] == status

    def access_lines() -> list[dict[str, Any]]:
        return [r for r in operator.log_records() if "method" in r]

    wait_for(lambda: len(access_lines()) >= len(sent), message="one access log line per request")
    records = access_lines()
    assert len(records) == len(sent), records
    # each line is written after its response, so two requests may log in either order
    by_path = {record["path"]: record for record in records}
    for method, path, _, status in sent:
        record = by_path[path.partition("?")[0]]
        assert record["method"] == method
        assert record["path"] == path.partition("?")[0] or record["path"] == path
        assert record["status"] == status
        assert isinstance(record["duration_ms"], int | float) and record["duration_ms"] >= 0
        assert record["client"] == "127.0.0.1"
    stdout = operator.stdout_path.read_text()
    for line in stdout.splitlines():
        assert isinstance(json.loads(line), dict), line  # every stdout line is one JSON object
    assert secret not in stdout and secret not in operator.stderr_path.read_text()


# --- /openapi.json tells the truth ------------------------------------------------------------


def test_every_operation_has_a_unique_camel_case_operation_id(operator):
    doc = operator.ok("GET", "/openapi.json")
    ids = [operation.get("operationId") for item in doc["paths"].values()
           for method, operation in item.items()
           if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}]
    assert ids and all(isinstance(i, str) and re.fullmatch(r"[a-z][a-zA-Z0-9]*", i) for i in ids), ids
    assert len(set(ids)) == len(ids), ids
    assert {"listVms", "getVm", "startVm", "stopVm", "suspendVm"} <= set(ids), ids


def published_name_schema(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = [param["schema"] for item in doc["paths"].values() for operation in item.values()
               for param in operation.get("parameters", []) if param["in"] == "path"
               and param["name"] in ("name", "ref")]  # an image is named as a VM is
    from vm_operator.api import ROUTES
    from vm_operator.api.params import VM_NAME

    declared = sum(param.type is VM_NAME for route in ROUTES for param in route.path)
    assert len(schemas) == declared >= 6, schemas
    assert all(schema == schemas[0] for schema in schemas), schemas
    return schemas[0]


# Names the tester sent (C1 controls, unassigned code points), Unicode that looks like ASCII,
# and names at each edge of the rules.
SAMPLES = ["macos-ci", "ghcr.io/org/img:tag", "a/-b", "...", ".x", "a" * 255, "!~$'`;&|",
           "next\u0085line", "x\u0088", "unassigned\u0378", "Ünïcödé-vm", "\u0430pple", "e\u0301",
           "has space", "-rf", "a//b", "a/./b", "a/..", "a" * 256, "tab\tx", "del\x7f"]


def test_the_name_schema_states_the_rules_the_server_applies(operator):
    schema = published_name_schema(operator.ok("GET", "/openapi.json"))
    assert schema["type"] == "string" and schema["minLength"] == 1 and schema["maxLength"] == 255
    pattern = schema["pattern"]
    disagree = []
    for name in SAMPLES:
        # JSON Schema's (ECMA-262) reading of an anchored pattern is Python's fullmatch
        allowed = len(name) <= schema["maxLength"] and re.fullmatch(pattern, name) is not None
        for method, template in (("GET", "/vms/{}"), ("POST", "/vms/{}/suspend"),
                                 ("DELETE", "/images/{}")):
            status, _, body = operator.request(method, template.format(quote(name, safe="")))
            if (status != 400) != allowed:
                disagree.append(f"{name!a}: schema allows={allowed}, {method} -> {status} {body[:160]!r}")
    assert not disagree, "\n".join(disagree)
    assert [c for c in operator.calls() if c.command not in ("--version", "list", "get")] == []
