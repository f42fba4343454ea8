"""When a read refreshes a cached answer ahead: once about twice its fetch's time is left of
the TTL (``refresh_age``), so steady reads never wait for Tart and a quick ``tart list`` runs
about once per three quarters of the TTL, not once per half of it."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import FakeClock, FakeStore, FakeTart
from support import wait_for

from vm_operator.core.cache import FreshCache, refresh_age
from vm_operator.core.inventory import Inventory

TTL = 1.0


@pytest.mark.parametrize(("ttl", "fetch_seconds", "age"), [
    (1.0, 0.0, 0.75),    # an instant fetch: a quarter of the TTL is left, never less
    (1.0, 0.1, 0.75),    # twice 0.1 is under the quarter: the quarter still
    (1.0, 0.2, 0.6),     # twice the fetch's time left
    (1.0, 0.25, 0.5),    # half the TTL: never earlier
    (1.0, 3.0, 0.5),     # a fetch slower than the TTL: half of it, as before
    (2.0, 0.1, 1.5),
    (10.0, 1.0, 7.5),    # a quarter of a long TTL is more than twice the fetch
    (10.0, 2.0, 6.0),
])
def test_a_value_is_refreshed_when_about_twice_its_fetch_is_left(
        ttl: float, fetch_seconds: float, age: float) -> None:
    assert refresh_age(ttl, fetch_seconds) == pytest.approx(age)


def test_the_cache_knows_how_long_its_last_fetch_took() -> None:
    clock = FakeClock()

    def fetch() -> int:
        clock.advance(0.3)
        return 1

    cache = FreshCache(fetch, clock.monotonic)
    assert cache.fetch_seconds == 0.0
    cache.get(clock.monotonic())
    assert cache.fetch_seconds == pytest.approx(0.3, abs=1e-3)


class TimedTart(FakeTart):
    """A Tart whose ``tart list`` takes ``took`` seconds of the fake clock."""

    def __init__(self, clock: FakeClock, took: float) -> None:
        super().__init__()
        self.clock, self.took = clock, took

    def list_vms(self) -> list[dict[str, Any]]:
        self.clock.advance(self.took)
        return super().list_vms()


def listing(took: float) -> tuple[Inventory, TimedTart, FakeClock]:
    clock = FakeClock()
    tart = TimedTart(clock, took)
    tart.add("mac")
    inventory = Inventory(tart, FakeStore(), clock, TTL, 300.0)
    inventory.list_vms()  # fetched: began at 0 (of this test), ended ``took`` later
    assert tart.count("list") == 1
    return inventory, tart, clock


def test_a_quick_listing_is_not_refreshed_at_half_the_ttl_but_at_three_quarters() -> None:
    inventory, tart, clock = listing(took=0.0)
    clock.advance(0.7)
    assert [vm["name"] for vm in inventory.list_vms()] == ["mac"]
    assert tart.count("list") == 1  # 0.7 old: kept, nothing started
    clock.advance(0.1)
    assert [vm["name"] for vm in inventory.list_vms()] == ["mac"]  # 0.8 old: served at once...
    wait_for(lambda: tart.count("list") == 2, message="...and refreshed in the background")


def test_a_slow_listing_is_refreshed_at_half_the_ttl() -> None:
    inventory, tart, clock = listing(took=0.3)  # twice 0.3 is more than half the TTL
    clock.advance(0.15)  # 0.45 since it began
    inventory.list_vms()
    assert tart.count("list") == 1
    clock.advance(0.2)  # 0.65 since it began, kept as long as it took to fetch
    inventory.list_vms()
    wait_for(lambda: tart.count("list") == 2, message="refreshed ahead past half the TTL")
