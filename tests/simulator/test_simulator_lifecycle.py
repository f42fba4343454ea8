"""The simulator's lifecycle commands: clone, pull, set, delete, rename, prune and
`list --source oci`, run as real processes in a throw-away TART_HOME, against Tart's messages,
exit codes, progress output and storage rules (TART_FACTS.md, read off Tart's source)."""
from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import REPO_ROOT, wait_for

CMD = [sys.executable, "-S", "-m", "vm_operator.simulator"]
SEQUOIA = "ghcr.io/cirruslabs/macos-sequoia-base:latest"  # cached by the demo seed
SONOMA = "ghcr.io/cirruslabs/macos-sonoma-base:latest"
JAMMY = "ghcr.io/cirruslabs/ubuntu:jammy"
JAMMY_ALIAS = "ghcr.io/cirruslabs/ubuntu:22.04"  # another tag of the same image (digest)
NOBLE = "ghcr.io/cirruslabs/ubuntu:latest"
FAST = {"TART_SIM_PULL_SECONDS": "0.4", "TART_SIM_PROGRESS_INTERVAL": "0.05"}
QUICK = {"TART_SIM_PULL_SECONDS": "0"}  # where the progress is not the point
REDRAW = "\x1b[1A\r\x1b[J"
PERCENT = re.compile(r"(?:\x1b\[1A\r\x1b\[J)?(\d{1,3})%")  # either form, as a parser reads it


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # No CI: tests choose the progress form themselves (CI=true is set in CI runs).
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TART") and k != "CI"}
    return {**clean, "PYTHONPATH": str(REPO_ROOT), "TART_HOME": str(tmp_path / "tart"),
            "TART_SIM_SEED": "demo"}


def tart(env: dict[str, str], *args: str, timeout: float = 20,
         **knobs: str) -> subprocess.CompletedProcess[str]:
    """Run the simulator; its output decoded as is (text=True would turn the CR of the
    terminal form into a newline)."""
    out = subprocess.run([*CMD, *args], env={**env, **knobs}, capture_output=True, check=False,
                         timeout=timeout)
    return subprocess.CompletedProcess(out.args, out.returncode, out.stdout.decode(),
                                       out.stderr.decode())


def tart_out(env: dict[str, str], *args: str, **knobs: str) -> str:
    out = tart(env, *args, **knobs)
    assert out.returncode == 0, (args, out.stderr)
    return out.stdout


