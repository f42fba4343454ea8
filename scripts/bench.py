#!/usr/bin/env python3
"""Benchmark of vm-operator against the Tart simulator, with the references that give it meaning.

Run it from a checkout, with the interpreter you serve with (stdlib only):

    .venv/bin/python scripts/bench.py            # full run, Markdown on stdout (~5 min)
    .venv/bin/python scripts/bench.py --quick    # smoke run (~30 s)
    .venv/bin/python scripts/bench.py --json     # the same figures as JSON

What it starts, all on 127.0.0.1 and all as separate processes (``sys.executable``):

* the operator (``--cache-ttl 1``, the default design: cache + single-flight) on the Tart
  simulator, with ``TART_SIM_DELAY`` (``--tart-delay``, default 50 ms) added to every Tart
  call to stand for a real Tart's start-up cost;
* the same operator with ``--cache-ttl 0``: the naive design that spawns Tart per request;
* a bare ``http.server.ThreadingHTTPServer`` answering a fixed JSON body with the same
  fairness fixes as the operator (HTTP/1.1 keep-alive, TCP_NODELAY, one write per response):
  the ceiling of this design.

Each server gets its own throw-away ``TART_HOME`` and ``TART_SIM_CALL_LOG``. The clients are
threads of this process, one keep-alive connection each; by default they send pre-built
request bytes over a raw socket and parse just the status line and Content-Length
(``--client http.client`` uses the standard library client instead).

Every scenario runs for ``--duration`` seconds (the per-request-spawn mode for
``--naive-duration``) at each client count; for the cached operator, ``--rounds`` rounds
alternate bare server / operator so that ratios to the bare server come from neighbouring
measurements (the median ratio is reported). Tart process counts and the largest number of
``tart list`` running at once come from the call logs (start and end times that the
simulator itself writes). Everything started is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import queue
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_events
import bench_lifecycle

REPO = Path(__file__).resolve().parent.parent
OPERATOR_SRC = REPO  # where `python -m vm_operator` is imported from (--operator-src)
SIMULATOR = REPO / "bin" / "tart-simulator"  # runs vm_operator/simulator.py
HOST = "127.0.0.1"
LOCAL_VMS = ("macos-sequoia-base", "macos-sonoma-xcode", "ubuntu-runner")
SCENARIOS = ("health", "vms", "vm", "mixed")
LABELS = {
    "bare": "bare ThreadingHTTPServer (fixed JSON)",
    "health": "GET /health",
    "vms": "GET /vms",
    "vm": "GET /vms/{name}",
    "mixed": "mixed read/write (10% POST start/stop)",
    "long": "long run: GET /vms/{name} + GET /health",
}
RUNTIME_FILE = ".tart-sim-run.json"  # the simulator's record of a run, written right after the lock
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "health_vs_bare": 0.8,
    "reads_vs_bare": 0.7,
    "reads_vs_naive": 50.0,
    "max_concurrent_list": 1,
    "idle_rss_mib": 30.0,
    "rss_growth_mib": 10.0,
    "start_after_running_ms": 150.0,
    "create_own_ms": 50.0,
    "progress_fresh_ms": 1000.0,
    "outside_event_ms": 1500.0,
    "watchers_rss_mib": 40.0,
}


class Interrupted(Exception):
    """SIGTERM or SIGHUP: unwind like Ctrl-C so that everything started gets stopped."""


_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- the bare reference server (run as `bench.py --serve-bare`) -------------------------------


def serve_bare() -> int:
    """A bare ThreadingHTTPServer: one pre-built response, one write, keep-alive, no Nagle."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps({
        "status": "healthy", "message": "vm-operator is serving",
        "timestamp": "2025-01-01T00:00:00.000Z", "version": "0.0.0",
        "tart": {"path": "/usr/local/bin/tart", "available": True, "version": "2.31.0"},
    }, separators=(",", ":")).encode()
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.wfile.write(response)

        do_POST = do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        block_on_close = False
        request_queue_size = 256

    server = Server((HOST, 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(json.dumps({"event": "listening", "port": server.server_address[1]}), flush=True)
    server.serve_forever()
    return 0


# --- processes ------------------------------------------------------------------------------


def read_rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib(pid: int) -> float | None:
    kib = read_rss_kib(pid)
    return None if kib is None else round(kib / 1024, 2)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own user+system, reaped children's user+system) CPU seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return own, children


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Server:
    """A server subprocess: the operator (cached or naive) or the bare reference."""

    kind: str  # "operator", "naive" or "bare"
    proc: subprocess.Popen[bytes]
    port: int
    home: Path
    call_log: Path | None = None
    tart_home: Path | None = None
    stderr_path: Path | None = None
    stdout_bytes: int = 0
    argv: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def addr(self) -> tuple[str, int]:
        return HOST, self.port


class Fleet:
    """Everything this run started, so that ``close`` can stop all of it."""

    def __init__(self, keep: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vm-operator-bench-"))
        self.keep = keep
        self.servers: list[Server] = []

    def env(self) -> dict[str, str]:
        """The environment of the servers: the venv's python3 first, no stray settings."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VM_OPERATOR_", "TART_"))}
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        inherited = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(OPERATOR_SRC) + (os.pathsep + inherited if inherited else "")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def _spawn(self, kind: str, argv: list[str], env: dict[str, str], home: Path,
               **extra: Any) -> Server:
        stderr_path = home / "stderr.log"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err, cwd=OPERATOR_SRC, env=env, start_new_session=True)
        lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        server = Server(kind, proc, 0, home, stderr_path=stderr_path, **extra)
        self.servers.append(server)

        def drain() -> None:
            """Read up to the listening line, then discard the rest (it must never block)."""
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("event") == "listening":
                    lines.put(record)
                    break
            else:
                lines.put(None)
                return
            while chunk := os.read(proc.stdout.fileno(), 65536):
                server.stdout_bytes += len(chunk)

        threading.Thread(target=drain, name=f"drain-{kind}", daemon=True).start()
        try:
            record = lines.get(timeout=20)
        except queue.Empty:
            record = None
        if record is None:
            tail = stderr_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{kind} server did not report listening; stderr:\n{tail}")
        server.port = int(record["port"])
        return server

    def start_bare(self) -> Server:
        home = self.root / "bare"
        home.mkdir()
        return self._spawn("bare", [sys.executable, str(Path(__file__).resolve()), "--serve-bare"],
                           self.env(), home)

    def start_operator(self, kind: str, cache_ttl: float, tart_delay: float,
                       access_log: bool, extra_env: dict[str, str] | None = None) -> Server:
        home = self.root / kind
        tart_home = home / "tart"
        call_log = home / "tart-calls.log"
        home.mkdir()
        env = self.env()
        env.update({"TART_HOME": str(tart_home), "TART_SIM_SEED": "demo"})
        # Seed the demo VMs before the operator starts, outside the call log and the delay.
        subprocess.run([str(SIMULATOR), "list", "--format", "json"], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=30)
        env.update({"TART_SIM_DELAY": f"{tart_delay:g}", "TART_SIM_CALL_LOG": str(call_log)})
        env.update(extra_env or {})
        argv = [sys.executable, "-m", "vm_operator", "--host", HOST, "--port", "0",
                "--tart", str(SIMULATOR), "--state-dir", str(home / "state"),
                "--cache-ttl", f"{cache_ttl:g}"]
        if not access_log:
            argv.append("--no-access-log")
        server = self._spawn(kind, argv, env, home, call_log=call_log, tart_home=tart_home)
        server.argv = argv
        return server

    def close(self) -> None:
        """Stop the simulated VMs, then the servers; SIGKILL whatever outlives its grace."""
        for server in self.servers:
            if server.call_log is not None:
                stop_simulated_vms(server.call_log)
        for server in self.servers:
            if server.proc.poll() is None:
                try:
                    os.killpg(server.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for server in self.servers:
            try:
                server.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(server.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                server.proc.wait(timeout=5)
        for server in self.servers:  # a start that raced the shutdown
            if server.call_log is not None:
                stop_simulated_vms(server.call_log)
        if self.keep:
            log(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def stop_simulated_vms(call_log: Path) -> None:
    """Every `tart run` of the call log that has not ended: SIGINT (as `tart stop` does), then
    SIGKILL."""
    pids = [c.pid for c in read_calls(call_log) if c.command == "run" and c.end is None]
    alive = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"tart-simulator" in cmdline and b"run" in cmdline.split(b"\0"):  # not a recycled pid
            try:
                os.kill(pid, signal.SIGINT)
                alive.append(pid)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 3
    for pid in alive:
        while time.monotonic() < deadline and process_running(pid):
            time.sleep(0.05)
        if process_running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def process_running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent (the operator's reaper) to collect it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# --- the call log ---------------------------------------------------------------------------


@dataclass
class Call:
    pid: int
    start: float
    end: float | None
    argv: str

    @property
    def command(self) -> str:
        for arg in self.argv.split():
            if not arg.startswith("-"):
                return arg
        return "version" if "--version" in self.argv else "?"


def read_calls(path: Path) -> list[Call]:
    """``PID START start ARGV`` when a call begins, ``PID START END ARGV`` when it ends."""
    calls: dict[tuple[str, str], Call] = {}
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        pid, start, end = parts[:3]
        argv = parts[3] if len(parts) > 3 else ""
        try:
            began, ended = float(start), None if end == "start" else float(end)
            call = calls.setdefault((pid, start), Call(int(pid), began, None, argv))
        except ValueError:  # a line of another shape: not ours to read
            continue
        if ended is not None:
            call.end = ended
    return sorted(calls.values(), key=lambda c: c.start)


def max_concurrent(calls: list[Call], command: str, horizon: float) -> int:
    """The most ``command`` calls that ran at the same moment (an unfinished one lasts until
    ``horizon``)."""
    events = []
    for call in calls:
        if call.command == command:
            events.append((call.start, 1))
            events.append((call.end if call.end is not None else horizon, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    most = running = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def calls_between(call_log: Path | None, t0: float, t1: float) -> list[Call]:
    if call_log is None:
        return []
    return [c for c in read_calls(call_log) if t0 <= c.start <= t1]


QUIET: list[Server] = []  # the operators whose leftover Tart calls a measurement waits for


def wait_tart_quiet(timeout: float, servers: list[Server] | None = None) -> None:
    """Let Tart calls left over from earlier scenarios end (`run` excepted), on every operator:
    an abandoned request of the per-request-spawn reference keeps spawning Tart after its
    client is gone, and would load the CPU under the next measurement."""
    deadline = time.monotonic() + timeout
    logs = [s.call_log for s in (QUIET if servers is None else servers) if s.call_log is not None]
    quiet_checks = 0
    while logs and quiet_checks < 2 and time.monotonic() < deadline:  # quiet twice, 0.2 s apart
        busy = any(c.end is None and c.command != "run" and simulator_alive(c.pid)
                   for log_path in logs for c in read_calls(log_path))
        quiet_checks = 0 if busy else quiet_checks + 1
        time.sleep(0.2 if not busy else 0.05)


def simulator_alive(pid: int) -> bool:
    """A call without an end line is still running only if its process is (a timed-out call is
    SIGKILLed by the operator and never writes its end line)."""
    try:
        return b"tart-simulator" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# --- the client -----------------------------------------------------------------------------


def request_bytes(method: str, path: str, port: int) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
    if method == "POST":
        head += "Content-Length: 0\r\n"
    return (head + "\r\n").encode()


class RawConnection:
    """Keep-alive HTTP/1.1 over a socket: pre-built requests, Content-Length framed responses."""

    def __init__(self, addr: tuple[str, int], timeout: float) -> None:
        self.addr = addr
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def connect(self) -> None:
        self.close()
        sock = socket.create_connection(self.addr, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buf = sock, b""

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def abort(self) -> None:
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def request(self, data: bytes, method: str, path: str) -> tuple[int, bytes]:
        if self.sock is None:
            self.connect()
        sock = self.sock
        assert sock is not None
        sock.sendall(data)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before a response")
            buf += chunk
        head = buf[:end].lower()
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        length = 0
        if at >= 0:
            eol = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:eol if eol >= 0 else len(head)])
        stop = end + 4 + length
        while len(buf) < stop:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside a response")
            buf += chunk
        body = buf[end + 4:stop]
        self.buf = buf[stop:]
        if b"\r\nconnection: close" in head:
            self.close()
        return status, body


class StdlibConnection:
    """The same interface over ``http.client`` (``--client http.client``)."""

    def __init__(self, addr: tuple[str, int], timeout: float) -> None:
        self.addr = addr
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        self.close()
        self.conn = http.client.HTTPConnection(*self.addr, timeout=self.timeout)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def abort(self) -> None:
        conn = self.conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def request(self, data: bytes, method: str, path: str) -> tuple[int, bytes]:
        if self.conn is None:
            self.connect()
        assert self.conn is not None
        self.conn.request(method, path)
        response = self.conn.getresponse()
        body = response.read()
        if response.will_close:
            self.close()
        return response.status, body


Connection = RawConnection | StdlibConnection
CLIENTS: dict[str, type[Connection]] = {"raw": RawConnection, "http.client": StdlibConnection}


def plan_for(scenario: str, index: int) -> list[tuple[str, str]]:
    """The cycle of requests client ``index`` sends in ``scenario``."""
    vm = LOCAL_VMS[index % len(LOCAL_VMS)]
    if scenario in ("health", "bare"):
        return [("GET", "/health")]
    if scenario == "vms":
        return [("GET", "/vms")]
    if scenario == "vm":
        return [("GET", f"/vms/{LOCAL_VMS[(index + k) % len(LOCAL_VMS)]}")
                for k in range(len(LOCAL_VMS))]
    if scenario == "mixed":  # 18 reads and 2 writes: each client starts and stops "its" VM
        reads = [("GET", "/vms"), ("GET", f"/vms/{vm}"), ("GET", "/health")] * 6
        return (reads[:9] + [("POST", f"/vms/{vm}/start")]
                + reads[9:] + [("POST", f"/vms/{vm}/stop")])
    if scenario == "long":
        return [("GET", f"/vms/{LOCAL_VMS[(index + k) % len(LOCAL_VMS)]}") if k % 2 == 0
                else ("GET", "/health") for k in range(2 * len(LOCAL_VMS))]
    raise ValueError(scenario)


@dataclass
class Control:
    start: float = 0.0
    deadline: float = float("inf")
    duration: float = 0.0
    abort: threading.Event = field(default_factory=threading.Event)


class Worker(threading.Thread):
    """One client: one keep-alive connection, one request at a time, latencies recorded."""

    def __init__(self, index: int, server: Server, plan: list[tuple[str, str]], client: str,
                 barrier: threading.Barrier, control: Control, *, requests: int | None = None,
                 reconnect_every: int = 0, timeout: float = 60.0) -> None:
        super().__init__(name=f"client-{index}", daemon=True)
        self.plan = [(m, p, request_bytes(m, p, server.port)) for m, p in plan]
        self.conn: Connection = CLIENTS[client](server.addr, timeout)
        self.barrier = barrier
        self.control = control
        self.requests = requests
        self.reconnect_every = reconnect_every
        self.offset = index
        self.latencies: list[float] = []
        self.write_latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.last_done = 0.0
        self.in_flight = False
        self.warm_error: str | None = None
        self.health = request_bytes("GET", "/health", server.port)

    def run(self) -> None:
        try:
            self.conn.connect()
            # warm-up: the connection and its server thread exist before the clock starts
            self.conn.request(self.health, "GET", "/health")
        except (OSError, ValueError) as exc:
            self.warm_error = f"{type(exc).__name__}: {exc}"
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return
        if self.warm_error is not None:
            return
        self._loop()
        self.conn.close()

    def _loop(self) -> None:
        plan, n = self.plan, len(self.plan)
        i = self.offset % n
        done = 0
        latencies, statuses = self.latencies, self.statuses
        deadline, abort, limit = self.control.deadline, self.control.abort, self.requests
        reconnect = self.reconnect_every
        clock = time.perf_counter
        while not abort.is_set():
            if clock() >= deadline or (limit is not None and done >= limit):
                break
            method, path, data = plan[i]
            i = (i + 1) % n
            self.in_flight = True
            t0 = clock()
            try:
                status, _ = self.conn.request(data, method, path)
            except (OSError, ValueError) as exc:
                if abort.is_set():
                    break
                self.in_flight = False
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.conn.close()
                continue
            t1 = clock()
            self.in_flight = False
            self.last_done = t1
            if method == "GET":
                latencies.append(t1 - t0)
            else:
                self.write_latencies.append(t1 - t0)
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
            if reconnect and done % reconnect == 0:
                self.conn.close()


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, -(-int(q * 1000) * len(sorted_values) // 1000))  # nearest rank, ceil(q n)
    return sorted_values[min(len(sorted_values), rank) - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def drive(server: Server, scenario: str, clients: int, duration: float, client: str, *,
          drain_cap: float, requests: int | None = None, reconnect_every: int = 0,
          rss_samples: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    """Run one scenario against one server; returns throughput, latencies, Tart calls, CPU."""
    wait_tart_quiet(60)
    control = Control(duration=duration)

    def begin() -> None:
        control.start = time.perf_counter()
        control.deadline = control.start + duration

    barrier = threading.Barrier(clients, action=begin, timeout=120)
    per_client = None if requests is None else [requests // clients + (i < requests % clients)
                                                for i in range(clients)]
    workers = [Worker(i, server, plan_for(scenario, i), client, barrier, control,
                      requests=None if per_client is None else per_client[i],
                      reconnect_every=reconnect_every) for i in range(clients)]
    wall0 = time.time()
    for worker in workers:
        worker.start()
    # Wait for the barrier, then for the end of the run (plus a bounded drain of requests in
    # flight).
    while control.start == 0.0 and any(w.is_alive() for w in workers):
        time.sleep(0.01)
    started = control.start
    cpu_start, (srv_start, kids_start) = client_cpu(), cpu_seconds(server.pid)
    hard_stop = time.perf_counter() + duration + drain_cap
    last_sample = 0.0
    aborted_at = None
    abandoned = 0
    while any(w.is_alive() for w in workers):
        if time.perf_counter() >= hard_stop:
            aborted_at = time.perf_counter()
            abandoned = sum(1 for w in workers if w.in_flight)
            control.abort.set()
            for worker in workers:
                worker.conn.abort()
            break
        if rss_samples is not None and time.perf_counter() - last_sample >= 1.0:
            last_sample = time.perf_counter()
            value = rss_mib(server.pid)
            if value is not None:
                rss_samples.append((round(last_sample - started, 1), value))
        time.sleep(0.02)
    for worker in workers:
        worker.join(timeout=5)
    unfinished = sum(1 for w in workers if w.is_alive())
    served_all = sum(len(w.latencies) + len(w.write_latencies) for w in workers)
    # The run lasts until the last response, and at least its duration (or until abandoned).
    ended = max([w.last_done for w in workers] + [started])
    if aborted_at is not None:
        ended = aborted_at
    elif requests is None or served_all < requests:
        ended = max(ended, control.deadline)
    elapsed = max(ended - started, 1e-6)
    cpu1, (srv1, kids1) = client_cpu(), cpu_seconds(server.pid)
    wall1 = time.time()

    latencies = sorted(x for w in workers for x in w.latencies)
    writes = sorted(x for w in workers for x in w.write_latencies)
    everything = sorted(latencies + writes)
    statuses: dict[str, int] = {}
    for worker in workers:
        for status, count in worker.statuses.items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    errors = [e for w in workers for e in w.errors]
    errors += [w.warm_error for w in workers if w.warm_error]
    served = len(everything)
    # 409 (VM limit, OCI image) and 503 (per-VM write queue full) are the operator's deliberate
    # refusals under contention, not failures
    refused = sum(n for s, n in statuses.items() if s in ("409", "503"))
    bad = sum(n for s, n in statuses.items() if not (200 <= int(s) < 300 or s in ("409", "503")))
    result: dict[str, Any] = {
        "clients": clients,
        "requests": served,
        "seconds": round(elapsed, 3),
        "rps": round(served / elapsed, 1),
        "p50_ms": ms(percentile(everything, 0.50)),
        "p99_ms": ms(percentile(everything, 0.99)),
        "max_ms": ms(everything[-1] if everything else None),
        "statuses": statuses,
        "errors": len(errors) + bad,
        "refused": refused,
        "error_samples": sorted(set(errors))[:3],
        "abandoned_requests": abandoned,
        "unfinished_clients": unfinished,
        "client_cpu_pct": round(100 * (cpu1 - cpu_start) / elapsed, 1),
        "server_cpu_pct": round(100 * (srv1 - srv_start) / elapsed, 1),
        "tart_cpu_pct": round(100 * (kids1 - kids_start) / elapsed, 1),
        # CPU the server process spent per request (its own threads; Tart children excluded):
        # steadier than req/s on a busy machine, and what a faster hot path would lower
        # (None when the process clock, in 10 ms ticks, saw too little to divide)
        "server_cpu_us_per_request": (round(1e6 * (srv1 - srv_start) / served, 1)
                                      if served >= 100 and srv1 - srv_start >= 0.1 else None),
        "client_cpu_us_per_request": (round(1e6 * (cpu1 - cpu_start) / served, 1)
                                      if served >= 100 and cpu1 - cpu_start >= 0.1 else None),
    }
    if writes:
        result["reads"] = {"requests": len(latencies), "p50_ms": ms(percentile(latencies, 0.5)),
                           "p99_ms": ms(percentile(latencies, 0.99))}
        result["writes"] = {"requests": len(writes), "p50_ms": ms(percentile(writes, 0.5)),
                            "p99_ms": ms(percentile(writes, 0.99))}
    log(f"      {served} requests in {elapsed:.2f} s: {result['rps']} req/s, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, errors {result['errors']}")
    if server.call_log is not None:
        wait_tart_quiet(drain_cap, [server])
        calls = calls_between(server.call_log, wall0, wall1)
        spawned: dict[str, int] = {}
        for call in calls:
            spawned[call.command] = spawned.get(call.command, 0) + 1
        result["tart_spawns"] = spawned
        result["tart_spawns_total"] = sum(spawned.values())
        result["tart_list_spawns"] = spawned.get("list", 0)
        result["max_concurrent_tart_list"] = max_concurrent(calls, "list", time.time())
    return result


# --- control requests -----------------------------------------------------------------------


def call(server: Server, method: str, path: str, timeout: float = 60) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(*server.addr, timeout=timeout)
    try:
        conn.request(method, path, headers={"Content-Length": "0"} if method == "POST" else {})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(body)
    except ValueError:
        return response.status, body


def tart_call_cost(server: Server) -> dict[str, Any]:
    """Mean wall time of a Tart call as the operator sees it (its /metrics: spawn, interpreter
    start-up, TART_SIM_DELAY, work) beside the time the simulator itself ran (its call log)."""
    status, text = call(server, "GET", "/metrics")
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    if status == 200 and isinstance(text, bytes):
        for line in text.decode().splitlines():
            for suffix, into in (("_sum", sums), ("_count", counts)):
                prefix = f"vm_operator_tart_call_duration_seconds{suffix}{{command=\""
                if line.startswith(prefix):
                    command = line[len(prefix):line.index('"', len(prefix))]
                    command = "version" if command == "--version" else command
                    into[command] = float(line.rsplit(" ", 1)[1])
    inside: dict[str, list[float]] = {}
    for c in read_calls(server.call_log) if server.call_log else []:
        if c.end is not None and c.command != "run":
            inside.setdefault(c.command, []).append(c.end - c.start)
    result = {}
    for command in sorted(set(counts) | set(inside)):
        seen = sums.get(command, 0) / counts[command] if counts.get(command) else None
        own = inside.get(command)
        result[command] = {
            "calls": int(counts.get(command, 0)),
            "operator_mean_ms": None if seen is None else round(seen * 1000, 1),
            "simulator_mean_ms": round(1000 * sum(own) / len(own), 1) if own else None,
        }
    return result


def stop_all(server: Server) -> None:
    for vm in LOCAL_VMS:
        call(server, "POST", f"/vms/{vm}/stop?timeout=5")


def measure_start(server: Server, samples: int, tart_delay: float) -> dict[str, Any]:
    """How long after the simulated VM holds its lock (what `tart list` calls running) the
    POST /vms/{name}/start response arrives.

    The lock moment is ``startedAt`` from the simulator's own run record (``.tart-sim-run.json``
    in the VM's folder, written right after ``tart run`` takes the lock); the estimate
    "call-log start of `run` + TART_SIM_DELAY" is reported beside it.
    """
    assert server.tart_home is not None and server.call_log is not None
    rows: list[dict[str, Any]] = []
    stop_all(server)
    for k in range(samples):
        vm = LOCAL_VMS[k % len(LOCAL_VMS)]
        time.sleep(0.3)
        wait_tart_quiet(30)
        sent = time.time()
        status, _ = call(server, "POST", f"/vms/{vm}/start")
        answered = time.time()
        lock_at, source = None, "none"
        try:
            record = json.loads((server.tart_home / "vms" / vm / RUNTIME_FILE).read_text())
            lock_at, source = float(record["startedAt"]), "simulator run record (startedAt)"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        during = calls_between(server.call_log, sent - 1, answered)
        runs = [c for c in during if c.command == "run" and c.start >= sent]
        estimate = runs[0].start + tart_delay if runs else None
        if lock_at is None and estimate is not None:
            lock_at, source = estimate, "call-log start of run + TART_SIM_DELAY"
        rows.append({
            "vm": vm, "status": status,
            "post_ms": round((answered - sent) * 1000, 1),
            "after_running_ms": None if lock_at is None else round((answered - lock_at) * 1000, 1),
            "after_calllog_estimate_ms": (None if estimate is None
                                          else round((answered - estimate) * 1000, 1)),
            "lock_source": source,
            # the `tart list` calls of this start, as (start, end) in ms from the lock moment:
            # the simulator samples VM states near the end of a call
            "lists_ms_from_lock": [] if lock_at is None else [
                [round((c.start - lock_at) * 1000, 1),
                 None if c.end is None else round((c.end - lock_at) * 1000, 1)]
                for c in during if c.command == "list" and (c.end is None or c.end >= sent)],
        })
        call(server, "POST", f"/vms/{vm}/stop?timeout=5")
    after = [r["after_running_ms"] for r in rows
             if r["after_running_ms"] is not None and r["status"] in (200, 202)]
    return {
        "samples": rows,
        "median_ms": round(statistics.median(after), 1) if after else None,
        "max_ms": max(after) if after else None,
        "post_median_ms": round(statistics.median(r["post_ms"] for r in rows), 1) if rows else None,
        "lock_source": rows[0]["lock_source"] if rows else "none",
    }


# --- the run --------------------------------------------------------------------------------


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "system": platform.system(),
        "loadavg_at_start": loadavg(),
    }


def median_ratio(numerators: list[float], denominators: list[float]) -> float | None:
    ratios = [n / d for n, d in zip(numerators, denominators) if d]
    return round(statistics.median(ratios), 3) if ratios else None


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round's figures, with every round's req/s kept."""
    ordered = sorted(rounds, key=lambda r: r["rps"])
    merged = dict(ordered[len(ordered) // 2])
    merged["rps"] = round(statistics.median(r["rps"] for r in rounds), 1)
    merged["rounds_rps"] = [r["rps"] for r in rounds]
    merged["errors"] = sum(r["errors"] for r in rounds)
    merged["requests"] = sum(r["requests"] for r in rounds)
    if "tart_spawns" in rounds[0]:
        spawns: dict[str, int] = {}
        for r in rounds:
            for k, v in r["tart_spawns"].items():
                spawns[k] = spawns.get(k, 0) + v
        merged["tart_spawns"] = spawns
        merged["tart_spawns_total"] = sum(spawns.values())
        merged["tart_list_spawns"] = spawns.get("list", 0)
        merged["max_concurrent_tart_list"] = max(r["max_concurrent_tart_list"] for r in rounds)
    return merged


def run(args: argparse.Namespace) -> dict[str, Any]:
    tart_delay = args.tart_delay / 1000
    fleet = Fleet(args.keep)
    report: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "settings": {
            "tart_delay_ms": args.tart_delay, "duration_s": args.duration,
            "naive_duration_s": args.naive_duration, "rounds": args.rounds,
            "long_max_seconds": args.long_max_seconds,
            "clients": args.clients, "naive_clients": args.naive_clients,
            "long_requests": args.long, "long_clients": args.long_clients,
            "start_samples": args.start_samples, "cache_ttl_s": args.cache_ttl,
            "client": args.client,
            "operator_logging": ("access log on" if args.access_log else "--no-access-log")
            + "; stdout drained and discarded after the listening line",
            "quick": args.quick,
            "operator_src": str(OPERATOR_SRC),
        },
    }
    try:
        log(f"starting servers in {fleet.root}")
        bare = fleet.start_bare()
        op = fleet.start_operator("operator", args.cache_ttl, tart_delay, args.access_log)
        naive = fleet.start_operator("naive", 0, tart_delay, args.access_log)
        QUIET[:] = [op, naive]
        time.sleep(0.5)  # let the background `tart --version` finish
        memory: dict[str, Any] = {
            "operator_idle_mib": rss_mib(op.pid),
            "naive_idle_mib": rss_mib(naive.pid),
            "bare_idle_mib": rss_mib(bare.pid),
        }
        report["servers"] = {
            "operator": {"pid": op.pid, "argv": op.argv},
            "naive": {"pid": naive.pid, "argv": naive.argv},
            "bare": {"pid": bare.pid},
        }
        drain = args.drain
        bare_results: dict[str, Any] = {}
        results: dict[str, dict[str, Any]] = {s: {} for s in SCENARIOS}
        naive_results: dict[str, dict[str, Any]] = {s: {} for s in SCENARIOS}
        ratios: dict[str, dict[str, Any]] = {s: {} for s in SCENARIOS}
        for clients in args.clients:
            rounds: dict[str, list[dict[str, Any]]] = {
                k: [] for k in ("bare", "health", "vms", "vm")}
            for r in range(args.rounds):
                for scenario in ("bare", "health", "vms", "vm"):
                    server = bare if scenario == "bare" else op
                    log(f"{clients:>3} clients, round {r + 1}/{args.rounds}: {LABELS[scenario]}")
                    rounds[scenario].append(drive(server, scenario, clients, args.duration,
                                                  args.client, drain_cap=drain))
            bare_results[str(clients)] = merge_rounds(rounds["bare"])
            bare_rps = [x["rps"] for x in rounds["bare"]]
            for scenario in ("health", "vms", "vm"):
                results[scenario][str(clients)] = merge_rounds(rounds[scenario])
                ratios[scenario][str(clients)] = median_ratio(
                    [x["rps"] for x in rounds[scenario]], bare_rps)
            log(f"{clients:>3} clients: {LABELS['mixed']}")
            results["mixed"][str(clients)] = drive(op, "mixed", clients, args.duration, args.client,
                                                   drain_cap=drain)
            stop_all(op)
            ratios["mixed"][str(clients)] = round(
                results["mixed"][str(clients)]["rps"] / bare_results[str(clients)]["rps"], 3)
        naive_drain = args.naive_drain
        for clients in args.naive_clients:
            for scenario in SCENARIOS:
                log(f"{clients:>3} clients, per-request spawn (--cache-ttl 0): {LABELS[scenario]}")
                naive_results[scenario][str(clients)] = drive(
                    naive, scenario, clients, args.naive_duration, args.client,
                    drain_cap=naive_drain)
                if scenario == "mixed":
                    stop_all(naive)
        for scenario in SCENARIOS:
            for clients in args.clients:
                mine = results[scenario][str(clients)]
                ref = naive_results[scenario].get(str(clients))
                mine["vs_bare"] = ratios[scenario][str(clients)]
                mine["vs_naive"] = (round(mine["rps"] / ref["rps"], 1)
                                    if ref and ref["rps"] else None)
        log("POST start latency after Tart reports the VM running")
        start = measure_start(op, args.start_samples, tart_delay)
        memory["operator_after_run_mib"] = rss_mib(op.pid)
        memory["naive_after_run_mib"] = rss_mib(naive.pid)
        memory["bare_after_run_mib"] = rss_mib(bare.pid)
        log(f"long run: {args.long} requests, {args.long_clients} clients")
        samples: list[tuple[float, float]] = []
        before = rss_mib(op.pid)
        long_result = drive(op, "long", args.long_clients, args.long_max_seconds, args.client,
                            drain_cap=drain, requests=args.long,
                            reconnect_every=args.reconnect_every, rss_samples=samples)
        time.sleep(0.5)
        after = rss_mib(op.pid)
        memory.update({
            "long_requests": long_result["requests"],
            "long_before_mib": before,
            "long_after_mib": after,
            "long_peak_mib": max([s[1] for s in samples] + [after or 0, before or 0]),
            "long_growth_mib": (None if before is None or after is None
                                else round(after - before, 2)),
            "long_samples": samples,
        })
        report["lifecycle"] = measure_lifecycle(fleet, args, tart_delay)
        report["events"] = measure_events(fleet, args, tart_delay)
        all_calls = read_calls(op.call_log) if op.call_log else []
        report.update({
            "bare": bare_results,
            "operator": results,
            "naive": naive_results,
            "long": long_result,
            "memory": memory,
            "start": start,
            "tart_list_max_concurrent_whole_run": max_concurrent(all_calls, "list", time.time()),
            "tart_calls_whole_run": len(all_calls),
        })
        report["machine"]["loadavg_at_end"] = loadavg()
        report["tart_call_cost"] = tart_call_cost(op)
        report["targets"] = evaluate(report)
        return report
    finally:
        log("stopping everything this run started")
        fleet.close()


def measure_lifecycle(fleet: Fleet, args: argparse.Namespace, tart_delay: float) -> dict[str, Any]:
    """Creates on an operator of their own (its own Tart home and logs): the operator's own cost
    per create from a cached image, and how soon a pull's percentages show (bench_lifecycle)."""
    progress_log = fleet.root / "lifecycle-progress.log"
    log(f"lifecycle: {args.create_samples} creates from a cached image, one create that pulls")
    server = fleet.start_operator("lifecycle", args.cache_ttl, tart_delay, args.access_log,
                                  bench_lifecycle.lifecycle_env(progress_log, args.pull_seconds))
    assert server.call_log is not None
    return bench_lifecycle.measure(server.port, server.call_log, progress_log,
                                   args.create_samples)


def measure_events(fleet: Fleet, args: argparse.Namespace, tart_delay: float) -> dict[str, Any]:
    """Watchers on an operator of their own: the Tart calls of 1 and of 100 SSE watchers, its
    RSS with 100, and how soon an outside `tart run` / `tart stop` reaches them
    (bench_events)."""
    log(f"events: 1 then {bench_events.WATCHERS} watchers over {args.events_window:g} s each, "
        f"{args.events_samples} outside run/stop")
    server = fleet.start_operator("events", args.cache_ttl, tart_delay, args.access_log)
    assert server.call_log is not None and server.tart_home is not None
    return bench_events.measure(server.port, server.pid, server.call_log, server.tart_home,
                                SIMULATOR, fleet.env(), args.events_window, args.events_samples)


def evaluate(report: dict[str, Any]) -> list[dict[str, Any]]:
    """PASS/MISS for each target of the issue, from this run's figures."""
    t = TARGETS
    op, naive = report["operator"], report["naive"]
    targets = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        targets.append({"target": name, "measured": measured,
                        "result": "n/a" if ok is None else ("PASS" if ok else "MISS")})

    sixteen = "16"
    if sixteen in op["health"]:
        ratio = op["health"][sixteen]["vs_bare"]
        add(f"GET /health, 16 clients >= {t['health_vs_bare']}x bare "
            "(median of alternating rounds)",
            f"{ratio}x", ratio is not None and ratio >= t["health_vs_bare"])
        for scenario in ("vms", "vm"):
            mine = op[scenario][sixteen]
            add(f"{LABELS[scenario]}, 16 clients >= {t['reads_vs_bare']}x bare",
                f"{mine['vs_bare']}x",
                mine["vs_bare"] is not None and mine["vs_bare"] >= t["reads_vs_bare"])
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
    mem = report["memory"]
    idle = mem["operator_idle_mib"]
    add(f"idle RSS <= {t['idle_rss_mib']:g} MiB", f"{idle} MiB",
        idle is not None and idle <= t["idle_rss_mib"])
    growth = mem["long_growth_mib"]
    add(f"RSS growth <= {t['rss_growth_mib']:g} MiB over {mem['long_requests']} requests",
        f"{growth} MiB", growth is not None and growth <= t["rss_growth_mib"])
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
    events = report["events"]
    one, many = events["tart_list_per_s_1_watcher"], events["tart_list_per_s_100_watchers"]
    slack = 1 / events["window_s"]  # one call more in the window: where the window cuts
    add(f"{events['watchers']} SSE watchers cost the Tart calls of one",
        f"{many} vs {one} tart list/s", events["watchers"] == bench_events.WATCHERS
        and one > 0 and many <= one + slack)
    median = events["outside_median_ms"]
    add(f"an outside `tart run`/`tart stop` reaches the watchers within "
        f"{t['outside_event_ms']:g} ms (median)",
        f"median {median} ms, max {events['outside_max_ms']} ms, "
        f"{events['outside_lost']} of {events['outside_samples']} lost",
        median is not None and events["outside_lost"] == 0 and median <= t["outside_event_ms"])
    rss = events["rss_100_watchers_mib"]
    add(f"RSS with {bench_events.WATCHERS} watchers <= {t['watchers_rss_mib']:g} MiB",
        f"{rss} MiB (idle {events['rss_idle_mib']} MiB, after the changes "
        f"{events['rss_100_watchers_after_changes_mib']} MiB)",
        rss is not None and rss <= t["watchers_rss_mib"])
    return targets


# --- output ---------------------------------------------------------------------------------


def fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}{suffix}" if abs(value) >= 10 else f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def spawns_text(result: dict[str, Any]) -> str:
    spawns = result.get("tart_spawns")
    if spawns is None:
        return "–"
    if not spawns:
        return "0"
    return ", ".join(f"{k} {v}" for k, v in sorted(spawns.items(), key=lambda kv: -kv[1]))


def refused_text(result: dict[str, Any]) -> str:
    extra = []
    if result.get("refused"):
        extra.append(f"{result['refused']} refused")
    if result.get("abandoned_requests"):
        extra.append(f"{result['abandoned_requests']} abandoned")
    return f" ({', '.join(extra)})" if extra else ""


def markdown(report: dict[str, Any]) -> str:
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
        ("| scenario | clients | req/s | p50 ms | p99 ms | × bare | × per-request spawn "
         "| server CPU µs/req | Tart spawned | max `tart list` at once | errors (refused) "
         "| CPU % client/server/Tart |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]

    def cpu(r: dict[str, Any]) -> str:
        return f"{r['client_cpu_pct']:.0f}/{r['server_cpu_pct']:.0f}/{r['tart_cpu_pct']:.0f}%"

    def row(label: str, r: dict[str, Any], vs_bare: Any, vs_naive: Any) -> str:
        return (f"| {label} | {r['clients']} | {fmt(r['rps'])} | {fmt(r['p50_ms'])} "
                f"| {fmt(r['p99_ms'])} | {fmt(vs_bare, '×')} | {fmt(vs_naive, '×')} "
                f"| {fmt(r['server_cpu_us_per_request'])} | {spawns_text(r)} "
                f"| {r.get('max_concurrent_tart_list', '–')} | {r['errors']}{refused_text(r)} "
                f"| {cpu(r)} |")

    clients = list(report["bare"])
    for c in clients:
        out.append(row(LABELS["bare"], report["bare"][c], 1.0, None))
    for scenario in SCENARIOS:
        for c in clients:
            r = report["operator"][scenario][c]
            out.append(row(LABELS[scenario], r, r.get("vs_bare"), r.get("vs_naive")))
    out += [
        "",
        ("× bare: median over the rounds of (req/s ÷ the bare server's req/s in the same round) "
         "at the same client count. × per-request spawn: req/s ÷ the `--cache-ttl 0` "
         "operator's. Server CPU µs/req: CPU time of the server process (all its threads, not "
         "its Tart children) per request. Tart spawned: calls logged in TART_SIM_CALL_LOG during "
         "the scenario, warm-up included. Max `tart list` at once: from the start/end times of "
         "the call log (the simulator's run time, after its interpreter started). Refused: 409 "
         "(VM limit) and 503 (per-VM write queue full) answers, the operator's deliberate "
         "back-pressure; abandoned: requests still in flight when the drain cap ran out."),
        "",
        "Reference: the same operator with `--cache-ttl 0` (Tart spawned for every request):",
        "",
        ("| scenario | clients | req/s | p50 ms | p99 ms | × bare | server CPU µs/req "
         "| Tart spawned | max `tart list` at once | errors (refused) "
         "| CPU % client/server/Tart |"),
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for scenario in SCENARIOS:
        for c, r in report["naive"][scenario].items():
            bare_rps = report["bare"].get(c, {}).get("rps")
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
        "### Watching (GET /events)",
        "",
        *events_text(report["events"]),
        "",
        "### Targets",
        "",
        "| target | measured | result |",
        "|---|---|---|",
    ]
    out += [f"| {t['target']} | {t['measured']} | **{t['result']}** |" for t in report["targets"]]
    return "\n".join(out) + "\n"


def events_text(events: dict[str, Any]) -> list[str]:
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


def lifecycle_text(lifecycle: dict[str, Any]) -> list[str]:
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Benchmark vm-operator on the Tart simulator.")
    p.add_argument("--quick", action="store_true",
                   help="smoke-test settings: 0.4 s scenarios, 1 round, --long 2000, "
                   "2 start samples")
    p.add_argument("--duration", type=float, help="seconds per scenario (default 3; quick 0.4)")
    p.add_argument("--naive-duration", type=float,
                   help="seconds per scenario of the --cache-ttl 0 reference "
                   "(default = --duration)")
    p.add_argument("--naive-drain", type=float,
                   help="seconds the --cache-ttl 0 reference may take to finish in-flight requests "
                   "past its duration before they are abandoned (default 30; quick 3)")
    p.add_argument("--rounds", type=int,
                   help="alternating bare/operator rounds per client count (default 3; quick 1)")
    p.add_argument("--clients", default="1,16,64", help="client counts (default 1,16,64)")
    p.add_argument("--drain", type=float,
                   help="seconds the cached operator may take to finish in-flight requests (slow "
                   "writes of the mixed scenario) past a scenario's duration (default 10; quick 2)")
    p.add_argument("--naive-clients",
                   help="client counts of the --cache-ttl 0 reference "
                   "(default = --clients; quick 1,16)")
    p.add_argument("--long", type=int, help="requests of the long run (default 100000; quick 2000)")
    p.add_argument("--long-clients", type=int, default=16,
                   help="clients of the long run (default 16)")
    p.add_argument("--long-max-seconds", type=float,
                   help="stop the long run after this long even if --long requests are not done "
                   "(default 300; quick 10)")
    p.add_argument("--reconnect-every", type=int, default=1000,
                   help="long run: each client opens a new connection after this many "
                   "requests (default 1000)")
    p.add_argument("--start-samples", type=int, help="POST start measurements (default 7; quick 2)")
    p.add_argument("--create-samples", type=int,
                   help="creates from a cached image measured (default 10; quick 3)")
    p.add_argument("--events-window", type=float,
                   help="seconds over which the Tart calls of 1 and of 100 watchers are counted "
                   "(default 5; quick 2)")
    p.add_argument("--events-samples", type=int,
                   help="outside `tart run` + `tart stop` pairs timed to their events "
                   "(default 5; quick 1)")
    p.add_argument("--pull-seconds", type=float,
                   help="how long the simulated pull of the progress measure takes "
                   "(TART_SIM_PULL_SECONDS; default 5; quick 2)")
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
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {"duration": 0.4 if quick else 3.0, "rounds": 1 if quick else 3,
                "long": 2000 if quick else 100_000, "start_samples": 2 if quick else 7,
                "naive_drain": 3.0 if quick else 30.0, "long_max_seconds": 10.0 if quick else 300.0,
                "drain": 2.0 if quick else 10.0, "create_samples": 3 if quick else 10,
                "pull_seconds": 2.0 if quick else 5.0,
                "events_window": 2.0 if quick else 5.0, "events_samples": 1 if quick else 5}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
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
        return serve_bare()
    global OPERATOR_SRC
    OPERATOR_SRC = Path(args.operator_src).resolve()
    if not (OPERATOR_SRC / "vm_operator" / "__main__.py").is_file():
        print(f"bench: no vm_operator package in {OPERATOR_SRC}", file=sys.stderr)
        return 2
    if not SIMULATOR.is_file():
        print(f"bench: no simulator at {SIMULATOR}", file=sys.stderr)
        return 2

    def interrupt(signum: int, frame: Any) -> None:
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
    text = json.dumps(report, indent=2)
    if args.json_file:
        Path(args.json_file).write_text(text + "\n")
    print(text if args.json else markdown(report), flush=True)
    if args.strict and any(t["result"] == "MISS" for t in report["targets"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
