"""What every part of the benchmark shares: where things are, its log, a look at a process
(/proc), the machine, and one HTTP request to a server under test."""

from __future__ import annotations

import http.client
import importlib
import json
import os
import platform
import resource
import ssl
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmark.records import Machine

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench.py"  # the entry point (also the bare server: --serve-bare)
SIMULATOR = REPO / "bin" / "tart-simulator"  # runs vm_operator.simulator
HOST = "127.0.0.1"
LOCAL_VMS = ("macos-sequoia-base", "macos-sonoma-xcode", "ubuntu-runner")  # the demo seed's
RUNTIME_FILE = ".tart-sim-run.json"  # the simulator's record of a run, written right after the lock
CLK_TCK = os.sysconf("SC_CLK_TCK")


def repo_module(name: str) -> ModuleType:
    """A module of this checkout's package, imported when first asked for (the benchmark
    imports none at start: the operators it measures may run another tree's, --operator-src)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(name)


class Interrupted(Exception):
    """SIGTERM or SIGHUP: unwind like Ctrl-C so that everything started gets stopped."""


_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def request(port: int, method: str, path: str, body: object = None,
            timeout: float = 60, tls: ssl.SSLContext | None = None) -> tuple[int, Any]:
    """One request on a connection of its own (HTTPS with ``tls``): the status and the body,
    parsed as JSON when it is JSON (else the bytes). A POST without ``body`` sends
    ``Content-Length: 0``."""
    conn = (http.client.HTTPConnection(HOST, port, timeout=timeout) if tls is None
            else http.client.HTTPSConnection(HOST, port, timeout=timeout, context=tls))
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = ({"Content-Type": "application/json"} if data is not None
                   else {"Content-Length": "0"} if method == "POST" else {})
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw


def sshd_fixture() -> ModuleType | str:
    """tests/sshd_env.py (imported only when the figures over SSH are asked for), or why those
    figures are skipped: it cannot be imported, or cannot run a throw-away sshd here."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    try:
        sshd_env = importlib.import_module("sshd_env")
    except ImportError as exc:
        return f"tests/sshd_env.py cannot be imported: {exc}"
    reason: str | None = sshd_env.unavailable_reason()
    return reason if reason else sshd_env


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


def rss_mib(pid: int, digits: int = 2) -> float | None:
    kib = read_rss_kib(pid)
    return None if kib is None else round(kib / 1024, digits)


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


def process_running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent (the operator's reaper) to collect it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# --- the machine ----------------------------------------------------------------------------


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine() -> Machine:
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
