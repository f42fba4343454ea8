"""The servers under test, each a process of its own on 127.0.0.1: the operator on the Tart
simulator (each with its own throw-away ``TART_HOME`` and call log), the same operator over SSH,
and the bare reference; and stopping all of them, Ctrl-C included."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.calllog import read_calls, simulator_alive
from benchmark.common import BENCH, HOST, SIMULATOR, log, process_running

# the standard library's parts no server imports, left out of the compile (regex on a path)
UNUSED = r"/(test|tests|idlelib|tkinter|turtledemo|lib2to3|ensurepip|site-packages)/"


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
    client_tls: ssl.SSLContext | None = None  # served over HTTPS: the clients' context

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def addr(self) -> tuple[str, int]:
        return HOST, self.port


class Servers:
    """Every server this run started, so that ``close`` can stop all of it. ``operator_src``:
    the directory whose ``vm_operator`` package the operators run (``--operator-src``);
    ``quiet``: the operators whose leftover Tart calls a measurement waits for."""

    def __init__(self, keep: bool, operator_src: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="vm-operator-bench-"))
        self.keep = keep
        self.operator_src = operator_src
        self.servers: list[Server] = []
        self.quiet: list[Server] = []
        self.pycache = os.environ.get("PYTHONPYCACHEPREFIX") or str(self.root / "pycache")
        self._compile()

    def _compile(self) -> None:
        """Compile what the servers import into this run's bytecode directory before any
        starts: a server that compiled (and wrote) the standard library itself at start-up
        would keep megabytes more resident than one that reads it compiled."""
        stdlib = sysconfig.get_paths()["stdlib"]
        log(f"compiling the standard library and the operator into {self.pycache}")
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "-x", UNUSED,
                        stdlib, str(self.operator_src / "vm_operator"),
                        str(self.operator_src / "scripts")],
                       env=self.env(), stdout=subprocess.DEVNULL, check=True, timeout=600)

    def env(self) -> dict[str, str]:
        """The environment of the servers: the venv's python3 first, no stray settings."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VM_OPERATOR_", "TART_"))}
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        inherited = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(self.operator_src) + (os.pathsep + inherited if inherited else "")
        # Bytecode goes to this run's own directory (the test suite's when it runs the bench),
        # never into the checkout: a simulator that compiled its modules on every call
        # (PYTHONDONTWRITEBYTECODE) spent twice the CPU of one reading them compiled, taken
        # from the measured servers on a small machine (a real Tart is a compiled program).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = self.pycache
        return env

    def _spawn(self, kind: str, argv: list[str], env: dict[str, str], home: Path,
               **extra: Any) -> Server:
        stderr_path = home / "stderr.log"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err, cwd=self.operator_src, env=env, start_new_session=True)
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

    def certificate(self) -> tuple[Path, Path]:
        """The self-signed certificate and key both TLS servers use, made once by the
        operator's own ``tls init`` (the openssl command; names 127.0.0.1 among others)."""
        folder = self.root / "tls"
        cert, key = folder / "cert.pem", folder / "key.pem"
        if not cert.is_file():
            subprocess.run([sys.executable, "-m", "vm_operator", "tls", "init", "--dir",
                            str(folder)], env=self.env(), cwd=self.operator_src, check=True,
                           stdout=subprocess.DEVNULL, timeout=60)
        return cert, key

    def client_context(self) -> ssl.SSLContext:
        """What the load client verifies the TLS servers with: their certificate."""
        return ssl.create_default_context(cafile=str(self.certificate()[0]))

    def start_bare(self, tls: bool = False) -> Server:
        kind = "bare-tls" if tls else "bare"
        home = self.root / kind
        home.mkdir()
        argv = [sys.executable, str(BENCH), "--serve-bare"]
        if tls:
            cert, key = self.certificate()
            argv += ["--bare-tls-cert", str(cert), "--bare-tls-key", str(key)]
        server = self._spawn(kind, argv, self.env(), home)
        server.client_tls = self.client_context() if tls else None
        return server

    def start_operator(self, kind: str, cache_ttl: float, tart_delay: float,
                       access_log: bool, extra_env: dict[str, str] | None = None,
                       prepare: Callable[[dict[str, str]], None] | None = None,
                       tls: bool = False) -> Server:
        home = self.root / kind
        tart_home = home / "tart"
        call_log = home / "tart-calls.log"
        home.mkdir()
        env = self.env()
        env.update({"TART_HOME": str(tart_home), "TART_SIM_SEED": "demo"})
        # Seed the demo VMs before the operator starts, outside the call log and the delay.
        subprocess.run([str(SIMULATOR), "list", "--format", "json"], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=30)
        if prepare is not None:  # e.g. more VMs, also outside the call log
            prepare(env)
        env.update({"TART_SIM_DELAY": f"{tart_delay:g}", "TART_SIM_CALL_LOG": str(call_log)})
        env.update(extra_env or {})
        argv = [sys.executable, "-m", "vm_operator", "--host", HOST, "--port", "0",
                "--tart", str(SIMULATOR), "--state-dir", str(home / "state"),
                "--cache-ttl", f"{cache_ttl:g}"]
        if not access_log:
            argv.append("--no-access-log")
        if tls:
            cert, key = self.certificate()
            argv += ["--tls-cert", str(cert), "--tls-key", str(key)]
        server = self._spawn(kind, argv, env, home, call_log=call_log, tart_home=tart_home)
        server.argv = argv
        server.client_tls = self.client_context() if tls else None
        return server

    def start_ssh_operator(self, kind: str, cache_ttl: float, settings: dict[str, str]) -> Server:
        """An operator whose Tart is reached over SSH (``settings``: its VM_OPERATOR_* SSH
        variables); Tart's name on that host is its own ``tart``."""
        home = self.root / kind
        home.mkdir()
        env = {**self.env(), **settings}
        argv = [sys.executable, "-m", "vm_operator", "--host", HOST, "--port", "0",
                "--state-dir", str(home / "state"), "--cache-ttl", f"{cache_ttl:g}",
                "--no-access-log"]
        server = self._spawn(kind, argv, env, home)
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


def wait_tart_quiet(timeout: float, servers: list[Server]) -> None:
    """Let Tart calls left over from earlier scenarios end (`run` excepted), on ``servers``:
    an abandoned request of the per-request-spawn reference keeps spawning Tart after its
    client is gone, and would load the CPU under the next measurement."""
    deadline = time.monotonic() + timeout
    logs = [s.call_log for s in servers if s.call_log is not None]
    quiet_checks = 0
    while logs and quiet_checks < 2 and time.monotonic() < deadline:  # quiet twice, 0.2 s apart
        busy = any(c.end is None and c.command != "run" and simulator_alive(c.pid)
                   for log_path in logs for c in read_calls(log_path))
        quiet_checks = 0 if busy else quiet_checks + 1
        time.sleep(0.2 if not busy else 0.05)
