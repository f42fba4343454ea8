"""The benchmark's results, typed: what each measurement returns and what the report holds.

They are TypedDicts because the report *is* JSON (``--json`` prints it as is, and
tests/scripts/test_bench_smoke.py reads that shape); the types let mypy check every key the targets and
the Markdown read. Figures are milliseconds (``_ms``), MiB (``_mib``), seconds (``_s``,
``seconds``) or ratios, rounded when measured.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict


class Latencies(TypedDict):
    requests: int
    p50_ms: float | None
    p99_ms: float | None


class LoadResult(TypedDict):
    """One scenario against one server at one client count (``drive``), or the median of
    several rounds (``merge_rounds``: ``rounds_rps`` then says each round's req/s)."""

    clients: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    statuses: dict[str, int]
    errors: int
    refused: int
    error_samples: list[str]
    abandoned_requests: int
    unfinished_clients: int
    client_cpu_pct: float
    server_cpu_pct: float
    tart_cpu_pct: float
    server_cpu_us_per_request: float | None
    client_cpu_us_per_request: float | None
    reads: NotRequired[Latencies]  # with writes in the mix (the mixed scenario)
    writes: NotRequired[Latencies]
    tart_spawns: NotRequired[dict[str, int]]  # an operator on the simulator's call log
    tart_spawns_total: NotRequired[int]
    tart_list_spawns: NotRequired[int]
    max_concurrent_tart_list: NotRequired[int]
    rounds_rps: NotRequired[list[float]]
    vs_bare: NotRequired[float | None]  # the cached operator's scenarios
    p99_vs_bare: NotRequired[float | None]  # its reads: median of p99 ÷ the bare server's p99
    vs_naive: NotRequired[float | None]


ByClients = dict[str, LoadResult]  # by client count ("1", "16", "64")
ByScenario = dict[str, ByClients]  # by scenario (health, vms, vm, vms_etag, mixed)


class Soak(TypedDict):
    """The read mix at a fixed number of connections for a long while, RSS sampled."""

    seconds: float
    every_s: float
    clients: int
    load: LoadResult
    samples: list[tuple[float, float]]  # (seconds since the start, MiB)
    baseline_at_s: float | None  # the sample the end is compared with
    baseline_mib: float | None
    end_mib: float | None


class StartSample(TypedDict):
    vm: str
    status: int
    post_ms: float
    after_running_ms: float | None
    after_calllog_estimate_ms: float | None
    lock_source: str
    lists_ms_from_lock: list[list[float | None]]


class StartResult(TypedDict):
    samples: list[StartSample]
    median_ms: float | None
    max_ms: float | None
    post_median_ms: float | None
    lock_source: str


class Memory(TypedDict):
    operator_idle_mib: float | None
    naive_idle_mib: float | None
    bare_idle_mib: float | None
    operator_after_run_mib: NotRequired[float | None]
    naive_after_run_mib: NotRequired[float | None]
    bare_after_run_mib: NotRequired[float | None]
    long_requests: NotRequired[int]
    long_before_mib: NotRequired[float | None]
    long_after_mib: NotRequired[float | None]
    long_peak_mib: NotRequired[float]
    long_growth_mib: NotRequired[float | None]
    long_samples: NotRequired[list[tuple[float, float]]]


class CallCost(TypedDict):
    calls: int
    operator_mean_ms: float | None
    simulator_mean_ms: float | None


class CreateSample(TypedDict):
    wall_ms: float
    tart_calls: list[str]
    tart_logged_ms: float
    tart_spawn_ms: float
    own_ms: float


class CreateCost(TypedDict):
    image: str
    samples: list[CreateSample]
    own_median_ms: float
    own_max_ms: float
    wall_median_ms: float
    tart_logged_median_ms: float
    tart_spawn_median_ms: float


class Freshness(TypedDict):
    image: str
    state: str | None
    percentages_printed: int
    never_shown: int
    median_ms: float | None
    max_ms: float | None
    poll_ms: float


class BesidePull(TypedDict):
    image: str
    pulling: str
    pull_seconds: float
    samples_s: list[float]
    median_s: float
    max_s: float
    pull_still_running: bool
    poll_ms: float


class Lifecycle(TypedDict):
    create: CreateCost
    progress: Freshness


class Events(TypedDict):
    watchers: int
    window_s: float
    tart_list_per_s_1_watcher: float
    tart_list_per_s_100_watchers: float
    rss_idle_mib: float | None
    rss_100_watchers_mib: float | None
    rss_100_watchers_after_changes_mib: float | None
    outside_samples: int
    outside_lost: int
    outside_median_ms: float | None
    outside_max_ms: float | None
    outside_from_command_median_ms: float | None


class LocalDashboard(TypedDict):
    vms: int
    ticks: int
    seconds: float
    requests_per_tick: int
    tart_processes: int
    tart_per_second: float
    errors: int
    cold_detail_samples_ms: list[float]
    cold_detail_median_ms: float | None


class SshDashboard(TypedDict, total=False):
    """Over SSH; only ``skipped`` when it could not run."""

    skipped: str
    vms: int
    ticks: int
    seconds: float
    logins_during_dashboard: int
    logins_per_minute: float
    logins_whole_run: int
    first_request_ms: float
    cold_detail_samples_ms: list[float]
    cold_detail_median_ms: float | None
    cold_detail_ssh_adds_ms: float
    errors: int


class HostCost(TypedDict):
    local: LocalDashboard
    ssh: SshDashboard


class Target(TypedDict):
    target: str
    measured: str
    result: Literal["PASS", "MISS", "n/a"]


class Machine(TypedDict):
    nproc: int | None
    cpu_count: int | None
    cpu_model: str
    python: str
    python_executable: str
    implementation: str
    kernel: str
    system: str
    loadavg_at_start: str
    loadavg_at_end: NotRequired[str]


class Settings(TypedDict):
    tart_delay_ms: float
    duration_s: float
    naive_duration_s: float
    rounds: int
    long_max_seconds: float
    clients: list[int]
    naive_clients: list[int]
    long_requests: int
    long_clients: int
    start_samples: int
    cache_ttl_s: float
    client: str
    operator_logging: str
    quick: bool
    operator_src: str
    reconnect_every: NotRequired[int]
    events_window_s: NotRequired[float]
    events_samples: NotRequired[int]
    soak_seconds: NotRequired[float]


class ServerInfo(TypedDict):
    pid: int
    argv: NotRequired[list[str]]


class TunnelFigures(TypedDict):
    """A tunnel against a direct connection to the same guest echo port (tunnels.py)."""

    bytes: int
    pings: int
    direct_mib_s: float
    tunnel_mib_s: float
    direct_rtt_ms: float
    tunnel_rtt_ms: float
    added_ms: float


class Tunnels(TypedDict):
    local: TunnelFigures
    ssh: TunnelFigures | dict[str, str]  # {"skipped": why} when no sshd can run here


class Report(TypedDict):
    """A whole run; ``--host-cost-only`` fills only machine, command, settings, host_cost and
    targets (``--beside-pull-only``: beside_pull instead of host_cost); ``--reads-only``: bare,
    operator (its reads), memory, long and soak; ``--tls-only``: tls_bare and tls_operator."""

    machine: Machine
    command: str
    settings: Settings
    servers: NotRequired[dict[str, ServerInfo]]
    bare: NotRequired[ByClients]
    operator: NotRequired[ByScenario]
    naive: NotRequired[ByScenario]
    long: NotRequired[LoadResult]
    memory: NotRequired[Memory]
    start: NotRequired[StartResult]
    lifecycle: NotRequired[Lifecycle]
    beside_pull: NotRequired[BesidePull]
    events: NotRequired[Events]
    host_cost: NotRequired[HostCost]
    tunnels: NotRequired[Tunnels]
    tls_bare: NotRequired[ByClients]  # the bare server and the operator over HTTPS
    tls_operator: NotRequired[ByScenario]
    soak: NotRequired[Soak]
    tart_list_max_concurrent_whole_run: NotRequired[int]
    tart_calls_whole_run: NotRequired[int]
    tart_call_cost: NotRequired[dict[str, CallCost]]
    targets: NotRequired[list[Target]]
