"""A VM's configuration (``tart get``) is read once and kept while nothing says it changed;
its state (``tart list``) stays on the short cache. Counted on the fake Tart's calls."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import SAFETY, FakeClock, FakeStore, FakeTart
from support import startup_refusal

from vm_operator.config import load_config
from vm_operator.core.cache import FreshCache
from vm_operator.core.operations import OperationQueue
from vm_operator.core.service import Settings, VmService
from vm_operator.core.vm_manage import VmPatch
from vm_operator.store.specs import SpecStore
from vm_operator.tart.names import VmName

CACHE_TTL = 1.0
CONFIG_TTL = 300.0
MAC = VmName("mac")


class Core:
    def __init__(self, directory: Path, config_ttl: float = CONFIG_TTL) -> None:
        self.tart = FakeTart()
        self.clock = FakeClock()
        operations = OperationQueue(lambda: "2026-01-01T00:00:00.000Z")
        specs = SpecStore(directory / "specs", directory)
        settings = Settings(cache_ttl=CACHE_TTL, start_timeout=30.0, poll_interval=0.001,
                            max_running=2, config_ttl=config_ttl)
        self.service = VmService(self.tart, FakeStore(), self.clock, operations, specs,
                                 lambda exc: type(exc).__name__, settings)

    def past_state_ttl(self) -> None:
        self.clock.advance(CACHE_TTL + 0.1)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    core = Core(tmp_path)
    core.tart.add("mac")
    core.tart.add("linux", os="linux")
    yield core
    core.tart.release_all()


def test_the_configuration_is_read_once_while_the_state_stays_fresh(core: Core) -> None:
    assert core.service.describe(MAC)["state"] == "stopped"
    for _ in range(20):  # a minute of a dashboard polling every three seconds
        core.clock.advance(3.0)
        core.service.describe(MAC)
    core.tart.vms["mac"].state = "running"  # `tart run` typed by hand
    core.past_state_ttl()
    described = core.service.describe(MAC)
    assert described["state"] == "running"
    assert described["cpu"] == 4
    assert core.tart.count("get", "mac") == 1
    assert core.tart.count("list") >= 21


def test_a_start_or_a_stop_keeps_the_configuration(core: Core) -> None:
    core.service.describe(MAC)
    core.service.start("mac")
    assert core.service.describe(MAC)["state"] == "running"
    core.service.stop("mac", 5)
    assert core.service.describe(MAC)["state"] == "stopped"
    assert core.tart.count("get", "mac") == 1  # the slot cap's "is it macOS?" included


def test_a_change_through_the_api_is_seen_at_once_and_only_for_that_vm(core: Core) -> None:
    core.service.describe(MAC)
    core.service.describe(VmName("linux"))
    changed = core.service.manage.patch(MAC, VmPatch(cpu=8))
    assert changed["cpu"] == 8
    assert core.service.describe(MAC)["cpu"] == 8
    core.service.describe(VmName("linux"))
    assert core.tart.count("get", "mac") == 2
    assert core.tart.count("get", "linux") == 1


def test_a_tart_set_typed_by_hand_is_seen_within_the_bound(core: Core) -> None:
    core.service.describe(MAC)
    core.tart.vms["mac"].cpu = 6  # `tart set mac --cpu 6` typed by hand
    core.clock.advance(CONFIG_TTL + 1)
    assert core.service.describe(MAC)["cpu"] == 6


def test_past_half_the_bound_the_configuration_is_refreshed_ahead(core: Core) -> None:
    core.service.describe(MAC)
    core.tart.vms["mac"].cpu = 6
    core.clock.advance(CONFIG_TTL * 0.6)
    assert core.service.describe(MAC)["cpu"] == 4  # at once from the cache; refreshed behind
    deadline = time.monotonic() + SAFETY
    while core.service.describe(MAC)["cpu"] != 6:  # until the refresh behind has landed
        assert time.monotonic() < deadline, "the configuration was never refreshed"
        time.sleep(0.001)
    assert core.tart.count("get", "mac") == 2


def test_a_vm_a_listing_no_longer_shows_loses_its_configuration(core: Core) -> None:
    core.service.describe(MAC)
    del core.tart.vms["mac"]  # `tart delete mac` by hand...
    core.past_state_ttl()
    assert "mac" not in [vm["name"] for vm in core.service.list_vms()]
    core.tart.add("mac", os="linux")  # ...and `tart clone` of another VM under its name
    core.past_state_ttl()
    assert core.service.describe(MAC)["os"] == "linux"
    assert core.tart.count("get", "mac") == 2


def test_a_bound_of_zero_reads_tart_get_every_time(tmp_path: Path) -> None:
    core = Core(tmp_path, config_ttl=0)
    core.tart.add("mac")
    core.service.describe(MAC)
    core.service.describe(MAC)
    assert core.tart.count("get", "mac") == 2


# --- the setting ------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], {}, 300.0),
    ([], {"VM_OPERATOR_CONFIG_TTL": "60"}, 60.0),
    (["--config-ttl", "0"], {"VM_OPERATOR_CONFIG_TTL": "60"}, 0.0),
    ([], {"VM_OPERATOR_CONFIG_TTL": " "}, 300.0),
])
def test_the_config_ttl_setting(argv: list[str], env: dict[str, str], expected: float) -> None:
    assert load_config(argv, {"HOME": "/home/u", **env}).config_ttl == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("-1", "vm-operator: VM_OPERATOR_CONFIG_TTL: must be from 0 to 86400, not -1"),
    ("forever", "vm-operator: VM_OPERATOR_CONFIG_TTL: must be a number"),
    ("nan", "vm-operator: VM_OPERATOR_CONFIG_TTL: must be a number"),
])
def test_a_bad_config_ttl_stops_start_up(value: str, expected: str) -> None:
    refusal = startup_refusal({"HOME": "/home/u", "VM_OPERATOR_CONFIG_TTL": value})
    assert refusal.startswith(expected)


# --- the listing: one fetch per burst of a dashboard ------------------------------------------


def test_a_listing_that_only_just_arrived_is_not_refreshed_at_once() -> None:
    """A slow fetch (0.7 s of a 1 s bound) ends while a dashboard's burst still runs: the
    burst's later requests take the new answer; it is old by its start, but it has only just
    arrived, and refreshing it again would double the Tart calls of a 1 Hz poller."""
    clock = FakeClock(start=0.0)
    fetches = []

    def slow_list() -> int:
        fetches.append(clock.monotonic())
        clock.advance(0.7)
        return len(fetches)

    cache = FreshCache(slow_list, clock.monotonic)

    def read() -> int:
        now = clock.monotonic()
        return cache.get(now - CACHE_TTL, now - CACHE_TTL / 2)

    assert read() == 1  # the burst's first request waits for the fetch (0 .. 0.7 s)
    clock.advance(0.05)
    assert read() == 1  # 0.75 s: past half the bound since the fetch began, just arrived
    clock.advance(0.2)
    assert read() == 1  # 0.95 s: still within the bound
    assert len(fetches) == 1
    clock.advance(0.3)  # the next burst, 1.25 s after the fetch began: a fetch, and the answer
    assert read() == 2  # is never older than the bound
