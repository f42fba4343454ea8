"""Tests of the Tart simulator (the package vm_operator/simulator/), run as real processes in a throw-away
TART_HOME: as ``python -m vm_operator.simulator`` and through the checkout's bin/tart-simulator."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import REPO_ROOT, free_port, wait_for

from vm_operator import simulator
from vm_operator.simulator import knobs, onefile

PACKAGE = REPO_ROOT / "vm_operator" / "simulator"
SIM = REPO_ROOT / "bin" / "tart-simulator"  # the checkout's executable: it only runs the module
OCI = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
LOCAL = ["macos-sequoia-base", "macos-sonoma-xcode", "ubuntu-runner"]
# The interpreter running pytest, without site-packages (-S: the simulator is stdlib-only), so a
# slow `python3` shim or .pth file doesn't tax every call; test_executable_entry_point covers the
# shebang path. PYTHONPATH (set by the env fixture) finds this checkout's package.
CMD = [sys.executable, "-S", "-m", "vm_operator.simulator"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TART")}
    return {**clean, "PYTHONPATH": str(REPO_ROOT), "TART_HOME": str(tmp_path / "tart"),
            "TART_SIM_SEED": "demo", "TART_SIM_GUEST_PORT": str(free_port())}


def tart(env: dict[str, str], *args: str, timeout: float = 10,
         **knobs: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CMD, *args], env={**env, **knobs}, capture_output=True, text=True,
                          check=False, timeout=timeout)


def listing(env: dict[str, str], **knobs: str) -> list[dict]:
    out = tart(env, "list", "--format", "json", **knobs)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def state(env: dict[str, str], name: str) -> str:
    return next(e["State"] for e in listing(env) if e["Name"] == name)


@pytest.fixture
def start(env: dict[str, str], tmp_path: Path):
    """Start `tart run` processes (own process group, output to a file); kill leftovers."""
    procs: list[subprocess.Popen] = []

    def _start(name: str, *flags: str, wait: bool = True, **knobs: str) -> subprocess.Popen:
        log = tmp_path / f"run-{name}-{len(procs)}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([*CMD, "run", name, "--no-graphics", *flags],
                                    env={**env, **knobs}, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        proc.log = log  # type: ignore[attr-defined]
        procs.append(proc)
        if wait:
            wait_for(lambda: state(env, name) == "running")
        return proc

    yield _start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_executable_entry_point(env):
    assert os.access(SIM, os.X_OK) and SIM.read_text().startswith("#!/usr/bin/env python3\n")
    # Run from elsewhere, with no PYTHONPATH: the wrapper finds its checkout's package.
    out = subprocess.run([str(SIM), "--version"], env={**env, "PYTHONPATH": ""}, cwd="/",
                         capture_output=True, text=True, check=False, timeout=10)
    assert out.returncode == 0 and out.stdout == "2.31.0\n"


def test_the_package_also_runs_as_one_file_without_vm_operator(env, tmp_path):
    # The SSH tests put it on their host as one file: it must import nothing from vm_operator.
    alone = onefile.build(tmp_path / "elsewhere" / "tart")
    for argv, code, stdout in ((["--version"], 0, "2.31.0\n"), (["get", "nope"], 2, "")):
        out = subprocess.run([sys.executable, "-S", str(alone), *argv],
                             env={**env, "PYTHONPATH": ""}, cwd="/", capture_output=True,
                             text=True, check=False, timeout=10)
        assert (out.returncode, out.stdout) == (code, stdout), out.stderr
    assert subprocess.run([str(alone), "--version"], env={**env, "PYTHONPATH": ""}, cwd="/",
                          capture_output=True, check=False, timeout=10).returncode == 0


KNOB = re.compile(r"\bTART_SIM_[A-Z_]+\b")


@pytest.mark.parametrize("how", ["module", "executable"])
def test_help_lists_every_subcommand_and_every_knob(env, how):
    argv = [*CMD, "--help"] if how == "module" else [str(SIM), "--help"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=10)
    assert out.returncode == 0, out.stderr
    subcommands = set(simulator.COMMANDS)  # every subcommand it dispatches
    assert {"list", "get", "run", "stop", "suspend", "ip", "clone", "delete", "create",
            "pull"} <= subcommands
    for command in subcommands:  # each on a line of its own, with what it does
        assert re.search(rf"^\s+{command}\s+\S", out.stdout, re.MULTILINE), (command, out.stdout)
    declared = {knob.variable for knob in knobs.declared()}
    assert len(declared) >= 20 and "TART_HOME" in declared
    for knob in declared:  # each on a line of its own, with what it does
        assert re.search(rf"^\s+{knob}\b\S*\s+\S", out.stdout, re.MULTILINE), (knob, out.stdout)


def test_the_environment_is_read_only_through_the_knobs():
    # the knobs' record is the one reader of the environment (cli.py hands it os.environ at
    # start-up): a variable read anywhere else would be a knob nobody declared
    for path in sorted(PACKAGE.glob("*.py")):
        text = path.read_text()
        if path.name not in ("knobs.py", "cli.py"):
            assert not re.search(r"\benviron\b|\bgetenv\b", text), path  # "environment" may be said


def test_help_still_fails_unknown_commands_like_tart(env):
    out = tart(env, "frobnicate")
    assert out.returncode == 64 and out.stderr.startswith("Error: ")
    assert "frobnicate" in out.stderr and out.stdout == ""


def test_version(env):
    assert tart(env, "--version").stdout.strip() == "2.31.0"
    assert tart(env, "--version", TART_SIM_VERSION="2.15.1").stdout.strip() == "2.15.1"


def test_seeded_list_json_shape(env):
    entries = listing(env)
    assert [e["Name"] for e in entries] == LOCAL + [OCI]
    assert [e["Source"] for e in entries] == ["local"] * 3 + ["OCI"]
    for e in entries:
        assert set(e) == {"Source", "Name", "Disk", "Size", "Accessed", "Running", "State"}
        assert isinstance(e["Disk"], int) and isinstance(e["Size"], int)
        assert e["Running"] is False and e["State"] == "stopped"
        assert dt.datetime.fromisoformat(e["Accessed"]).tzinfo is not None


@pytest.mark.parametrize("shape,extra,missing", [
    ("2.15", {"SizeOnDisk"}, {"Accessed"}),
    ("1.7", set(), {"Accessed", "State", "SizeOnDisk"}),
])
def test_list_shapes(env, shape, extra, missing):
    for e in listing(env, TART_SIM_LIST_SHAPE=shape):
        assert extra <= set(e) and not (missing & set(e))
        assert all(isinstance(e[k], int) for k in extra)


def test_list_text_quiet_and_source(env):
    text = tart(env, "list").stdout.splitlines()
    assert text[0].split() == ["Source", "Name", "Disk", "Size", "Accessed", "State"]
    assert "3 minutes ago" in text[1] and text[1].split()[0:2] == ["local", "macos-sequoia-base"]
    assert tart(env, "list", "-q").stdout.split() == LOCAL + [OCI]
    assert tart(env, "list", "--source", "oci", "--quiet").stdout.split() == [OCI]
    local = json.loads(tart(env, "list", "--source", "local", "--format", "json").stdout)
    assert [e["Name"] for e in local] == LOCAL


def test_get(env):
    info = json.loads(tart(env, "get", "ubuntu-runner", "--format", "json").stdout)
    assert info["OS"] == "linux"
    assert isinstance(info["CPU"], int) and isinstance(info["Memory"], int)
    assert re.fullmatch(r"\d+\.\d{3}", info["Size"]) and re.fullmatch(r"\d+x\d+", info["Display"])
    assert info["DiskFormat"] == "raw" and info["Running"] is False and info["State"] == "stopped"
    assert tart(env, "get", "macos-sequoia-base").stdout.split()[0] == "OS"


@pytest.mark.parametrize("command", [["get"], ["stop"], ["suspend"], ["ip"], ["run"], ["delete"],
                                     ["clone", "x"]])
def test_unknown_vm_exits_2(env, command):
    out = tart(env, command[0], "nope", *command[1:])
    assert out.returncode == 2 and out.stderr.strip() == 'the specified VM "nope" does not exist'
    assert out.stdout == ""


def test_oci_names_are_not_local_vms(env):
    for command in ("get", "run", "ip", "stop"):
        out = tart(env, command, OCI)
        assert out.returncode == 2 and f'the specified VM "{OCI}" does not exist' in out.stderr


@pytest.mark.parametrize("args", [
    ["bogus"], ["get"], ["list", "--format", "xml"], ["list", "--nope"],
    ["stop", "x", "--timeout", "-1"], ["ip", "x", "--resolver", "mdns"],
])
def test_usage_errors_exit_64(env, args):
    out = tart(env, *args)
    assert out.returncode == 64 and out.stderr.startswith("Error:")


def test_run_lock_ip_and_stop(env, start):
    proc = start("macos-sequoia-base")
    second = tart(env, "run", "macos-sequoia-base")
    assert second.returncode == 2
    assert second.stderr.strip() == 'VM "macos-sequoia-base" is already running!'
    info = json.loads(tart(env, "get", "macos-sequoia-base", "--format", "json").stdout)
    assert info["Running"] is True and info["State"] == "running"
    ip = tart(env, "ip", "macos-sequoia-base", "--wait", "2")
    assert ip.returncode == 0 and re.fullmatch(r"127\.\d+\.\d+\.\d+\n", ip.stdout)  # loopback
    assert tart(env, "ip", "macos-sequoia-base").stdout == ip.stdout  # deterministic
    assert tart(env, "stop", "macos-sequoia-base").returncode == 0
    assert proc.wait(5) == 0 and state(env, "macos-sequoia-base") == "stopped"
    log = proc.log.read_text()
    assert "starting VM macos-sequoia-base" in log and "shut down" in log
    accessed = next(e["Accessed"] for e in listing(env) if e["Name"] == "macos-sequoia-base")
    when = dt.datetime.fromisoformat(accessed)
    assert abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 30


def test_vm_limit_counts_macos_guests(env, start):
    assert tart(env, "clone", "macos-sequoia-base", "third").returncode == 0
    start("macos-sequoia-base")
    start("macos-sonoma-xcode")
    out = tart(env, "run", "third")
    assert out.returncode == 1
    assert out.stderr.strip() == "The number of VMs exceeds the system limit"
    assert state(env, "third") == "stopped"
    start("ubuntu-runner")  # a Linux guest is not under Apple's macOS licence limit
    start("third", TART_SIM_VM_LIMIT="0")  # 0 = no limit


def test_vm_limit_knob(env, start):
    start("macos-sequoia-base", TART_SIM_VM_LIMIT="1")
    out = tart(env, "run", "macos-sonoma-xcode", TART_SIM_VM_LIMIT="1")
    assert out.returncode == 1 and "exceeds the system limit" in out.stderr


def test_suspend_resume_and_stop_discards_state(env, start):
    proc = start("macos-sonoma-xcode", "--suspendable")
    assert tart(env, "suspend", "macos-sonoma-xcode").returncode == 0
    assert proc.wait(5) == 0 and state(env, "macos-sonoma-xcode") == "suspended"
    assert "snapshot created" in proc.log.read_text()
    resumed = start("macos-sonoma-xcode")  # a suspended VM resumes, suspendable again
    assert "restoring VM state" in resumed.log.read_text()
    assert tart(env, "suspend", "macos-sonoma-xcode").returncode == 0
    assert resumed.wait(5) == 0 and state(env, "macos-sonoma-xcode") == "suspended"
    assert tart(env, "ip", "macos-sonoma-xcode").returncode == 1
    assert tart(env, "stop", "macos-sonoma-xcode").returncode == 0
    assert state(env, "macos-sonoma-xcode") == "stopped"


def test_suspend_needs_suspendable(env, start):
    proc = start("macos-sequoia-base")
    out = tart(env, "suspend", "macos-sequoia-base")
    assert out.returncode == 1 and "--suspendable" in out.stderr
    time.sleep(0.2)
    assert proc.poll() is None and state(env, "macos-sequoia-base") == "running"
    assert "--suspendable" in proc.log.read_text()
    linux = tart(env, "run", "ubuntu-runner", "--suspendable")
    assert linux.returncode == 64 and "only suspend macOS" in linux.stderr


def test_not_running_errors(env):
    for command in ("stop", "suspend"):
        out = tart(env, command, "ubuntu-runner")
        assert out.returncode == 2 and out.stderr.strip() == 'VM "ubuntu-runner" is not running'
    began = time.monotonic()
    out = tart(env, "ip", "ubuntu-runner", "--wait", "1")
    assert out.returncode == 1 and out.stderr.strip() == "no IP address found, is your VM running?"
    assert time.monotonic() - began >= 1


def test_ip_waits_for_boot(env, start, tmp_path):
    start("ubuntu-runner", TART_SIM_BOOT_DELAY="1.0")
    runtime = tmp_path / "tart" / "vms" / "ubuntu-runner" / ".tart-sim-run.json"
    wait_for(runtime.exists)  # written right after the lock is taken
    booted_at = json.loads(runtime.read_text())["bootedAt"]
    early = tart(env, "ip", "ubuntu-runner")
    if time.time() < booted_at:  # on a badly overloaded host the call may end after boot
        assert early.returncode == 1 and "no IP address found" in early.stderr
    assert tart(env, "ip", "ubuntu-runner", "--wait", "10").returncode == 0
    assert time.time() >= booted_at


def test_stop_escalates_to_sigkill_and_stale_pid_file_is_ignored(env, start, tmp_path):
    proc = start("ubuntu-runner")
    assert tart(env, "stop", "ubuntu-runner", "-t", "0").returncode == 0
    assert proc.wait(5) == -signal.SIGKILL
    pid_file = tmp_path / "tart" / "vms" / "ubuntu-runner" / ".tart-sim-run.json"
    pid_file.write_text(json.dumps({"pid": os.getpid(), "suspendable": False, "bootedAt": 0}))
    assert state(env, "ubuntu-runner") == "stopped"
    assert tart(env, "stop", "ubuntu-runner").returncode == 2
    assert tart(env, "ip", "ubuntu-runner").returncode == 1


def test_process_group_sigterm_is_clean(env, start):
    proc = start("ubuntu-runner")
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(5) == 0 and state(env, "ubuntu-runner") == "stopped"


def test_run_fail_knob(env):
    out = tart(env, "run", "ubuntu-runner", TART_SIM_RUN_FAIL="VZErrorDomain Code=2 boom")
    assert out.returncode == 1 and out.stderr.strip() == "VZErrorDomain Code=2 boom"
    assert state(env, "ubuntu-runner") == "stopped"


def test_run_delay_knob(env, start):
    listing(env)  # seed first
    began = time.monotonic()
    start("ubuntu-runner", wait=False, TART_SIM_RUN_DELAY="1.0")
    early = state(env, "ubuntu-runner")
    if time.monotonic() - began < 1.0:  # the delay starts after `run` itself started
        assert early == "stopped"
    wait_for(lambda: state(env, "ubuntu-runner") == "running")
    assert time.monotonic() - began >= 1.0


def test_garbage_hang_and_delay_knobs(env):
    out = tart(env, "list", "--format", "json", TART_SIM_GARBAGE="get,list")
    assert out.returncode == 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.stdout)
    assert tart(env, "ip", "nope", TART_SIM_GARBAGE="get,list").returncode == 2
    with pytest.raises(subprocess.TimeoutExpired):
        tart(env, "list", timeout=0.5, TART_SIM_HANG="all")
    assert tart(env, "get", "ubuntu-runner", TART_SIM_HANG="list").returncode == 0
    began = time.monotonic()
    assert tart(env, "list", TART_SIM_DELAY="0.3").returncode == 0
    assert time.monotonic() - began >= 0.3


def test_call_log(env, tmp_path):
    log = tmp_path / "calls.log"
    tart(env, "list", "--format", "json", TART_SIM_CALL_LOG=str(log))
    tart(env, "get", "nope", TART_SIM_CALL_LOG=str(log))
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [line[2] == "start" for line in lines] == [True, False, True, False]
    assert lines[0][3:] == ["list", "--format", "json"] and lines[3][3:] == ["get", "nope"]
    assert lines[0][:2] == lines[1][:2] and float(lines[1][2]) >= float(lines[1][1])


def test_clone_create_pull_delete(env, start):
    # Cloning onto an existing name, pull progress, set/rename/prune: test_simulator_lifecycle.py
    assert tart(env, "clone", OCI, "from-oci").returncode == 0
    assert json.loads(tart(env, "get", "from-oci", "--format", "json").stdout)["OS"] == "darwin"
    ubuntu = "ghcr.io/cirruslabs/ubuntu:22.04"
    assert tart(env, "clone", ubuntu, "u2", TART_SIM_PULL_SECONDS="0").returncode == 0  # auto-pull
    assert tart(env, "create", "lin", "--linux", "--disk-size", "30").returncode == 0
    info = json.loads(tart(env, "get", "lin", "--format", "json").stdout)
    assert info["OS"] == "linux" and info["Disk"] == 30
    assert tart(env, "create", "lin", "--linux").returncode == 1
    assert tart(env, "create", "mac", "--from-ipsw", "latest").returncode == 0
    assert tart(env, "pull", "ghcr.io/cirruslabs/ubuntu:jammy").returncode == 0  # 22.04's digest
    names = tart(env, "list", "-q").stdout.split()
    assert names[-4:-1] == [OCI, ubuntu, "ghcr.io/cirruslabs/ubuntu:jammy"]
    assert names[-1].startswith("ghcr.io/cirruslabs/ubuntu@sha256:")
    start("lin")
    out = tart(env, "delete", "lin")
    assert out.returncode == 1 and out.stderr == 'VM "lin" is running\n'
    for name in ("from-oci", "ghcr.io/cirruslabs/ubuntu:jammy"):
        assert tart(env, "delete", name).returncode == 0
    names = tart(env, "list", "-q").stdout.split()
    assert "from-oci" not in names and "ghcr.io/cirruslabs/ubuntu:jammy" not in names
    assert ubuntu in names  # the digest stays while a tag points to it


def test_concurrent_lists_during_run_and_stop(env, start):
    listing(env)  # seed first

    def one_list(_: int) -> int:
        out = tart(env, "list", "--format", "json")
        assert out.returncode == 0
        return len(json.loads(out.stdout))

    with ThreadPoolExecutor(8) as pool:
        futures = pool.map(one_list, range(12))
        proc = start("macos-sequoia-base")
        assert tart(env, "stop", "macos-sequoia-base").returncode == 0
        assert set(futures) == {4}
    assert proc.wait(5) == 0


def test_seeding_is_race_safe(env):
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: tart(env, "list", "-q").stdout.split(), range(6)))
    assert all(r == LOCAL + [OCI] for r in results)
