"""The lifecycle commands over the SSH transport, against a real sshd on loopback whose user
has the simulator as ``tart`` (tests/sshd_env.py): a pull's progress streams back through ssh,
killing the local ssh stops Tart on the host (STREAM_SCRIPT's stdin watcher), and the disk of
the host's Tart home is read with df. Skipped like tests/tart/test_ssh_transport.py without sshd or
root, unless VM_OPERATOR_REQUIRE_SSH=1."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import sshd_env
from support import wait_for

from vm_operator.tart.commands import Tart
from vm_operator.tart.errors import TartCommandError, TartImageMissing, TartInvalidResources
from vm_operator.tart.names import VmName
from vm_operator.tart.progress import ProgressChanged, ProgressParser
from vm_operator.tart.ssh import SshTransport
from vm_operator.tart.ssh_settings import ssh_settings
from vm_operator.tart.transport import Kill

UBUNTU = VmName("ghcr.io/cirruslabs/ubuntu:latest")
SONOMA = VmName("ghcr.io/cirruslabs/macos-sonoma-base:latest")  # another image, never pulled


@pytest.fixture(scope="module")
def host() -> Iterator[sshd_env.SshdEnv]:
    yield from sshd_env.for_module()


def knobs(host: sshd_env.SshdEnv, **settings: str) -> None:
    """The simulator's knobs on the host: set in its ``tart`` wrapper (ssh passes no env)."""
    assigned = " ".join(f"{key}={value}" for key, value in settings.items())
    (host.bin / "tart").write_text(
        f'#!/bin/sh\n{assigned} exec {sshd_env.user_python()} -S {host.bin / "tart-simulator"} '
        '"$@"\n')


def tart_on(host: sshd_env.SshdEnv) -> Tart:
    made = ssh_settings(host.target, key=str(host.key), known_hosts=str(host.known_hosts),
                        connect_timeout=sshd_env.CONNECT_TIMEOUT)
    return Tart(SshTransport(made, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                             sshd_env.TART_TIMEOUT),
                pull_timeout=60)


def test_a_pull_streams_its_progress_through_ssh(host: sshd_env.SshdEnv) -> None:
    knobs(host, TART_SIM_PULL_SECONDS="0.6", TART_SIM_PROGRESS_INTERVAL="0.1")
    parser = ProgressParser()
    percents: list[int] = []
    tart_on(host).pull(UBUNTU, on_output=lambda chunk: percents.extend(
        e.percent for e in parser.feed(chunk) if isinstance(e, ProgressChanged)))
    assert percents[0] == 0 and percents[-1] == 100 and percents == sorted(percents)
    assert len(percents) > 2


def test_killing_the_local_ssh_stops_tart_on_the_host(host: sshd_env.SshdEnv) -> None:
    knobs(host, TART_SIM_PULL_SECONDS="0.3", TART_SIM_PROGRESS_INTERVAL="0.05",
          TART_SIM_PULL_HANG="30")
    kills: list[Kill] = []
    failures: list[BaseException] = []
    parser = ProgressParser()
    percents: list[int] = []

    def output(chunk: bytes) -> None:
        percents.extend(e.percent for e in parser.feed(chunk) if isinstance(e, ProgressChanged))

    def clone() -> None:
        try:
            tart_on(host).clone(SONOMA, VmName("remote-new"), on_output=output,
                                on_started=kills.append)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failures.append(exc)

    worker = threading.Thread(target=clone)
    worker.start()
    wait_for(lambda: 30 in percents, timeout=20, message="the remote pull stalled at 30%")
    assert host.user_processes()  # Tart runs on the host
    kills[0]()
    worker.join(20)
    assert not worker.is_alive()
    assert isinstance(failures[0], TartCommandError)
    wait_for(lambda: host.user_processes() == [], timeout=20,
             message="the host's Tart stopped once the local ssh was killed")
    knobs(host)
    assert "remote-new" not in [vm["name"] for vm in tart_on(host).list_vms()]


def test_refusals_come_back_classified_over_ssh(host: sshd_env.SshdEnv) -> None:
    knobs(host)
    tart = tart_on(host)
    with pytest.raises(TartImageMissing):
        tart.clone(VmName("ghcr.io/cirruslabs/nothing:1"), VmName("x"))
    with pytest.raises(TartInvalidResources):
        tart.set(VmName("macos-sequoia-base"), disk_gb=1)


def test_the_disk_of_the_hosts_tart_home(host: sshd_env.SshdEnv) -> None:
    disk = tart_on(host).host_disk()
    assert disk.path == str(host.tart_home)
    assert 0 < disk.free_bytes <= disk.total_bytes
