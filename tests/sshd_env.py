"""A throw-away OpenSSH server on loopback whose user has the Tart simulator as ``tart``.

What the SSH transport tests talk to, standing in for a Mac with Remote Login on:

- Debian's ``/usr/sbin/sshd`` (package ``openssh-server``) started as root with its own
  config: ``127.0.0.1:<free port>``, a fresh ed25519 host key, public-key auth only, one
  allowed user, ``UsePAM no``, ``StrictModes no``, ``PidFile none``.
- That user is ``vm-operator-ssh-test``, a system account (created once with ``useradd``,
  no password, shell ``/bin/sh``, home ``/``); each server gives it its own environment with
  ``SetEnv``: HOME, TART_HOME, TART_SIM_SEED=demo, TART_SIM_CALL_LOG, TART_SIM_GUEST_PORT (a free
  port: the simulated guests listen there on loopback addresses; give it to the operator as
  VM_OPERATOR_READY_PORT) and a PATH whose first entry holds ``tart`` (a wrapper running the
  simulator packed as one file, ``vm_operator.simulator.onefile``). So concurrent
  test sessions never share a home, and nothing on the host outside ``/tmp/vmop-sshd-*`` is
  touched besides the account itself.
- A client key in ``authorized_keys``, a ``known_hosts`` pinning the host key, and a second
  ``known_hosts`` pinning a different key (for the mismatch test).

Run it by hand to poke at the transport (as root)::

    .venv/bin/python tests/sshd_env.py      # prints the VM_OPERATOR_* settings, Ctrl-C ends it
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from support import (
    REPO_ROOT,
    SYSTEM_PYTHONS,
    free_port,
    kill_tart_processes,
    processes_with_tart_home,
)

SSHD = "/usr/sbin/sshd"
USER = "vm-operator-ssh-test"
# The client's deadlines against this server. A login here is a fork and re-exec of sshd, a key
# exchange and a signature: under 1 s on an idle machine, over 25 s measured on the 2-core
# machine under a CI-like load. ssh's ConnectTimeout also bounds the wait for sshd's banner
# ("Connection timed out during banner exchange", which the operator answers 503
# tart-host-unreachable) and over SSH the Tart timeout bounds the call that logs in: both must
# allow a starved login. They cost nothing when the server answers; a test of the deadlines
# themselves sets its own (a refused connection fails at once whatever they are).
CONNECT_TIMEOUT = 30
TART_TIMEOUT = 60
APT_HINT = "apt-get install -y --no-install-recommends openssh-server openssh-client python3"


def simulator_file(target: Path) -> None:
    """The simulator as one executable file at ``target`` (the host has no vm_operator)."""
    if str(REPO_ROOT) not in sys.path:  # run by hand, or from scripts/bench.py
        sys.path.insert(0, str(REPO_ROOT))
    from vm_operator.simulator import onefile

    onefile.build(target)


def _world_usable(path: str) -> bool:
    """Can any user run this file (every directory on the way traversable)?"""
    real = Path(os.path.realpath(path))
    if not real.is_file() or not os.stat(real).st_mode & 0o001:
        return False
    return all(os.stat(parent).st_mode & 0o001 for parent in real.parents)


def user_python() -> str | None:
    return next((p for p in SYSTEM_PYTHONS if os.path.exists(p) and _world_usable(p)), None)


def unavailable_reason() -> str | None:
    """Why a throw-away sshd cannot run here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"the sshd fixture needs Linux (this is {sys.platform})"
    if not os.path.exists(SSHD):
        return f"{SSHD} is missing: {APT_HINT}"
    for tool in ("ssh", "ssh-keygen", "useradd"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is missing: {APT_HINT}"
    if os.geteuid() != 0:
        return "the sshd fixture must run as root (sshd switches to the test user)"
    if user_python() is None:
        return f"no python3 usable by other users at {', '.join(SYSTEM_PYTHONS)}: {APT_HINT}"
    return None


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    # "*" (not "!"): no password, but not locked, or sshd without PAM refuses every login.
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/", "--shell", "/bin/sh",
         "--password", "*", "--comment", "vm-operator SSH transport tests", USER],
        capture_output=True, text=True, timeout=60, check=False)
    if result.returncode not in (0, 9):  # 9: created meanwhile by a concurrent session
        raise RuntimeError(f"useradd {USER} failed: {result.stderr.strip()}")
    return pwd.getpwnam(USER)


