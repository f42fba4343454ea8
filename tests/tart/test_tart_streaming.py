"""The Tart adapter's long calls against the simulator as a real subprocess: a pull's output
arrives while it runs, the kill switch kills Tart's whole process group, the timeout too, and
Tart's refusals of the lifecycle commands come back classified."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from conftest import SIMULATOR
from support import processes_with_tart_home, wait_for

from vm_operator.store.state import StateStore
from vm_operator.tart.commands import Tart
from vm_operator.tart.errors import (
    TartCommandError,
    TartImageMissing,
    TartInvalidResources,
    TartNotLocalName,
    TartTimeout,
    TartVmIsRunning,
    TartVmMissing,
)
from vm_operator.tart.local import LocalTransport
from vm_operator.tart.progress import ProgressChanged, ProgressParser
from vm_operator.tart.transport import Kill

UBUNTU = "ghcr.io/cirruslabs/ubuntu:latest"


def tart_for(tmp_path: Path, pull_timeout: float = 30.0, **knobs: str) -> Tart:
    env = {"PATH": os.environ["PATH"], "TART_HOME": str(tmp_path / "tart"),
           "TART_SIM_SEED": "demo", "TART_SIM_PULL_SECONDS": "0.6",
           "TART_SIM_PROGRESS_INTERVAL": "0.1", **knobs}
    return Tart(LocalTransport(str(SIMULATOR), StateStore(str(tmp_path / "state")), env, 10.0),
                pull_timeout)


def test_a_pull_hands_its_progress_over_while_it_runs(tmp_path: Path) -> None:
    tart = tart_for(tmp_path)
    parser = ProgressParser()
    percents: list[int] = []
    arrived: list[float] = []

    def output(chunk: bytes) -> None:
        arrived.append(time.monotonic())
        percents.extend(e.percent for e in parser.feed(chunk) if isinstance(e, ProgressChanged))

    tart.pull(UBUNTU, on_output=output)
    assert percents[0] == 0 and percents[-1] == 100 and len(percents) > 2
    assert percents == sorted(percents)
    assert len(arrived) > 2  # in pieces, not all at the end
    assert [image.ref for image in tart.list_images() if image.kind == "tag"].count(UBUNTU) == 1


def test_the_simulator_logs_when_it_printed_each_percentage(tmp_path: Path) -> None:
    """TART_SIM_PROGRESS_LOG (for scripts/bench.py's progress freshness): one line per
    percentage printed, with the time it was printed."""
    progress_log = tmp_path / "progress.log"
    tart = tart_for(tmp_path, TART_SIM_PROGRESS_LOG=str(progress_log))
    parser = ProgressParser()
    printed: list[int] = []
    tart.pull(UBUNTU, on_output=lambda chunk: printed.extend(
        e.percent for e in parser.feed(chunk) if isinstance(e, ProgressChanged)))
    lines = [line.split() for line in progress_log.read_text().splitlines()]
    assert [int(percent) for _, percent in lines] == printed
    times = [float(when) for when, _ in lines]
    assert times == sorted(times)


def test_a_clone_makes_the_vm(tmp_path: Path) -> None:
    tart = tart_for(tmp_path)
    tart.clone("ubuntu-runner", "copy")
    tart.set("copy", cpu=3, memory_mb=3072, disk_gb=30, display="1280x800", random_mac=True)
    assert tart.get("copy")["cpu"] == 3 and tart.get("copy")["memory_mb"] == 3072
    tart.delete("copy")
    assert "copy" not in [vm["name"] for vm in tart.list_vms()]


def test_the_kill_switch_kills_tarts_process_group(tmp_path: Path) -> None:
    tart = tart_for(tmp_path, TART_SIM_PULL_HANG="30")
    kills: list[Kill] = []
    failure: list[BaseException] = []

    def pull() -> None:
        try:
            tart.clone(UBUNTU, "new", on_started=kills.append)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failure.append(exc)

    worker = threading.Thread(target=pull)
    worker.start()
    home = tmp_path / "tart"
    wait_for(lambda: kills and processes_with_tart_home(home), message="clone started")
    kills[0]()
    worker.join(10)
    assert not worker.is_alive()
    assert isinstance(failure[0], TartCommandError) and failure[0].exit_code == -9
    assert processes_with_tart_home(home) == []
    assert "new" not in [vm["name"] for vm in tart.list_vms()]
    kills[0]()  # after the reaping: does nothing


def test_a_long_call_past_its_timeout_is_killed(tmp_path: Path) -> None:
    tart = tart_for(tmp_path, pull_timeout=1.0, TART_SIM_PULL_HANG="10")
    with pytest.raises(TartTimeout):
        tart.pull(UBUNTU)
    # the group is killed at the timeout; the last of it may take a moment to be gone
    wait_for(lambda: processes_with_tart_home(tmp_path / "tart") == [],
             message="the timed-out pull and its processes are gone")


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (lambda t: t.set("macos-sequoia-base", cpu=0), TartInvalidResources),
        (lambda t: t.set("macos-sequoia-base", disk_gb=10), TartInvalidResources),
        (lambda t: t.clone("ubuntu-runner", "a/b"), TartNotLocalName),
        (lambda t: t.clone("ghcr.io/cirruslabs/nothing:1", "x"), TartImageMissing),
        (lambda t: t.delete("missing"), TartVmMissing),
        (lambda t: t.pull("ghcr.io/cirruslabs/nothing:1"), TartImageMissing),
    ],
)
def test_tarts_refusals_come_back_classified(tmp_path: Path, call: object,
                                             kind: type[TartCommandError]) -> None:
    with pytest.raises(kind):
        call(tart_for(tmp_path))  # type: ignore[operator]


def test_a_running_vm_is_not_deleted(tmp_path: Path) -> None:
    tart = tart_for(tmp_path)
    run = tart.run("ubuntu-runner", suspendable=False)
    try:
        wait_for(lambda: any(vm["name"] == "ubuntu-runner" and vm["state"] == "running"
                             for vm in tart.list_vms()), message="running")
        with pytest.raises(TartVmIsRunning):
            tart.delete("ubuntu-runner")
    finally:
        tart.stop("ubuntu-runner", 2)
        run.wait()


def test_the_disk_of_the_tart_home(tmp_path: Path) -> None:
    disk = tart_for(tmp_path).host_disk()
    assert disk.path == str(tmp_path / "tart")
    assert 0 < disk.free_bytes <= disk.total_bytes