def spawn(env: dict[str, str], log: Path, *args: str, **knobs: str) -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        return subprocess.Popen([*CMD, *args], env={**env, **knobs}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def home(env: dict[str, str]) -> Path:
    return Path(env["TART_HOME"])


def names(env: dict[str, str], *source: str) -> list[str]:
    return tart_out(env, "list", "-q", *source).split()


def tart_get(env: dict[str, str], name: str) -> dict:
    return json.loads(tart_out(env, "get", name, "--format", "json"))


def config(env: dict[str, str], name: str) -> dict:
    return json.loads((home(env) / "vms" / name / "config.json").read_text())


def percentages(stdout: str) -> list[int]:
    return [int(m[1]) for line in stdout.split("\n") if (m := PERCENT.fullmatch(line))]


def digest_of(env: dict[str, str], repo: str) -> str:
    found = [n for n in names(env, "--source", "oci") if n.startswith(repo + "@sha256:")]
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------- progress output

def test_pull_prints_tarts_progress_in_the_terminal_form_without_ci(env):
    out = tart(env, "pull", JAMMY, **FAST)
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.split("\n")
    assert lines[:4] == [f"pulling {JAMMY}...", "pulling manifest...",
                         "pulling disk (1.2 GB compressed)...", "0%"]
    assert lines[-2:] == ["pulling NVRAM...", ""]
    updates = lines[4:-2]
    assert updates and updates[-1] == f"{REDRAW}100%"
    assert all(re.fullmatch(r"\x1b\[1A\r\x1b\[J\d{1,3}%", line) for line in updates), updates
    values = percentages(out.stdout)
    assert values == sorted(set(values)) and values[0] == 0  # only changed values, rising


def test_pull_prints_plain_lines_when_ci_is_set(env):
    out = tart(env, "clone", JAMMY, "runner", CI="", **FAST)  # Tart only asks whether CI is set
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout
    lines = out.stdout.splitlines()
    assert lines[:3] == ["pulling manifest...", "pulling disk (1.2 GB compressed)...", "0%"]
    assert lines[-2:] == ["100%", "pulling NVRAM..."]
    assert all(re.fullmatch(r"\d{1,3}%", line) for line in lines[2:-1])


def test_progress_lines_are_at_most_one_per_interval_and_the_end_always_shows(env):
    out = tart(env, "pull", JAMMY, CI="true", TART_SIM_PULL_SECONDS="0.5",
               TART_SIM_PROGRESS_INTERVAL="600")
    assert out.returncode == 0 and percentages(out.stdout) == [0, 100]


def test_a_cached_image_prints_no_percentages(env):
    tart_out(env, "pull", JAMMY, **QUICK)
    digest = digest_of(env, "ghcr.io/cirruslabs/ubuntu")
    out = tart(env, "pull", JAMMY, **QUICK)
    assert out.returncode == 0 and out.stdout == (
        f"pulling {JAMMY}...\npulling manifest...\n{digest} image is already cached and linked!\n")
    out = tart(env, "pull", JAMMY_ALIAS, **QUICK)  # same digest, new tag: only a symlink
    assert out.returncode == 0 and out.stdout == (
        f"pulling {JAMMY_ALIAS}...\npulling manifest...\n"
        f"{digest} image is already cached! creating a symlink...\n")
    out = tart(env, "pull", SEQUOIA, **QUICK)  # the demo seed's image
    assert out.returncode == 0 and percentages(out.stdout) == []
    assert out.stdout.endswith(" image is already cached and linked!\n")
    assert tart(env, "clone", JAMMY, "quiet", **QUICK).stdout == ""  # clone of a cached image


# ---------------------------------------------------------------- pull and the OCI cache

def test_list_source_oci_shows_tags_and_digests_and_get_refuses_them(env):
    tart_out(env, "pull", JAMMY, **QUICK)
    digest = digest_of(env, "ghcr.io/cirruslabs/ubuntu")
    entries = json.loads(tart_out(env, "list", "--source", "oci", "--format", "json"))
    assert [e["Name"] for e in entries] == [SEQUOIA, JAMMY, digest]
    assert {e["Source"] for e in entries} == {"OCI"}
    assert [e["Disk"] for e in entries] == [50, 20, 20]
    assert all(e["State"] == "stopped" and e["Running"] is False for e in entries)
    assert names(env, "--source", "local") == ["macos-sequoia-base", "macos-sonoma-xcode",
                                               "ubuntu-runner"]
    for name in (JAMMY, digest):
        out = tart(env, "get", name)
        assert out.returncode == 2 and out.stderr == f'the specified VM "{name}" does not exist\n'


def test_pull_refusals(env):
    out = tart(env, "pull", "ghcr.io/acme/nothing:v1", **QUICK)  # not in the built-in registry
    assert out.returncode == 1
    assert out.stdout == "pulling ghcr.io/acme/nothing:v1...\npulling manifest...\n"
    assert out.stderr.startswith('Error: UnexpectedHTTPStatusCode(when: "pulling manifest", '
                                 'code: 404, ')
    assert names(env, "--source", "oci") == [SEQUOIA]
    out = tart(env, "pull", "ubuntu-runner")
    assert out.returncode == 0
    assert out.stdout == '"ubuntu-runner" is a local image, nothing to pull here!\n'
    out = tart(env, "pull", "no-such-vm")
    assert out.returncode == 1 and out.stderr.startswith("failed to parse remote name: ")
    for command in (["pull", JAMMY], ["clone", JAMMY, "x"]):
        out = tart(env, *command, "--concurrency", "0")
        assert out.returncode == 64
        assert out.stderr.startswith("Error: network concurrency cannot be less than 1")
    assert names(env, "--source", "oci") == [SEQUOIA] and "x" not in names(env)


def test_concurrent_pulls_from_one_registry_host_wait_for_its_lock(env, tmp_path):
    first = spawn(env, tmp_path / "first.log", "pull", JAMMY, TART_SIM_PULL_HANG="50", **FAST)
    try:
        wait_for(lambda: "50%" in (tmp_path / "first.log").read_text())
        second = spawn(env, tmp_path / "second.log", "pull", NOBLE, TART_SIM_PULL_SECONDS="0")
        wait_for(lambda: "waiting for lock..." in (tmp_path / "second.log").read_text())
        assert second.poll() is None
    finally:
        kill(first)
    assert second.wait(15) == 0
    lines = (tmp_path / "second.log").read_text().splitlines()
    assert lines[:3] == [f"pulling {NOBLE}...", "pulling manifest...", "waiting for lock..."]
    assert lines[-1] == "pulling NVRAM..."
    assert NOBLE in names(env) and JAMMY not in names(env)


# ---------------------------------------------------------------- clone

def test_clone_pulls_an_uncached_image_first(env):
    out = tart(env, "clone", SONOMA, "sonoma", **FAST)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.rstrip("\n").split("\n")  # no `pulling REF...` line: that one is `tart pull`'s
    assert lines[:3] == ["pulling manifest...", "pulling disk (23.8 GB compressed)...", "0%"]
    assert lines[-1] == "pulling NVRAM..." and percentages(out.stdout)[-1] == 100
    info = tart_get(env, "sonoma")
    assert (info["OS"], info["CPU"], info["Memory"], info["Disk"]) == ("darwin", 4, 8192, 50)
    assert SONOMA in names(env, "--source", "oci")
    assert tart(env, "clone", SONOMA, "sonoma-2", **FAST).stdout == ""  # now cached: no pull


def test_clone_new_name_must_be_local(env):
    out = tart(env, "clone", "ubuntu-runner", "ghcr.io/acme/copy:v1")
    assert out.returncode == 64
    assert out.stderr.startswith("Error: <new-name> should be a local name")
    assert names(env, "--source", "oci") == [SEQUOIA]


def test_clone_silently_replaces_an_existing_vm_as_tart_does(env):
    # tart#822 / #1120: Tart overwrites NEW without a word. The operator must refuse first.
    assert tart_get(env, "macos-sequoia-base")["OS"] == "darwin"
    out = tart(env, "clone", "ubuntu-runner", "macos-sequoia-base")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    assert tart_get(env, "macos-sequoia-base")["OS"] == "linux"
    assert names(env, "--source", "local") == ["macos-sequoia-base", "macos-sonoma-xcode",
                                               "ubuntu-runner"]


def test_clone_gives_a_fresh_mac_only_when_the_source_mac_is_taken(env, tmp_path):
    image = home(env) / "cache/OCIs/ghcr.io/cirruslabs/macos-sequoia-base/latest/config.json"
    listing = names(env)  # seeds the demo home
    assert SEQUOIA in listing
    image_mac = json.loads(image.read_text())["macAddress"]
    tart_out(env, "clone", SEQUOIA, "first")
    assert config(env, "first")["macAddress"] == image_mac  # no local VM used it yet
    tart_out(env, "clone", SEQUOIA, "second")
    second_mac = config(env, "second")["macAddress"]
    assert second_mac != image_mac
    assert re.fullmatch(r"[0-9a-f][26ae](:[0-9a-f]{2}){5}", second_mac)  # locally administered
    tart_out(env, "clone", "first", "third")  # a local source always clashes with itself
    assert config(env, "third")["macAddress"] not in (image_mac, second_mac)
    # A suspended source keeps its MAC and its saved state (Tart copies the snapshot along).
    run = spawn(env, tmp_path / "run.log", "run", "first", "--no-graphics", "--suspendable")
    try:
        wait_for(lambda: '"running"' in tart_out(env, "get", "first", "--format", "json"))
        tart_out(env, "suspend", "first")
        assert run.wait(10) == 0
    finally:
        kill(run)
    tart_out(env, "clone", "first", "fourth")
    assert config(env, "fourth")["macAddress"] == image_mac
    assert tart_get(env, "fourth")["State"] == "suspended"


def test_a_clone_killed_while_pulling_leaves_nothing(env, tmp_path):
    log = tmp_path / "clone.log"
    proc = spawn(env, log, "clone", SONOMA, "half", TART_SIM_PULL_HANG="40", **FAST)
    try:
        wait_for(lambda: "40%" in log.read_text())
        assert not (home(env) / "vms" / "half").exists()
    finally:
        kill(proc)
    assert proc.returncode == -signal.SIGKILL
    assert os.listdir(home(env) / "tmp")  # the pull's leftovers are only in tmp/ ...
    listing = names(env)  # ... which the next command (not pull or clone) cleans up
    assert "half" not in listing and not any("sonoma-base" in n for n in listing)
    assert not (home(env) / "vms" / "half").exists()
    assert os.listdir(home(env) / "tmp") == []
    tart_out(env, "clone", SONOMA, "half", TART_SIM_PULL_SECONDS="0")  # and a new try works
    assert tart_get(env, "half")["OS"] == "darwin"


def test_a_failing_pull_leaves_nothing(env):
    message = "Error: The network connection was lost."
    out = tart(env, "clone", JAMMY, "runner", TART_SIM_PULL_FAIL=f"30:{message}", **FAST)
    assert out.returncode == 1 and out.stderr == message + "\n"
    assert percentages(out.stdout)[-1] == 30 and "pulling NVRAM..." not in out.stdout
    assert os.listdir(home(env) / "tmp") == []  # cleaned up by the failing pull itself
    assert "runner" not in names(env) and JAMMY not in names(env)


def home_is_locked(env: dict[str, str]) -> bool:
    """Someone holds Tart's global lock (a flock on TART_HOME)."""
    fd = os.open(home(env), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases ours, if we got it
    return False


def waits_for_a_flock(pid: int) -> bool:
    """/proc/locks lists a process blocked in flock(2) as `N: -> FLOCK ADVISORY WRITE PID …`."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 4] == str(pid):
            return True
    return False


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_clones_run_one_at_a_time_and_a_killed_one_leaves_nothing(env, tmp_path):
    names(env)  # seed
    first = spawn(env, tmp_path / "first.log", "clone", "ubuntu-runner", "first",
                  TART_SIM_CLONE_SECONDS="600")
    second = None
    try:
        wait_for(lambda: home_is_locked(env))  # the first copies, holding the global lock
        second = spawn(env, tmp_path / "second.log", "clone", "macos-sequoia-base", "second")
        wait_for(lambda: waits_for_a_flock(second.pid))
        assert second.poll() is None and not (home(env) / "vms" / "second").exists()
    finally:
        kill(first)
    assert second is not None and second.wait(15) == 0
    assert tart_get(env, "second")["OS"] == "darwin"
    assert not (home(env) / "vms" / "first").exists() and "first" not in names(env)
    assert os.listdir(home(env) / "tmp") == []  # the killed clone's copy: gone with `list`


# ---------------------------------------------------------------- set

def test_set_refuses_less_than_the_image_minimum(env):
    out = tart(env, "set", "macos-sequoia-base", "--cpu", "2")
    assert out.returncode == 1 and out.stderr == (
        "Error: LessThanMinimalResourcesError: VM should have 4 CPU cores at minimum "
        "(requested 2)\n")
    out = tart(env, "set", "macos-sequoia-base", "--memory", "4096")
    assert out.returncode == 1 and out.stderr == (
        "Error: LessThanMinimalResourcesError: VM should have 8589934592 bytes of memory at "
        "minimum (requested 4294967296)\n")
    info = tart_get(env, "macos-sequoia-base")
    assert (info["CPU"], info["Memory"]) == (4, 8192)
    # A Linux guest has no image minimum, only Virtualization.framework's.
    tart_out(env, "set", "ubuntu-runner", "--cpu", "1", "--memory", "512")
    info = tart_get(env, "ubuntu-runner")
    assert (info["CPU"], info["Memory"]) == (1, 512)
    out = tart(env, "set", "ubuntu-runner", "--cpu", "0")
    assert out.returncode == 1
    assert "VM should have 1 CPU cores at minimum (requested 0)" in out.stderr


def test_set_changes_resources_display_mac_and_serial(env):
    names(env)  # seed
    before = config(env, "macos-sonoma-xcode")
    tart_out(env, "set", "macos-sonoma-xcode", "--cpu", "8", "--memory", "16384",
       "--display", "1920x1200", "--random-mac", "--random-serial")
    info = tart_get(env, "macos-sonoma-xcode")
    assert (info["CPU"], info["Memory"], info["Display"]) == (8, 16384, "1920x1200")
    after = config(env, "macos-sonoma-xcode")
    assert after["macAddress"] != before["macAddress"] and after["ecid"] != before["ecid"]
    tart_out(env, "set", "macos-sonoma-xcode", "--display", "1280x800px")
    assert tart_get(env, "macos-sonoma-xcode")["Display"] == "1280x800px"


def test_set_disk_only_grows(env):
    out = tart(env, "set", "macos-sequoia-base", "--disk-size", "40")
    assert out.returncode == 1 and out.stderr == (
        "new disk size of 40 GB should be larger than the current disk size of 50 GB\n")
    assert tart_get(env, "macos-sequoia-base")["Disk"] == 50
    tart_out(env, "set", "macos-sequoia-base", "--disk-size", "80")
    tart_out(env, "set", "macos-sequoia-base", "--disk-size", "80")  # the same size: nothing to do
    assert tart_get(env, "macos-sequoia-base")["Disk"] == 80
    # Tart saves the other settings before it looks at the disk: they stick despite exit 1.
    out = tart(env, "set", "macos-sequoia-base", "--cpu", "6", "--disk-size", "10")
    assert out.returncode == 1 and "should be larger than" in out.stderr
    assert tart_get(env, "macos-sequoia-base")["CPU"] == 6


def test_set_does_not_care_whether_the_vm_runs(env, tmp_path):
    run = spawn(env, tmp_path / "run.log", "run", "ubuntu-runner", "--no-graphics")
    try:
        wait_for(lambda: tart_get(env, "ubuntu-runner")["State"] == "running")
        tart_out(env, "set", "ubuntu-runner", "--cpu", "3", "--disk-size", "30")
        info = tart_get(env, "ubuntu-runner")  # still running: the lock on config.json held
        assert (info["CPU"], info["Disk"], info["State"]) == (3, 30, "running")
        tart_out(env, "stop", "ubuntu-runner")
        assert run.wait(10) == 0
    finally:
        kill(run)


@pytest.mark.parametrize("name", ["nope", SEQUOIA])
def test_set_knows_local_vms_only(env, name):
    out = tart(env, "set", name, "--cpu", "4")
    assert out.returncode == 2 and out.stderr == f'the specified VM "{name}" does not exist\n'


# ---------------------------------------------------------------- delete

def test_delete_stops_at_the_first_error_and_refuses_a_running_vm(env, tmp_path):
    out = tart(env, "delete", "ubuntu-runner", "nope", "macos-sonoma-xcode")
    assert out.returncode == 2 and out.stderr == 'the specified VM "nope" does not exist\n'
    assert names(env, "--source", "local") == ["macos-sequoia-base", "macos-sonoma-xcode"]
    run = spawn(env, tmp_path / "run.log", "run", "macos-sonoma-xcode", "--no-graphics")
    try:
        wait_for(lambda: tart_get(env, "macos-sonoma-xcode")["State"] == "running")
        out = tart(env, "delete", "macos-sonoma-xcode")
        assert out.returncode == 1 and out.stderr == 'VM "macos-sonoma-xcode" is running\n'
        assert tart_get(env, "macos-sonoma-xcode")["State"] == "running"
    finally:
        kill(run)
    tart_out(env, "delete", "macos-sonoma-xcode", "macos-sequoia-base")
    assert names(env, "--source", "local") == []


def test_delete_of_cached_images(env):
    tart_out(env, "pull", JAMMY, **QUICK)
    tart_out(env, "pull", JAMMY_ALIAS, **QUICK)
    digest = digest_of(env, "ghcr.io/cirruslabs/ubuntu")
    tart_out(env, "delete", JAMMY)
    assert names(env, "--source", "oci") == [SEQUOIA, JAMMY_ALIAS, digest]
    tart_out(env, "delete", JAMMY_ALIAS)  # the last tag: the digest goes with it
    assert names(env, "--source", "oci") == [SEQUOIA]
    tart_out(env, "pull", digest, **QUICK)  # pulled by digest: kept without any tag
    tart_out(env, "pull", JAMMY, **QUICK)
    tart_out(env, "delete", JAMMY)
    assert names(env, "--source", "oci") == [SEQUOIA, digest]
    tart_out(env, "pull", JAMMY, **QUICK)
    tart_out(env, "delete", digest)  # the image itself: its tags stop listing
    assert names(env, "--source", "oci") == [SEQUOIA]
    out = tart(env, "delete", JAMMY)
    assert out.returncode == 2 and out.stderr == f'the specified VM "{JAMMY}" does not exist\n'
    tart_out(env, "delete", SEQUOIA)  # the seed's image (a plain tag directory)
    assert names(env, "--source", "oci") == []


# ---------------------------------------------------------------- rename

def test_rename(env):
    tart_out(env, "rename", "ubuntu-runner", "runner")
    assert names(env, "--source", "local") == ["macos-sequoia-base", "macos-sonoma-xcode",
                                               "runner"]
    assert tart_get(env, "runner")["OS"] == "linux"
    refusals = {
        ("runner", "macos-sequoia-base"): "Error: failed to rename VM runner, target VM "
                                          "macos-sequoia-base already exists, delete it first!",
        ("ubuntu-runner", "x"): "Error: failed to rename a non-existent local VM: ubuntu-runner",
        (SEQUOIA, "x"): f"Error: failed to rename a non-existent local VM: {SEQUOIA}",
        ("runner", "ghcr.io/acme/runner:v1"): "Error: <new-name> should be a local name",
    }
    for (old, new), message in refusals.items():
        out = tart(env, "rename", old, new)
        assert out.returncode == 64 and out.stderr.splitlines()[0] == message, (old, new, out)
    assert names(env, "--source", "local") == ["macos-sequoia-base", "macos-sonoma-xcode",
                                               "runner"]


# ---------------------------------------------------------------- prune

def test_prune_needs_a_criterion_and_known_entries(env):
    out = tart(env, "prune")
    assert out.returncode == 64
    assert out.stderr.splitlines()[0] == "Error: at least one pruning criteria must be specified"
    out = tart(env, "prune", "--entries", "images", "--older-than", "1")
    assert out.returncode == 64 and out.stderr.splitlines()[0] == (
        'Error: unsupported --entries value, please specify either "caches" or "vms"')
    assert len(names(env)) == 4


def test_prune_vms_older_than_skips_running_ones(env, tmp_path):
    names(env)  # seed: ubuntu-runner was last accessed 3 days ago, the others within hours
    run = spawn(env, tmp_path / "run.log", "run", "ubuntu-runner", "--no-graphics")
    try:
        wait_for(lambda: tart_get(env, "ubuntu-runner")["State"] == "running")
        # `run` touched it: make it old again, as a VM that has been running for days is
        accessed = home(env) / "vms" / "ubuntu-runner" / ".tart-sim-accessed"
        old = time.time() - 3 * 86400
        os.utime(accessed, (old, old))
        tart_out(env, "prune", "--entries", "vms", "--older-than", "1")
        assert "ubuntu-runner" in names(env)  # running: not a candidate
        tart_out(env, "stop", "ubuntu-runner")
        assert run.wait(10) == 0
    finally:
        kill(run)
    os.utime(accessed, (old, old))
    tart_out(env, "prune", "--entries", "vms", "--older-than", "1")
    assert names(env, "--source", "local") == ["macos-sequoia-base", "macos-sonoma-xcode"]
    assert SEQUOIA in names(env)  # caches untouched


def test_prune_caches_older_than(env):
    tart_out(env, "pull", JAMMY, **QUICK)
    digest = digest_of(env, "ghcr.io/cirruslabs/ubuntu")
    image_dir = home(env) / "cache/OCIs/ghcr.io/cirruslabs/ubuntu" / digest.split("@")[1]
    old = time.time() - 2 * 86400
    os.utime(image_dir / ".tart-sim-accessed", (old, old))
    tart_out(env, "prune", "--older-than", "1")
    assert names(env, "--source", "oci") == [SEQUOIA]
    assert len(names(env, "--source", "local")) == 3


def test_prune_caches_to_a_space_budget_least_recently_accessed_first(env):
    tart_out(env, "pull", JAMMY, **QUICK)  # 3.4 GB
    tart_out(env, "pull", NOBLE, **QUICK)  # 3.6 GB, accessed last; the seed's image (31.2 GB) first
    for name, when in ((SEQUOIA, 3000), (JAMMY, 2000), (NOBLE, 1000)):
        entry = home(env) / "cache/OCIs" / name.replace(":", "/")  # the tag: follows to the image
        os.utime(entry / ".tart-sim-accessed", (time.time() - when,) * 2)
    link = os.readlink(home(env) / "cache/OCIs/ghcr.io/cirruslabs/ubuntu/latest")
    noble_digest = f"ghcr.io/cirruslabs/ubuntu@{link}"  # Tart's layout: tag -> digest directory
    tart_out(env, "prune", "--space-budget", "5")
    assert names(env, "--source", "oci") == [NOBLE, noble_digest]
    assert len(names(env, "--source", "local")) == 3
