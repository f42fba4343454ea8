"""The simulator's ``tart exec [-i] [-t] NAME COMMAND [ARG…]``, run as real processes in a
throw-away TART_HOME, held to TART_FACTS.md: Tart exits with the command's exit code, stdout and
stderr apart, ``-i`` gives stdin, ``-t`` a terminal; refusals with Tart's messages and exit
codes (not running 2, no such VM 2, no agent 1, usage 64); the command runs in the VM's own
directory with the guest's environment, none of the caller's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import REPO_ROOT, free_port, guest_processes

CMD = [sys.executable, "-S", "-m", "vm_operator.simulator"]
VM = "ubuntu-runner"
VANILLA = "ghcr.io/cirruslabs/macos-sequoia-vanilla:latest"
NO_AGENT = ("Failed to connect to the VM using its control socket: connection refused, is the "
            "Tart Guest Agent running?")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TART")}
    return {**clean, "PYTHONPATH": str(REPO_ROOT), "TART_HOME": str(tmp_path / "tart"),
            "TART_SIM_SEED": "demo", "TART_SIM_GUEST_PORT": str(free_port()),
            "TART_SIM_PULL_SECONDS": "0", "CALLER_SECRET": "from-the-host"}


def tart(env: dict[str, str], *args: str, stdin: str | None = None,
         timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], env=env, capture_output=True, text=True, check=False,
                          timeout=timeout, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def until(predicate: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture
def start(env: dict[str, str]) -> Iterator[Callable[..., None]]:
    procs: list[subprocess.Popen[bytes]] = []

    def _start(name: str, **knobs: str) -> None:
        procs.append(subprocess.Popen([*CMD, "run", name, "--no-graphics"], env={**env, **knobs},
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True))

        def running() -> bool:
            listed = json.loads(tart(env, "list", "--format", "json").stdout)
            return any(vm["Name"] == name and vm["State"] == "running" for vm in listed)
        until(running)

    yield _start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_command_s_exit_code_is_tart_s_and_its_streams_stay_apart(env, start) -> None:
    start(VM)
    done = tart(env, "exec", VM, "sh", "-c", "echo out; echo err >&2; exit 42")
    assert (done.returncode, done.stdout, done.stderr) == (42, "out\n", "err\n")
    assert tart(env, "exec", VM, "true").returncode == 0
    listed = tart(env, "exec", VM, "ls", "-la", "--", "-x")  # the command's flags are its own
    assert listed.returncode == 2 and "-x" in listed.stderr


def test_stdin_only_with_i(env, start) -> None:
    start(VM)
    assert tart(env, "exec", "-i", VM, "cat", stdin="fed\n").stdout == "fed\n"
    assert tart(env, "exec", VM, "cat", stdin="not fed\n").stdout == ""


def test_t_gives_the_command_a_terminal(env, start) -> None:
    start(VM)
    done = tart(env, "exec", "-t", VM, "sh", "-c", "test -t 1 && echo tty; exit 5", stdin="")
    assert done.returncode == 5 and "tty" in done.stdout
    assert tart(env, "exec", VM, "sh", "-c", "test -t 1").returncode == 1


def test_the_command_runs_in_the_vm_s_directory_without_the_caller_s_environment(env, start):
    start(VM)
    done = tart(env, "exec", VM, "sh", "-c", "pwd; env")
    lines = done.stdout.splitlines()
    assert lines[0] == str(Path(env["TART_HOME"]) / "vms" / VM / "guest")
    assert not [line for line in lines if "from-the-host" in line or line.startswith("TART")]
    assert "USER=admin" in lines


def test_refusals_say_what_tart_says(env, start) -> None:
    stopped = tart(env, "exec", VM, "true")
    assert (stopped.returncode, stopped.stderr.strip()) == (2, f'VM "{VM}" is not running')
    missing = tart(env, "exec", "nope", "true")
    assert (missing.returncode, missing.stderr.strip()) == \
        (2, 'the specified VM "nope" does not exist')
    assert tart(env, "exec", VM).returncode == 64  # no command
    start(VM)
    absent = tart(env, "exec", VM, "no-such-program")
    assert absent.returncode == 1 and "no-such-program" in absent.stderr


def test_a_vanilla_image_has_no_agent(env, start) -> None:
    assert tart(env, "clone", VANILLA, "plain").returncode == 0
    start("plain")
    done = tart(env, "exec", "plain", "true")
    assert (done.returncode, done.stderr.strip()) == (1, NO_AGENT)


def test_a_guest_that_has_not_booted_has_no_agent_yet(env, start) -> None:
    start(VM, TART_SIM_BOOT_DELAY="600")
    done = tart(env, "exec", VM, "true")
    assert (done.returncode, done.stderr.strip()) == (1, NO_AGENT)


def test_the_command_ends_when_its_vm_stops(env, start) -> None:
    start(VM)
    proc = subprocess.Popen([*CMD, "exec", VM, "sleep", "300"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    guest = Path(env["TART_HOME"]) / "vms" / VM / "guest"
    until(lambda: guest.is_dir())
    assert tart(env, "stop", VM).returncode == 0
    assert proc.wait(20) == 1


def test_a_terminal_s_command_ends_with_tart_though_the_host_ignored_hangups(env, start):
    start(VM)
    # nohup: Tart started with SIGHUP ignored, a disposition its children inherit
    proc = subprocess.Popen(["nohup", *CMD, "exec", "-t", VM, "sleep", "300"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    guest = Path(env["TART_HOME"]) / "vms" / VM / "guest"
    until(lambda: bool(guest_processes(guest)))
    os.killpg(proc.pid, signal.SIGKILL)  # Tart killed, as the operator kills its group
    proc.wait(20)
    until(lambda: guest_processes(guest) == [])
