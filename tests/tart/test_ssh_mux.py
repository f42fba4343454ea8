"""The SSH transport shares one connection (OpenSSH ControlMaster) between its calls: a Tart
call over SSH costs a round trip, not a login.

Against the throw-away sshd of tests/sshd_env.py (Linux, root; skipped otherwise, a failure
with VM_OPERATOR_REQUIRE_SSH=1). Logins are counted in sshd's own log ("Accepted publickey"
lines, LogLevel VERBOSE), the master is found with ``ssh -O check``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sshd_env
from conftest import REPO_ROOT, Operator
from support import wait_for

from vm_operator.tart.commands import Tart
from vm_operator.tart.errors import TartTimeout
from vm_operator.tart.ssh import CONTROL_SOCKET, SshTransport
from vm_operator.tart.ssh_commands import control_argv, ssh_argv
from vm_operator.tart.ssh_settings import SshSettings, ssh_settings

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.fixture(scope="module")
def sshd() -> Iterator[sshd_env.SshdEnv]:
    yield from sshd_env.for_module()


def logins(server: sshd_env.SshdEnv) -> int:
    return server.sshd_log.read_text(errors="replace").count("Accepted publickey for")


def settings_for(server: sshd_env.SshdEnv, **overrides: object) -> SshSettings:
    made = ssh_settings(server.target, key=str(server.key), known_hosts=str(server.known_hosts),
                        connect_timeout=sshd_env.CONNECT_TIMEOUT)
    return replace(made, **overrides) if overrides else made  # type: ignore[arg-type]


def master_pid(transport: SshTransport) -> int | None:
    """The master's PID as ``ssh -O check`` reports it; None when none answers."""
    path = transport.control_path()
    assert path is not None
    done = subprocess.run(control_argv(transport.settings, path, "check"), env=ENV,
                          capture_output=True, text=True, timeout=10,
                          stdin=subprocess.DEVNULL, check=False)
    found = re.search(r"pid=(\d+)", done.stderr)
    return int(found.group(1)) if done.returncode == 0 and found else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (an exited master nobody reaped yet) is not alive
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def transport(sshd: sshd_env.SshdEnv) -> Iterator[SshTransport]:
    made = SshTransport(settings_for(sshd), ENV, sshd_env.TART_TIMEOUT)
    yield made
    made.close()


# --- the command line (pure) ------------------------------------------------------------------


def test_a_control_path_turns_sharing_on() -> None:
    settings = SshSettings("me@mac.example", control_persist=90)
    shared = ssh_argv(settings, ["true"], "/tmp/vmo-ssh-x/mux")
    assert shared[shared.index("ControlMaster=auto") - 1] == "-o"
    assert "ControlPath=/tmp/vmo-ssh-x/mux" in shared and "ControlPersist=90" in shared
    alone = ssh_argv(settings, ["true"])
    assert "ControlMaster=no" in alone and "ControlPath=none" in alone
    assert not any(word.startswith("ControlPersist") for word in alone)
    assert control_argv(settings, "/tmp/vmo-ssh-x/mux", "exit")[-4:] == [
        "-O", "exit", "--", "me@mac.example"]


# --- for real ---------------------------------------------------------------------------------


def test_many_tart_calls_cost_one_login(sshd: sshd_env.SshdEnv,
                                        transport: SshTransport) -> None:
    before = logins(sshd)
    tart = Tart(transport)
    for _ in range(5):
        names = [vm["name"] for vm in tart.list_vms()]
        tart.get(names[0])  # type: ignore[arg-type]
    assert transport.remote("echo", ["echo", "hello"]) == "hello\n"
    assert logins(sshd) - before == 1
    assert master_pid(transport) is not None


