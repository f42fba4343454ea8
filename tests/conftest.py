"""Shared fixtures: a REAL vm-operator process, spoken to over loopback HTTP, driving the Tart
simulator (vm_operator/simulator/, through bin/tart-simulator) as a real subprocess in a
throw-away TART_HOME.

Fixture API (kept small on purpose):

Constants (import them: ``from conftest import SIMULATOR, Operator``)
    REPO_ROOT, SIMULATOR          paths of the checkout and of bin/tart-simulator
    OCI_NAME, LOCAL_VMS, MACOS_VMS the VMs that TART_SIM_SEED=demo creates
    OCI_PATH                      OCI_NAME as one path segment (percent-encoded)
    VM_KEYS                       the keys of a VM in GET /vms
The shared helpers (wait_for, free_port, processes_with_tart_home, kill_tart_processes, the
client's runners) live in tests/support.py: import them from there.

Fixtures
    repo_root                      REPO_ROOT
    operator_factory(env=None, args=None, seed=True, *, tart_home=None, state_dir=None,
                     default_state_dir=False)
        starts ``python -m vm_operator --port 0 --host 127.0.0.1 --tart SIMULATOR --state-dir DIR
        *args`` (later flags win, so ``args=["--tart", "/nonexistent"]`` works) and returns an
        ``Operator`` once it printed its ``{"event":"listening",...}`` line. ``env`` adds to the
        server's environment (a value of None removes a key); TART_HOME, TART_SIM_CALL_LOG and
        (seed=True) TART_SIM_SEED=demo are set for it. Pass ``tart_home=``/``state_dir=`` of an
        earlier Operator to restart "the same" operator; ``default_state_dir=True`` passes no
        --state-dir (the operator picks its default, from XDG_STATE_HOME in ``env``).
    operator                       operator_factory() with the defaults (seeded demo VMs)

Operator
    .url .port .pid .proc .tart_home .state_dir .call_log .stdout_path .stderr_path
    .guest_port                    where the simulated guests listen (TART_SIM_GUEST_PORT) and the
                                   operator probes for readiness (VM_OPERATOR_READY_PORT); the
                                   guests' addresses are loopback ones (the simulator's default)
    .request(method, path, headers=None, body=None, timeout=30) -> (status, headers, body_bytes)
        one fresh HTTP/1.1 connection per call; ``headers`` is case-insensitive (HTTPMessage)
    .json(method, path, headers=None, body=None, timeout=30) -> (status, parsed body or None)
    .ok(method, path, status=200, body=None, headers=None, timeout=30) -> parsed JSON or None
        assert the status (and a JSON content type when there is a body); a dict or list body
        is sent as JSON
    .problem(method, path, status, slug, body=None, headers=None, timeout=30) -> problem document
        assert an RFC 9457 document of this status whose type is exactly /problems/SLUG
    .detail(name) -> GET /vms/NAME's document (asserting a 200)
    .start_vm(name, query="") / .stop_vm(name) -> the VM's document, asserting it changed
    .tart_state(name) -> the VM's state as Tart itself says, asked outside the API
    .guest_exits(name, code)       the simulator's knob: the guest ends, ``tart run`` exits CODE
    .running_again(name, old_pid, timeout=20) -> detail, once a run other than OLD_PID runs it
    .stop(sig=SIGTERM, timeout=10) -> (exit code, seconds from the signal to the exit)
    .tart(*args, env=None, timeout=10) -> CompletedProcess[str]
        the simulator run directly on the same TART_HOME, "outside" the API: it is not written
        to the call log and does not inherit the server's fault knobs (pass them in ``env``)
    .spawn_run(name, *flags, env=None) -> Popen
        ``tart run NAME --no-graphics FLAGS`` in the background, outside the API (own session)
    .calls(command=None) -> list[TartCall]   the server's Tart calls, from TART_SIM_CALL_LOG
        TartCall(pid, started, argv, finished) with .command ("list", "run", "--version", ...)
    .log_records() -> list[dict]             the JSON lines the server printed on stdout

Teardown kills the server, every ``spawn_run`` process, and then every process that still
carries one of the test's TART_HOMEs in its environment (simulated VMs the server launched,
hung Tart calls), so nothing leaks from one test into the next.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from support import (
    REPO_ROOT,
    free_port,
    http_request,
    kill_tart_processes,
    wait_for,
)

SIMULATOR = REPO_ROOT / "bin" / "tart-simulator"
OCI_NAME = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
LOCAL_VMS = ("macos-sequoia-base", "macos-sonoma-xcode", "ubuntu-runner")
MACOS_VMS = ("macos-sequoia-base", "macos-sonoma-xcode")
OCI_PATH = quote(OCI_NAME, safe="")  # the OCI image's name as one path segment
# the keys of a VM in GET /vms (a VM's detail has more)
VM_KEYS = {"name", "source", "state", "status", "running", "disk_gb", "size_gb", "accessed"}

if str(REPO_ROOT) not in sys.path:  # so tests can import vm_operator (e.g. api.ROUTES)
    sys.path.insert(0, str(REPO_ROOT))

def _clean_env() -> dict[str, str]:
    """The test runner's environment without anything that would steer Tart or the operator.

    The simulator's ``#!/usr/bin/env python3`` resolves to the interpreter running the tests:
    a version-manager shim (pyenv) on PATH would cost a shell and ~0.2 s of CPU per Tart call.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TART_", "VM_OPERATOR_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    return env


