"""The Prometheus text format, checked line by line against its grammar."""

import re

from vm_operator.edge.metrics import Metrics

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(\{{{LABEL}(?:,{LABEL})*\}})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$")
COMMENT = re.compile(rf"^# (HELP|TYPE) ({NAME}) (.+)$")


def check_exposition(text: str) -> dict[str, str]:
    """Assert every line is valid; return the declared type of each metric family."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    for line in text.splitlines():
        comment = COMMENT.match(line)
        if comment:
            if comment.group(1) == "TYPE":
                assert comment.group(3) in ("counter", "gauge", "histogram", "summary", "untyped")
                types[comment.group(2)] = comment.group(3)
            continue
        sample = SAMPLE.match(line)
        assert sample, f"not a valid sample line: {line!r}"
        family = re.sub(r"_(bucket|sum|count)$", "", sample.group(1))
        assert sample.group(1) in types or family in types, f"sample before its TYPE: {line!r}"
    return types


def test_render_is_valid_and_histograms_are_cumulative() -> None:
    metrics = Metrics()
    for seconds in (0.0005, 0.003, 0.2, 42.0):
        metrics.observe_request("GET", "/vms/{name}", 200, seconds)
    metrics.observe_tart("list", "ok", 0.05)
    metrics.observe_tart("run", "refused", 0.5)
    text = metrics.render()
    types = check_exposition(text)
    assert types["vm_operator_http_request_duration_seconds"] == "histogram"
    buckets = [line for line in text.splitlines()
               if line.startswith("vm_operator_http_request_duration_seconds_bucket")]
    counts = [int(line.rsplit(" ", 1)[1]) for line in buckets]
    assert counts == sorted(counts) and counts[-1] == 4
    assert buckets[-1].endswith('le="+Inf"} 4')
    assert 'vm_operator_tart_calls_total{command="run",outcome="refused"} 1' in text
    assert 'vm_operator_http_requests_total{method="GET",route="/vms/{name}",status="200"} 4' in text
    assert re.search(r"^process_start_time_seconds \d+(\.\d+)?$", text, re.MULTILINE)


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.observe_request("GET", 'we"ird\\route\n', 404, 0.01)
    check_exposition(metrics.render())
