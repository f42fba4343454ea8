"""The command line: options (with the quick run's defaults) and the entry point."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType

from benchmark.bare import serve_bare
from benchmark.common import REPO, SIMULATOR, Interrupted
from benchmark.load import CLIENTS
from benchmark.markdown import (
    beside_pull_markdown,
    host_cost_markdown,
    markdown,
    tunnels_markdown,
)
from benchmark.readsmd import reads_markdown
from benchmark.run import run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark vm-operator on the Tart simulator.")
    scaled: dict[str, tuple[float, float]] = {}  # dest -> (its default, the quick run's)

    def option(flag: str, kind: type[float], full: float, short: float, text: str,
               note: str = "") -> None:
        """An option whose default the quick run scales down: both said once, here."""
        scaled[flag[2:].replace("-", "_")] = (kind(full), kind(short))
        p.add_argument(flag, type=kind, help=f"{text} ({note}default {full:g}; quick {short:g})")

    p.add_argument("--quick", action="store_true",
                   help="smoke-test settings: 0.4 s scenarios, 1 round, --long 2000, "
                   "2 start samples")
    option("--duration", float, 3, 0.4, "seconds per scenario")
    p.add_argument("--naive-duration", type=float,
                   help="seconds per scenario of the --cache-ttl 0 reference "
                   "(default = --duration)")
    option("--naive-drain", float, 30, 3,
           "seconds the --cache-ttl 0 reference may take to finish in-flight requests past its "
           "duration before they are abandoned")
    option("--rounds", int, 5, 1, "alternating bare/operator rounds per client count (ratios "
           "are their median: two rounds disturbed by the rest of the machine move nothing)")
    p.add_argument("--clients", default="1,16,64", help="client counts (default 1,16,64)")
    option("--drain", float, 10, 2,
           "seconds the cached operator may take to finish in-flight requests (slow writes of "
           "the mixed scenario) past a scenario's duration")
    p.add_argument("--naive-clients",
                   help="client counts of the --cache-ttl 0 reference "
                   "(default = --clients; quick 1,16)")
    option("--long", int, 100000, 2000, "requests of the long run")
    p.add_argument("--long-clients", type=int, default=16,
                   help="clients of the long run (default 16)")
    option("--long-max-seconds", float, 300, 10,
           "stop the long run after this long even if --long requests are not done")
    p.add_argument("--reconnect-every", type=int, default=1000,
                   help="long run: each client opens a new connection after this many "
                   "requests (default 1000)")
    option("--start-samples", int, 7, 2, "POST start measurements")
    option("--create-samples", int, 10, 3, "creates from a cached image measured")
    option("--events-window", float, 5, 2,
           "seconds over which the Tart calls of 1 and of 100 watchers are counted")
    option("--events-samples", int, 5, 1,
           "outside `tart run` + `tart stop` pairs timed to their events")
    option("--pull-seconds", float, 5, 2,
           "how long the simulated pull of the progress measure takes",
           note="TART_SIM_PULL_SECONDS; ")
    option("--dashboard-seconds", float, 30, 3,
           "how long the 1 Hz dashboard over 10 VMs runs locally")
    option("--ssh-dashboard-seconds", float, 60, 5, "how long it runs over SSH")
    option("--cold-samples", int, 9, 3, "cold GET /vms/{name} over SSH measured")
    option("--soak-seconds", float, 600, 5,
           "how long the soak runs the read mix at 16 connections (RSS sampled every 30 s; "
           "quick: every 1 s)")
    p.add_argument("--reads-only", action="store_true",
                   help="measure only the reads against the bare server (1/16/64 connections), "
                   "idle memory, the long run and the soak")
    p.add_argument("--tls-only", action="store_true",
                   help="measure only the reads over TLS against a bare HTTPS server with the "
                   "same certificate (with --reads-only: both)")
    p.add_argument("--beside-pull-only", action="store_true",
                   help="measure only a create from a cached image beside a 30 s pull of "
                   "another image")
    p.add_argument("--host-cost-only", action="store_true",
                   help="measure only the dashboard's cost to the host (locally and over SSH)")
    option("--tunnel-mib", float, 64, 4, "MiB sent through a tunnel and back")
    option("--tunnel-pings", int, 200, 20, "one-byte round trips timed per connection")
    p.add_argument("--tunnels-only", action="store_true",
                   help="measure only the tunnels (throughput, added latency; locally and "
                   "over SSH)")
    p.add_argument("--no-ssh", action="store_true",
                   help="skip the figures over SSH (they need Linux, root and sshd)")
    p.add_argument("--tart-delay", type=float, default=50.0,
                   help="milliseconds added to every simulated Tart call "
                   "(TART_SIM_DELAY; default 50)")
    p.add_argument("--cache-ttl", type=float, default=1.0,
                   help="--cache-ttl of the cached operator (default 1)")
    p.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                   help="raw: pre-built requests over a socket (default); "
                   "http.client: the stdlib client")
    p.add_argument("--access-log", action="store_true",
                   help="run the operators with their access log (default: --no-access-log)")
    p.add_argument("--json", action="store_true",
                   help="print the results as JSON instead of Markdown")
    p.add_argument("--json-file", help="also write the JSON results to this file")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (call logs, stderr)")
    p.add_argument("--operator-src", default=str(REPO),
                   help="directory holding the vm_operator package to benchmark, e.g. a patched "
                   "copy (default: this checkout)")
    p.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bare-tls-cert", help=argparse.SUPPRESS)
    p.add_argument("--bare-tls-key", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = args.quick
    for key, (full, short) in scaled.items():
        if getattr(args, key) is None:
            setattr(args, key, short if quick else full)
    if args.naive_duration is None:
        args.naive_duration = args.duration
    args.clients = [int(c) for c in str(args.clients).split(",") if c.strip()]
    if args.naive_clients is None:
        args.naive_clients = "1,16" if quick else ",".join(map(str, args.clients))
    args.naive_clients = [int(c) for c in str(args.naive_clients).split(",") if c.strip()]
    if (not args.clients or min(args.clients) < 1 or args.rounds < 1
            or args.long < args.long_clients):
        p.error("--clients, --rounds and --long must be positive (and --long >= --long-clients)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        return serve_bare(args.bare_tls_cert, args.bare_tls_key)
    operator_src = Path(args.operator_src).resolve()
    if not (operator_src / "vm_operator" / "__main__.py").is_file():
        print(f"bench: no vm_operator package in {operator_src}", file=sys.stderr)
        return 2
    if not SIMULATOR.is_file():
        print(f"bench: no simulator at {SIMULATOR}", file=sys.stderr)
        return 2

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, interrupt)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # respect nohup
        signal.signal(signal.SIGHUP, interrupt)
    try:
        report = run(args)
    except (KeyboardInterrupt, Interrupted) as exc:
        print(f"bench: interrupted ({type(exc).__name__} {exc}); everything it started was stopped",
              file=sys.stderr)
        return 130
    report["settings"]["reconnect_every"] = args.reconnect_every
    report["settings"]["events_window_s"] = args.events_window
    report["settings"]["events_samples"] = args.events_samples
    report["settings"]["soak_seconds"] = args.soak_seconds
    text = json.dumps(report, indent=2)
    if args.json_file:
        Path(args.json_file).write_text(text + "\n")
    pretty = (reads_markdown if args.reads_only or args.tls_only
              else tunnels_markdown if args.tunnels_only
              else host_cost_markdown if args.host_cost_only
              else beside_pull_markdown if args.beside_pull_only else markdown)
    print(text if args.json else pretty(report), flush=True)
    if args.strict and any(t["result"] == "MISS" for t in report["targets"]):
        return 1
    return 0

