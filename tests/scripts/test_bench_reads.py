"""The read path's measuring parts of scripts/bench.py, without a whole run: the load client's
conditional GET against a real operator, and the pure figures (p99 ratios, the soak's
baseline)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType

import pytest
from conftest import Operator
from support import REPO_ROOT


@pytest.fixture(scope="module")
def bench() -> Iterator[dict[str, ModuleType]]:
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        from benchmark import load, reads
        yield {"load": load, "reads": reads}
    finally:
        sys.path.remove(str(REPO_ROOT / "scripts"))


@pytest.mark.parametrize("client", ["raw", "http.client"])
def test_the_load_client_sends_back_the_etag_it_last_saw(
        bench: dict[str, ModuleType], operator: Operator, client: str) -> None:
    load = bench["load"]
    conn = load.CLIENTS[client](("127.0.0.1", operator.port), 30.0)
    try:
        plain = load.request_bytes("GET", "/vms", operator.port)
        status, body = conn.request(plain, "GET", "/vms")
        assert status == 200 and body
        etag = conn.etag
        assert etag and etag.startswith('"'), etag
        tagged = load.request_bytes("GET", "/vms", operator.port, etag)
        assert b"\r\nIf-None-Match: " + etag.encode() + b"\r\n" in tagged
        status, body = conn.request(tagged, "GET", "/vms")
        assert (status, body) == (304, b"")
        stale = load.request_bytes("GET", "/vms", operator.port, '"not-the-listing"')
        status, body = conn.request(stale, "GET", "/vms")  # a changed listing: a 200, its ETag
        assert status == 200 and body and conn.etag == etag
    finally:
        conn.close()


def test_the_p99_ratio_is_the_median_of_the_rounds(bench: dict[str, ModuleType]) -> None:
    def figures(*p99: float | None) -> list[dict[str, float | None]]:
        return [{"p99_ms": value} for value in p99]

    ratio = bench["reads"].p99_ratio
    assert ratio(figures(2.0, 3.0, 10.0), figures(1.0, 1.0, 1.0)) == 3.0
    assert ratio(figures(2.0, None), figures(1.0, 1.0)) == 2.0
    assert ratio(figures(2.0), figures(0.0)) is None


@pytest.mark.parametrize(("samples", "seconds", "quick", "baseline"), [
    ([(0.0, 30.0), (30.0, 31.0), (60.0, 32.0), (600.0, 32.5)], 600.0, False, (60.0, 32.0)),
    ([(0.0, 30.0), (30.0, 31.0), (90.0, 32.0)], 600.0, False, (90.0, 32.0)),
    ([(0.0, 30.0), (1.0, 31.0), (5.0, 31.5)], 5.0, True, (0.0, 30.0)),
    ([(0.0, 30.0), (30.0, 31.0)], 30.0, False, (0.0, 30.0)),  # shorter than twice the warm-up
    ([], 600.0, False, None),
])
def test_the_soak_compares_its_end_with_the_first_sample_after_the_warm_up(
        bench: dict[str, ModuleType], samples: list[tuple[float, float]], seconds: float,
        quick: bool, baseline: tuple[float, float] | None) -> None:
    assert bench["reads"].soak_baseline(samples, seconds, quick) == baseline