def test_calls_made_together_before_any_connection_log_in_once(
        sshd: sshd_env.SshdEnv, transport: SshTransport) -> None:
    before = logins(sshd)
    tart = Tart(transport)
    barrier = threading.Barrier(4)
    answers: list[int] = []

    def list_at_once() -> None:
        barrier.wait(10)
        answers.append(len(tart.list_vms()))

    threads = [threading.Thread(target=list_at_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 4 and all(answers)
    assert logins(sshd) - before == 1


def test_the_control_socket_is_in_a_private_short_directory(transport: SshTransport) -> None:
    Tart(transport).list_vms()
    path = transport.control_path()
    assert path is not None and Path(path).name == CONTROL_SOCKET
    assert len(path.encode()) <= 104 - 1 - 17  # macOS' sun_path, and ssh's temporary suffix
    directory = os.stat(Path(path).parent)
    assert stat.S_IMODE(directory.st_mode) == 0o700 and directory.st_uid == os.geteuid()
    assert stat.S_ISSOCK(os.stat(path).st_mode)


def test_the_call_that_starts_the_master_does_not_wait_for_it(sshd: sshd_env.SshdEnv) -> None:
    """The first call becomes the master, which then lives on in the background for
    ControlPersist seconds: were its stdio the call's pipes, the call would end only when
    the master does, here after its timeout (a TartTimeout), long before 600 s."""
    transport = SshTransport(settings_for(sshd, control_persist=600), ENV, sshd_env.TART_TIMEOUT)
    try:
        assert transport.remote("echo", ["sh", "-c", "echo out; echo err >&2"]) == "out\n"
        assert master_pid(transport) is not None
    finally:
        transport.close()


def test_a_killed_master_is_replaced_by_the_next_call(sshd: sshd_env.SshdEnv,
                                                      transport: SshTransport) -> None:
    tart = Tart(transport)
    tart.list_vms()
    first = master_pid(transport)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), timeout=10)
    before = logins(sshd)
    assert tart.list_vms()  # through a stale socket: the call logs in and is the new master
    second = master_pid(transport)
    assert second is not None and second != first
    tart.list_vms()
    assert logins(sshd) - before == 1


def test_a_timed_out_call_is_killed_and_the_connection_stays(sshd: sshd_env.SshdEnv,
                                                           transport: SshTransport) -> None:
    transport.remote("true", ["true"])
    master = master_pid(transport)
    before = logins(sshd)
    with pytest.raises(TartTimeout):
        transport.remote("sleep", ["sleep", "30"], timeout=1)
    assert master is not None and alive(master)
    assert transport.remote("echo", ["echo", "still"]) == "still\n"
    assert logins(sshd) == before


def test_close_ends_the_master_and_removes_its_directory(sshd: sshd_env.SshdEnv) -> None:
    transport = SshTransport(settings_for(sshd), ENV, sshd_env.TART_TIMEOUT)
    Tart(transport).list_vms()
    path = transport.control_path()
    master = master_pid(transport)
    assert path is not None and master is not None
    transport.close()
    wait_for(lambda: not alive(master), timeout=10)
    assert not Path(path).parent.exists()
    assert transport.remote("echo", ["echo", "alone"]) == "alone\n"  # closed: its own login


def test_a_process_that_never_closes_its_transport_ends_the_master_at_exit(
        sshd: sshd_env.SshdEnv) -> None:
    settings = settings_for(sshd)
    script = (
        "import sys\n"
        "from vm_operator.tart.ssh import SshTransport\n"
        "from vm_operator.tart.ssh_settings import ssh_settings\n"
        "settings = ssh_settings(sys.argv[1], key=sys.argv[2], known_hosts=sys.argv[3])\n"
        "transport = SshTransport(settings, {'PATH': sys.argv[4]}, 20.0)\n"
        "transport.remote('true', ['true'])\n"
        "print(transport.control_path())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, sshd.target, str(settings.key), str(settings.known_hosts),
         ENV["PATH"]], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    directory = Path(done.stdout.strip()).parent
    assert directory.name.startswith("vmo-ssh-")
    assert not directory.exists()


def test_an_operator_over_ssh_logs_in_once_and_ends_its_master(
        sshd: sshd_env.SshdEnv, operator_factory: Callable[..., Operator],
        request: pytest.FixtureRequest) -> None:
    before = logins(sshd)
    # a temporary directory of its own, where its control socket's directory is made: its
    # masters are told from those of other test runs on the same machine by their socket path
    tmp = Path(tempfile.mkdtemp(prefix="vmo-t-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    operator = operator_factory(env={**sshd.settings_env(), "TMPDIR": str(tmp)}, seed=False)
    for _ in range(5):
        status, vms = operator.json("GET", "/vms")
        assert status == 200 and vms
        assert operator.json("GET", f"/vms/{vms[0]['name']}")[0] == 200
    assert logins(sshd) - before == 1
    masters = set(ssh_masters(under=f"{tmp}/"))
    assert len(masters) == 1, "not one shared connection"
    assert operator.stop()[0] == 0
    wait_for(lambda: not any(alive(pid) for pid in masters), timeout=10)


def ssh_masters(under: str = "/") -> list[int]:
    """PIDs of ssh masters whose control socket is in a vm-operator private directory (made
    in the directory ``under``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith(f"ssh: {under}") and "/vmo-ssh-" in cmdline and "[mux]" in cmdline:
            found.append(int(entry.name))
    return found