def keygen(path: Path) -> str:
    """A fresh ed25519 key pair; returns the public key line."""
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vm-operator-test", "-f", str(path))
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class SshdEnv:
    root: Path
    port: int
    user: str
    key: Path  # the client's private key
    known_hosts: Path  # pins this server's host key
    wrong_known_hosts: Path  # pins another key for the same address
    home: Path  # the remote user's HOME (owned by it)
    tart_home: Path
    call_log: Path
    bin: Path
    sshd_log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    guest_port: int = 0  # TART_SIM_GUEST_PORT of the simulated guests on this "host"

    @property
    def target(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def settings_env(self) -> dict[str, str]:
        """The operator's settings for this server."""
        return {
            "VM_OPERATOR_TART_SSH": self.target,
            "VM_OPERATOR_SSH_KEY": str(self.key),
            "VM_OPERATOR_SSH_KNOWN_HOSTS": str(self.known_hosts),
            "VM_OPERATOR_SSH_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "VM_OPERATOR_TART_TIMEOUT": str(TART_TIMEOUT),
        }

    def ssh(self, command: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        """Run a shell command as the remote user (test set-up and inspection only)."""
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "LogLevel=ERROR", "-i", str(self.key), "-p", str(self.port),
                "--", f"{self.user}@127.0.0.1", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def start(self) -> None:
        """(Re)start sshd on the same port and keys."""
        self.stop()
        with open(self.sshd_log, "ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: {self.sshd_log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-2.0"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not answer: {self.sshd_log.read_text()}")
            time.sleep(0.05)

    def user_processes(self) -> list[int]:
        """PIDs of processes whose environment names this server's TART_HOME."""
        return processes_with_tart_home(self.tart_home)

    def cleanup(self) -> None:
        self.stop()
        kill_tart_processes(self.tart_home)  # simulated VMs still running on "the host"
        shutil.rmtree(self.root, ignore_errors=True)


def for_module() -> Iterator[SshdEnv]:
    """A test module's sshd (a module-scoped fixture yields from this): skipped with the reason
    when this machine cannot run one, a failure instead when VM_OPERATOR_REQUIRE_SSH=1 (CI)."""
    import pytest

    reason = unavailable_reason()
    if reason:
        if os.environ.get("VM_OPERATOR_REQUIRE_SSH") == "1":
            pytest.fail(f"VM_OPERATOR_REQUIRE_SSH=1 but {reason}")
        pytest.skip(f"SSH transport tier skipped: {reason}")
    server = create()
    try:
        yield server
    finally:
        server.cleanup()


def create() -> SshdEnv:
    """Build and start a server; the caller must ``cleanup()``."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    account = ensure_user()
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    root = Path(tempfile.mkdtemp(prefix="vmop-sshd-", dir="/tmp"))
    try:
        os.chmod(root, 0o755)
        client = root / "client"
        client.mkdir(mode=0o700)
        user_key = client / "id_ed25519"
        authorized = keygen(user_key)
        host_key = root / "ssh_host_ed25519_key"
        host_pub = keygen(host_key)
        other_pub = keygen(client / "other_host_key")
        port = free_port()
        guest_port = free_port()
        (root / "authorized_keys").write_text(authorized + "\n")
        os.chmod(root / "authorized_keys", 0o644)
        known = client / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}\n")
        wrong = client / "wrong_known_hosts"
        wrong.write_text(f"[127.0.0.1]:{port} {' '.join(other_pub.split()[:2])}\n")
        home = root / "home"
        tart_home = home / "tart"
        bin_dir = root / "bin"
        for d in (home, tart_home):
            d.mkdir()
            os.chown(d, account.pw_uid, account.pw_gid)
        bin_dir.mkdir()
        call_log = home / "tart-calls.log"
        simulator_file(bin_dir / "tart-simulator")
        wrapper = bin_dir / "tart"
        wrapper.write_text(f'#!/bin/sh\nexec {user_python()} -S {bin_dir / "tart-simulator"} "$@"\n')
        for f in (wrapper, bin_dir / "tart-simulator"):
            os.chmod(f, 0o755)
        os.chmod(bin_dir, 0o755)
        (root / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1:{port}
HostKey {host_key}
AuthorizedKeysFile {root / 'authorized_keys'}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers {USER}
UsePAM no
StrictModes no
PidFile none
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTTY no
MaxStartups 200:30:400
MaxSessions 50
LogLevel VERBOSE
SetEnv PATH={bin_dir}:/usr/bin:/bin HOME={home} TART_HOME={tart_home} TART_SIM_SEED=demo TART_SIM_CALL_LOG={call_log} TART_SIM_GUEST_PORT={guest_port}
""")
        env = SshdEnv(root, port, USER, user_key, known, wrong, home, tart_home, call_log, bin_dir,
                      root / "sshd.log", guest_port=guest_port)
        env.start()
        return env
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


if __name__ == "__main__":
    server = create()
    try:
        print("sshd listening; operator settings:")
        for key, value in server.settings_env().items():
            print(f"  export {key}={value}")
        print(f"remote HOME {server.home}; sshd log {server.sshd_log}; Ctrl-C stops it")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.cleanup()
