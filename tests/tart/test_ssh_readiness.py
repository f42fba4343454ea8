"""Readiness over the SSH transport: the connection to the guest is tried ON THE HOST (where the
guests' network is), by the fixed PROBE_SCRIPT through ssh, not from the operator's machine.

The host is the throw-away sshd of tests/sshd_env.py (this Debian box, so the guests' loopback
addresses are reachable from both sides). To tell where the probe ran, the host's PATH gets a
``bash`` that notes its arguments in the host user's home, then runs the real /bin/bash: the
probe's ``bash -c 'exec 3<>/dev/tcp/IP/PORT' … IP PORT`` shows up there.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sshd_env

UBUNTU = "ubuntu-runner"


@pytest.fixture(scope="module")
def sshd() -> Iterator[sshd_env.SshdEnv]:
    yield from sshd_env.for_module()


@pytest.fixture
def host_bash_log(sshd: sshd_env.SshdEnv) -> Iterator[Path]:
    """A ``bash`` first on the host's PATH that logs each call's arguments."""
    log = sshd.home / "bash-calls.log"
    log.write_text("")
    os.chmod(log, 0o666)
    wrapper = sshd.bin / "bash"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>{log}\nexec /bin/bash "$@"\n')
    os.chmod(wrapper, 0o755)
    try:
        yield log
    finally:
        wrapper.unlink()


def operator_over_ssh(operator_factory: Callable[..., Any], sshd: sshd_env.SshdEnv,
                      ready_port: int) -> Any:
    env = {**sshd.settings_env(), "VM_OPERATOR_READY_PORT": str(ready_port)}
    return operator_factory(env=env, args=["--tart", "tart"])


def accepts(ip: str, port: int) -> bool:
    assert ipaddress.ip_address(ip).is_loopback
    try:
        with socket.create_connection((ip, port), timeout=5):
            return True
    except OSError:
        return False


def test_over_ssh_start_wait_ready_probes_on_the_host(operator_factory, sshd, host_bash_log):
    op = operator_over_ssh(operator_factory, sshd, sshd.guest_port)
    try:
        status, body = op.json("POST", f"/vms/{UBUNTU}/start?wait=ready&timeout=60", timeout=90)
        assert status == 200, body
        assert body["ready"] is True and body["changed"] is True
        ip = body["ip"]
        assert ipaddress.ip_address(ip).is_loopback and accepts(ip, sshd.guest_port)
        probes = [line for line in host_bash_log.read_text().splitlines() if "/dev/tcp/" in line]
        assert probes and all(line.endswith(f" {ip} {sshd.guest_port}") for line in probes)
        status, detail = op.json("GET", f"/vms/{UBUNTU}")
        assert status == 200 and detail["ready"] is True and detail["ip"] == ip
    finally:
        op.json("POST", f"/vms/{UBUNTU}/stop?timeout=2")


def test_over_ssh_a_closed_port_on_the_host_is_a_504_naming_the_connection(
        operator_factory, sshd, host_bash_log):
    op = operator_over_ssh(operator_factory, sshd, 1)  # nothing listens on port 1
    try:
        status, doc = op.json("POST", f"/vms/{UBUNTU}/start?wait=ready&timeout=3", timeout=60)
        assert status == 504 and doc["type"] == "/problems/ready-timeout", doc
        assert doc["waiting_for"] == "connection" and doc["port"] == 1
        assert f" {doc['ip']} 1" in host_bash_log.read_text()  # tried there, refused there
    finally:
        op.json("POST", f"/vms/{UBUNTU}/stop?timeout=2")
