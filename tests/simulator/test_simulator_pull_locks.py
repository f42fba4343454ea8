"""The simulator's locks during a pull, as Tart's (TART_FACTS.md; Tart's VMStorageOCI.pull and
Clone.swift): a pull holds only its registry host's lock, never the global lock on the Tart
home, so a clone from a local VM or a cached image copies while a pull downloads. (Clones wait
for each other's copy: test_simulator_lifecycle.py; pulls from one registry host wait for each
other: the same module.)"""

from __future__ import annotations

from collections.abc import Callable

from conftest import OCI_NAME, Operator
from support import wait_for

UBUNTU = "ghcr.io/cirruslabs/ubuntu:latest"  # not in the demo's cache
STALLED = {"TART_SIM_PULL_SECONDS": "0.3", "TART_SIM_PROGRESS_INTERVAL": "0.05",
           "TART_SIM_PULL_HANG": "10"}


def test_a_clone_copies_while_another_image_downloads(
        operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(env=STALLED)
    pull = op.ok("POST", "/images", 202, body={"ref": UBUNTU})["id"]
    wait_for(lambda: op.ok("GET", f"/operations/{pull}")["progress"] == 10,
             message="the pull downloads (stalled at 10%)")
    for source, name in (("ubuntu-runner", "from-vm"), (OCI_NAME, "from-image")):
        out = op.tart("clone", source, name, timeout=30)
        assert out.returncode == 0, out.stderr
    assert op.ok("GET", f"/operations/{pull}")["state"] == "running"
    listed = op.tart("list", "--format", "json").stdout
    assert '"from-vm"' in listed and '"from-image"' in listed
