"""The user's own OpenSSH into a guest through the operator: ``ssh -o ProxyCommand='vm-operator
proxy %h PORT'``, ``vm-operator ssh`` and ``scp``, against a real ``sshd`` standing as the
guest's SSH port (the simulator's guest relays that port to it: TART_SIM_GUEST_SERVICES), its
host key checked under the VM's name. Also ``vm-operator port-forward``."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sshd_env
from conftest import Operator, free_port
from support import client_env

TOKEN = "ssh-through-tunnel-token-0123456789"
VM = "ubuntu-runner"


@pytest.fixture(scope="module")
def sshd() -> Iterator[sshd_env.SshdEnv]:
    yield from sshd_env.for_module()


@pytest.fixture
def guest_ssh_port() -> int:
    return free_port()


@pytest.fixture
def echo_port() -> int:
    return free_port()


@pytest.fixture
def op(operator_factory, sshd: sshd_env.SshdEnv, guest_ssh_port: int, echo_port: int) -> Operator:
    operator = operator_factory(env={
        "VM_OPERATOR_TOKEN": TOKEN,
        "TART_SIM_GUEST_SERVICES": f"{guest_ssh_port}={sshd.port},{echo_port}=echo"})
    status, body = operator.json("POST", f"/vms/{VM}/start?wait=ready&timeout=60",
                                 {"Authorization": f"Bearer {TOKEN}"}, timeout=90)
    assert status == 200, body
    return operator


@pytest.fixture
def proxy_env(tmp_path: Path, op: Operator) -> dict[str, str]:
    """PATH with a ``vm-operator`` (this checkout's), the operator's URL and token."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "vm-operator"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m vm_operator "$@"\n')
    wrapper.chmod(0o755)
    return client_env(PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
                      VM_OPERATOR_URL=op.url, VM_OPERATOR_TOKEN=TOKEN)


def known_hosts(tmp_path: Path, key_file: Path, name: str = VM) -> Path:
    """A known_hosts pinning ``key_file``'s key under the VM's name (what ssh checks)."""
    kind, key = key_file.read_text().split()[:2]
    path = tmp_path / f"known_hosts-{key_file.name}"
    path.write_text(f"{name} {kind} {key}\n")
    return path


def ssh_options(sshd: sshd_env.SshdEnv, known: Path) -> list[str]:
    return ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-i", str(sshd.key)]


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, check=False)


def test_openssh_through_vm_operator_proxy_checks_the_host_key_and_runs_a_command(
        sshd: sshd_env.SshdEnv, proxy_env: dict[str, str], guest_ssh_port: int,
        tmp_path: Path) -> None:
    proxy = ["-o", f"ProxyCommand=vm-operator proxy %h {guest_ssh_port}"]
    good = known_hosts(tmp_path, sshd.root / "ssh_host_ed25519_key.pub")
    result = run(["ssh", *proxy, *ssh_options(sshd, good), f"{sshd.user}@{VM}",
                  "echo hello from the guest"], proxy_env)
    assert (result.returncode, result.stdout) == (0, "hello from the guest\n"), result.stderr
    wrong = known_hosts(tmp_path, sshd.root / "client" / "other_host_key.pub")
    result = run(["ssh", *proxy, *ssh_options(sshd, wrong), f"{sshd.user}@{VM}", "true"],
                 proxy_env)
    assert result.returncode == 255 and "host key" in result.stderr.lower(), result.stderr


def test_scp_copies_a_file_through_the_tunnel(sshd: sshd_env.SshdEnv,
                                              proxy_env: dict[str, str], guest_ssh_port: int,
                                              tmp_path: Path) -> None:
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    target = sshd.home / f"copied-{os.getpid()}.bin"
    good = known_hosts(tmp_path, sshd.root / "ssh_host_ed25519_key.pub")
    try:
        result = run(["scp", "-O", "-o", f"ProxyCommand=vm-operator proxy %h {guest_ssh_port}",
                      *ssh_options(sshd, good), str(source), f"{sshd.user}@{VM}:{target}"],
                     proxy_env)
        assert result.returncode == 0, result.stderr
        assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(
            source.read_bytes()).digest()
    finally:
        target.unlink(missing_ok=True)


def test_vm_operator_ssh_runs_the_system_ssh_through_the_operator(
        sshd: sshd_env.SshdEnv, proxy_env: dict[str, str], guest_ssh_port: int,
        tmp_path: Path) -> None:
    good = known_hosts(tmp_path, sshd.root / "ssh_host_ed25519_key.pub")
    result = run(["vm-operator", "ssh", VM, "--user", sshd.user, "--port", str(guest_ssh_port),
                  "--", *ssh_options(sshd, good), "echo", "via", "vm-operator", "ssh"],
                 proxy_env)
    assert (result.returncode, result.stdout) == (0, "via vm-operator ssh\n"), result.stderr


def test_port_forward_carries_each_local_connection_to_the_guest(
        proxy_env: dict[str, str], echo_port: int) -> None:
    local = free_port()
    proc = subprocess.Popen(["vm-operator", "port-forward", VM, f"{local}:{echo_port}"],
                            env=proxy_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(f"forwarding 127.0.0.1:{local} -> ")
        for round_ in range(3):  # a tunnel per connection
            payload = os.urandom(200_000) + bytes([round_])
            with socket.create_connection(("127.0.0.1", local), timeout=20) as conn:
                conn.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    chunk = conn.recv(65536)
                    assert chunk, "the tunnel ended early"
                    got += chunk
            assert got == payload
    finally:
        proc.terminate()
        proc.wait(10)
