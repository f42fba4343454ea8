"""Shared fixtures: a REAL vm-operator process, spoken to over loopback HTTP, driving the Tart
simulator (vm_operator/simulator/, through bin/tart-simulator) as a real subprocess in a
throw-away TART_HOME.

Fixture API (kept small on purpose):

Constants (import them: ``from conftest import SIMULATOR, wait_for``)
    REPO_ROOT, SIMULATOR          paths of the checkout and of bin/tart-simulator
    OCI_NAME, LOCAL_VMS, MACOS_VMS the VMs that TART_SIM_SEED=demo creates
    wait_for(predicate, timeout=WAIT_DEADLINE, interval=0.02, message="")
                                   poll until predicate() is truthy, return its value, or fail
    processes_with_tart_home(home) live pids whose environment holds TART_HOME=home

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
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from support import http_request, processes_with_tart_home

REPO_ROOT = Path(__file__).resolve().parents[1]
SIMULATOR = REPO_ROOT / "bin" / "tart-simulator"
OCI_NAME = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
LOCAL_VMS = ("macos-sequoia-base", "macos-sonoma-xcode", "ubuntu-runner")
MACOS_VMS = ("macos-sequoia-base", "macos-sonoma-xcode")

if str(REPO_ROOT) not in sys.path:  # so tests can import vm_operator (e.g. api.ROUTES)
    sys.path.insert(0, str(REPO_ROOT))

T = TypeVar("T")
WAIT_DEADLINE = 30.0  # wait_for's default deadline (seconds)


def wait_for(predicate: Callable[[], T], timeout: float = WAIT_DEADLINE, interval: float = 0.02,
             message: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy (returned), or fail at the deadline.

    The deadline only bounds a condition that never comes (a poll ends as soon as it holds), so
    it is no speed requirement: on a loaded 2-core CI machine one Tart call (an interpreter
    start) takes seconds, and a 5 s default failed conditions that were merely slow. A test of
    a promised delay passes its own, and speed goals live in scripts/bench.py."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"condition not reached within {timeout:g} s: {message or predicate}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def _kill_leftovers(homes: set[Path]) -> None:
    for _ in range(50):
        pids = [pid for home in homes for pid in processes_with_tart_home(home)]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)


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
        _kill_leftovers({op.tart_home for op in started})


@pytest.fixture
def operator(operator_factory: Callable[..., Operator]) -> Operator:
    return operator_factory()
