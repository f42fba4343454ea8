"""Prometheus metrics in the text exposition format 0.0.4, with the standard library only.

Labels come only from bounded sets (route patterns, status codes, Tart commands),
never from VM names, paths or headers, so the series count cannot be blown up by a
client and no secret can end up in a label.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vm_operator.vocabulary import VM_STATES

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TART_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EventFigures:
    """The event bus's figures at render time."""

    published: int  # events published since the operator started
    dropped: int  # watchers dropped for falling behind
    watchers: int  # subscribers (event streams) connected now
    looks: int  # tart list listings the watcher looked at for outside changes


class Histogram:
    """Cumulative buckets computed at render time; observing is one bisect and two adds."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = labels + ((extra,) if extra else ())
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))


class Metrics:
    """The operator's counters and histograms; one lock, held only for a few additions."""

    def __init__(self) -> None:
        self.start_time = time.time()
        self._lock = threading.Lock()
        # by (method, route, status) and (method, route): labelled when rendered
        self._requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self._request_seconds: dict[tuple[str, str], Histogram] = {}
        self._tart_calls: defaultdict[Labels, int] = defaultdict(int)
        self._tart_seconds: dict[Labels, Histogram] = {}
        self._operations: defaultdict[Labels, int] = defaultdict(int)
        self._reconcile: defaultdict[Labels, int] = defaultdict(int)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            hist = self._request_seconds.get((method, route))
            if hist is None:
                hist = self._request_seconds[(method, route)] = Histogram(HTTP_BUCKETS)
            hist.observe(seconds)

    def observe_tart(self, command: str, outcome: str, seconds: float) -> None:
        with self._lock:
            self._tart_calls[(("command", command), ("outcome", outcome))] += 1
            key = (("command", command),)
            hist = self._tart_seconds.get(key)
            if hist is None:
                hist = self._tart_seconds[key] = Histogram(TART_BUCKETS)
            hist.observe(seconds)

    def observe_operation(self, kind: str, state: str) -> None:
        """An operation (create, delete, pull, prune) finished: succeeded, failed, cancelled."""
        with self._lock:
            self._operations[(("kind", kind), ("state", state))] += 1

    def observe_reconcile(self, action: str) -> None:
        """The reconciler acted on a VM (start, stop) for its desired state."""
        with self._lock:
            self._reconcile[(("action", action),)] += 1

    def render(self, vms: Sequence[Mapping[str, object]] | None = None,
               tart_runs: int | None = None,
               operations: tuple[int, int] | None = None,
               events: EventFigures | None = None) -> str:
        """The exposition; ``vms`` (the last listing), ``tart_runs``, ``operations``
        (running, queued) and ``events`` add their series."""
        with self._lock:
            finished = dict(self._operations)
            reconciled = dict(self._reconcile)
            requests: dict[Labels, int] = {
                (("method", m), ("route", r), ("status", str(s))): n
                for (m, r, s), n in self._requests.items()}
            request_hists: dict[Labels, tuple[list[int], float, tuple[float, ...]]] = {
                (("method", m), ("route", r)): (list(h.counts), h.sum, h.buckets)
                for (m, r), h in self._request_seconds.items()}
            tart_calls = dict(self._tart_calls)
            tart_hists = {k: (list(h.counts), h.sum, h.buckets) for k, h in self._tart_seconds.items()}
        out: list[str] = []
        _counter(out, "vm_operator_http_requests_total", "HTTP requests served.", requests)
        _histogram(out, "vm_operator_http_request_duration_seconds",
                   "Time to serve an HTTP request.", request_hists)
        _counter(out, "vm_operator_tart_calls_total",
                 "Tart commands run (tart run: launched), by outcome.", tart_calls)
        _histogram(out, "vm_operator_tart_call_duration_seconds",
                   "Time a Tart command took (tart run: its launch).", tart_hists)
        if vms is not None:
            by_state = dict.fromkeys(VM_STATES, 0)
            for vm in vms:
                state = str(vm["state"])
                by_state[state] = by_state.get(state, 0) + 1
            _gauge(out, "vm_operator_vms", "VMs by state, as of the last tart list.",
                   {(("state", s),): n for s, n in by_state.items()})
        if tart_runs is not None:
            _gauge(out, "vm_operator_tart_runs", "tart run processes this operator launched "
                   "and still supervises.", {(): tart_runs})
        if operations is not None:
            running, queued = operations
            _gauge(out, "vm_operator_operations", "Operations (create, delete, pull, prune) "
                   "running and waiting in the queue.",
                   {(("state", "running"),): running, (("state", "queued"),): queued})
        _counter(out, "vm_operator_operations_finished_total",
                 "Operations finished since the operator started, by kind and outcome.",
                 finished)
        _counter(out, "vm_operator_reconcile_actions_total",
                 "Actions the reconciler took for the VMs' desired state, by action.",
                 reconciled)
        if events is not None:
            _counter(out, "vm_operator_events_published_total",
                     "Events published on the event bus (GET /events).",
                     {(): events.published})
            _gauge(out, "vm_operator_event_watchers",
                   "Event streams (GET /events) connected now.", {(): events.watchers})
            _counter(out, "vm_operator_event_watchers_dropped_total",
                     "Event streams dropped for falling too far behind.",
                     {(): events.dropped})
            _counter(out, "vm_operator_watch_looks_total",
                     "tart list listings looked at for changes made outside the operator.",
                     {(): events.looks})
        _gauge(out, "process_start_time_seconds",
               "Start time of the process since unix epoch in seconds.", {(): self.start_time})
        return "\n".join(out) + "\n"


def _header(out: list[str], name: str, help_text: str, kind: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def _counter(out: list[str], name: str, help_text: str, series: dict[Labels, int]) -> None:
    _header(out, name, help_text, "counter")
    for labels, value in sorted(series.items()):
        out.append(f"{name}{_labels(labels)} {value}")


def _gauge(out: list[str], name: str, help_text: str, series: dict[Labels, float]) -> None:
    _header(out, name, help_text, "gauge")
    for labels, value in sorted(series.items()):
        out.append(f"{name}{_labels(labels)} {_number(value)}")


def _histogram(
    out: list[str],
    name: str,
    help_text: str,
    series: dict[Labels, tuple[list[int], float, tuple[float, ...]]],
) -> None:
    _header(out, name, help_text, "histogram")
    for labels, (counts, total, buckets) in sorted(series.items()):
        cumulative = 0
        for bound, count in zip((*buckets, float("inf")), counts):
            cumulative += count
            out.append(f"{name}_bucket{_labels(labels, ('le', _number(bound)))} {cumulative}")
        out.append(f"{name}_sum{_labels(labels)} {_number(total)}")
        out.append(f"{name}_count{_labels(labels)} {cumulative}")