@dataclass(frozen=True)
class TartCall:
    """One simulator invocation from TART_SIM_CALL_LOG."""

    pid: int
    started: float
    argv: tuple[str, ...]
    finished: bool

    @property
    def command(self) -> str:
        """The subcommand, as the simulator names it (``--version`` for the version call)."""
        for arg in self.argv:
            if not arg.startswith("-"):
                return arg
        return "--version" if "--version" in self.argv else ""


class Operator:
    """One running ``python -m vm_operator``; see the module docstring for the API."""

    def __init__(self, workdir: Path, *, env: dict[str, str | None] | None, args: list[str] | None,
                 seed: bool, tart_home: Path | None, state_dir: Path | None,
                 default_state_dir: bool = False) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.tart_home = Path(tart_home) if tart_home else workdir / "tart"
        self.state_dir = Path(state_dir) if state_dir else workdir / "state"
        self.call_log = workdir / "tart-calls.log"
        self.stdout_path = workdir / "operator.stdout"
        self.stderr_path = workdir / "operator.stderr"
        self.seed = seed
        self._spawned: list[subprocess.Popen[bytes]] = []

        # The simulated guests listen on loopback addresses of their own (the simulator's
        # default), on a free unprivileged port, which the operator probes for readiness: no
        # probe ever goes anywhere but loopback, nor to a real sshd on port 22.
        self.guest_port = free_port()
        server_env: dict[str, str] = {**_clean_env(), "PYTHONPATH": str(REPO_ROOT),
                                      "TART_HOME": str(self.tart_home),
                                      "TART_SIM_CALL_LOG": str(self.call_log),
                                      "TART_SIM_GUEST_PORT": str(self.guest_port),
                                      "VM_OPERATOR_READY_PORT": str(self.guest_port)}
        if seed:
            server_env["TART_SIM_SEED"] = "demo"
        for key, value in (env or {}).items():
            if value is None:
                server_env.pop(key, None)
            else:
                server_env[key] = str(value)
        state = [] if default_state_dir else ["--state-dir", str(self.state_dir)]
        argv = [sys.executable, "-m", "vm_operator", "--port", "0", "--host", "127.0.0.1",
                "--tart", str(SIMULATOR), *state, *(args or [])]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=server_env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True)
        self.pid = self.proc.pid
        try:
            self.port = self._await_listening()
        except BaseException:
            self.close()
            raise
        self.url = f"http://127.0.0.1:{self.port}"

    def _await_listening(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.log_records():
                if record.get("event") == "listening":
                    return int(record["port"])
            if self.proc.poll() is not None:
                raise RuntimeError(f"vm-operator exited with {self.proc.returncode} before listening: "
                                   f"{self.stderr_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.01)
        raise RuntimeError("vm-operator printed no listening line within 15 s")

    # --- HTTP ------------------------------------------------------------------------

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | str | None = None,
                timeout: float = 30) -> tuple[int, http.client.HTTPMessage, bytes]:
        return http_request(self.port, method, path, headers, body, timeout)

    def json(self, method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes | str | None = None, timeout: float = 30) -> tuple[int, Any]:
        status, _, data = self.request(method, path, headers, body, timeout)
        return status, (json.loads(data) if data else None)

    def _send(self, method: str, path: str, body: Any, headers: dict[str, str] | None,
              timeout: float) -> tuple[int, http.client.HTTPMessage, bytes]:
        if isinstance(body, (dict, list)):
            body, headers = json.dumps(body), headers or {"Content-Type": "application/json"}
        return self.request(method, path, headers, body, timeout)

    def ok(self, method: str, path: str, status: int = 200, body: Any = None,
           headers: dict[str, str] | None = None, timeout: float = 30) -> Any:
        """A request answered with ``status``: its JSON body (None when it has none)."""
        got, head, data = self._send(method, path, body, headers, timeout)
        assert got == status, f"{method} {path}: expected {status}, got {got}: {data[:600]!r}"
        if not data:
            return None
        assert head.get_content_type() == "application/json", head.get("Content-Type")
        return json.loads(data)

    def problem(self, method: str, path: str, status: int, slug: str, body: Any = None,
                headers: dict[str, str] | None = None, timeout: float = 30) -> dict[str, Any]:
        """A request refused with an RFC 9457 problem document of ``status`` whose type is
        exactly ``/problems/SLUG``, with a title and a detail: the document."""
        got, head, data = self._send(method, path, body, headers, timeout)
        assert got == status, f"{method} {path}: expected {status}, got {got}: {data[:600]!r}"
        assert head.get_content_type() == "application/problem+json", head.get("Content-Type")
        doc: dict[str, Any] = json.loads(data)
        assert doc["type"] == f"/problems/{slug}" and doc["status"] == status, doc
        for key in ("title", "detail"):
            assert isinstance(doc[key], str) and doc[key], (key, doc)
        return doc

    def detail(self, name: str) -> dict[str, Any]:
        """GET /vms/NAME, which must answer 200."""
        status, vm = self.json("GET", f"/vms/{name}")
        assert status == 200, vm
        return vm  # type: ignore[no-any-return]

    # --- process ---------------------------------------------------------------------

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            pytest.fail(f"vm-operator did not exit within {timeout:g} s of signal {sig}")
        return code, time.monotonic() - started

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        try:
            text = self.stdout_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass  # a line still being written
        return records

    # --- Tart, outside the API ---------------------------------------------------------

    def _direct_env(self, env: dict[str, str] | None) -> dict[str, str]:
        direct = {**_clean_env(), "TART_HOME": str(self.tart_home),
                  "TART_SIM_GUEST_PORT": str(self.guest_port)}
        if self.seed:
            direct["TART_SIM_SEED"] = "demo"
        direct.update(env or {})
        return direct

    def tart(self, *args: str, env: dict[str, str] | None = None,
             timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SIMULATOR), *args], env=self._direct_env(env), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)

    def spawn_run(self, name: str, *flags: str,
                  env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = self.workdir / f"outside-run-{len(self._spawned)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(SIMULATOR), "run", name, "--no-graphics", *flags],
                                    env=self._direct_env(env), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._spawned.append(proc)
        return proc

    def start_vm(self, name: str, query: str = "") -> dict[str, Any]:
        """POST /vms/NAME/start(QUERY) of a stopped VM: 202, running, changed."""
        vm: dict[str, Any] = self.ok("POST", f"/vms/{name}/start{query}", 202)
        assert vm["state"] == "running" and vm["changed"] is True, vm
        return vm

    def stop_vm(self, name: str) -> dict[str, Any]:
        """POST /vms/NAME/stop of a running VM: 200, stopped, changed."""
        vm: dict[str, Any] = self.ok("POST", f"/vms/{name}/stop")
        assert vm["state"] == "stopped" and vm["changed"] is True, vm
        return vm

    def tart_state(self, name: str) -> str:
        """The VM's state as Tart itself says, asked directly, outside the API."""
        out = self.tart("list", "--format", "json")
        assert out.returncode == 0, out.stderr
        return {entry["Name"]: entry["State"] for entry in json.loads(out.stdout)}[name]  # type: ignore[no-any-return]

    def guest_exits(self, name: str, code: int) -> None:
        """The simulator's knob: the VM's guest ends by itself, ``tart run`` exits with ``code``."""
        folder = self.tart_home / "vms" / name
        tmp = folder / ".tart-sim-guest-exit.tmp"
        tmp.write_text(str(code))
        tmp.rename(folder / ".tart-sim-guest-exit")

    def running_again(self, name: str, old_pid: int, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the VM runs under a ``tart run`` other than ``old_pid``: its detail."""
        def again() -> dict[str, Any] | None:
            vm = self.detail(name)
            run = vm["last_run"]
            fresh = run is not None and run["pid"] != old_pid and run["finished_at"] is None
            return vm if fresh and vm["state"] == "running" else None
        return wait_for(again, timeout=timeout, message=f"{name} running again")

    def calls(self, command: str | None = None) -> list[TartCall]:
        """The server's Tart invocations in start order; ``finished`` once the end line exists."""
        try:
            lines = self.call_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        seen: dict[tuple[int, str], TartCall] = {}
        for line in lines:
            parts = line.split(" ", 3)
            if len(parts) < 3:
                continue
            pid, started, end = int(parts[0]), parts[1], parts[2]
            argv = tuple(shlex.split(parts[3])) if len(parts) == 4 else ()
            key = (pid, started)
            finished = end != "start" or (key in seen and seen[key].finished)
            seen[key] = TartCall(pid, float(started), argv, finished)
        found = sorted(seen.values(), key=lambda call: call.started)
        return [call for call in found if command is None or call.command == command]

    # --- teardown ----------------------------------------------------------------------

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for proc in self._spawned:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def operator_factory(tmp_path: Path) -> Iterator[Callable[..., Operator]]:
    started: list[Operator] = []

    def start(env: dict[str, str | None] | None = None, args: list[str] | None = None,
              seed: bool = True, *, tart_home: Path | None = None,
              state_dir: Path | None = None, default_state_dir: bool = False) -> Operator:
        op = Operator(tmp_path / f"op{len(started)}", env=env, args=args, seed=seed,
                      tart_home=tart_home, state_dir=state_dir,
                      default_state_dir=default_state_dir)
        started.append(op)
        return op

    try:
        yield start
    finally:
        for op in started:
            op.close()
        kill_tart_processes(*{op.tart_home for op in started})


@pytest.fixture
def operator(operator_factory: Callable[..., Operator]) -> Operator:
    return operator_factory()
