"""The reconciler's pure rules (core/reconcile_rules.py) at their edges:
the backoff, the failure count, the restart policies, the crash-loop threshold, timestamps
and the records it shows, table-driven (the class's passes are in test_reconciler.py)."""

from __future__ import annotations

import pytest

from vm_operator.core.reconcile_rules import (
    BACKOFF_CAP,
    CRASH_LOOP_AFTER,
    HEALTHY_AFTER,
    backoff_delay,
    failing_condition,
    failures_after_end,
    last_exit,
    later,
    restart_wanted,
    spec_view,
)
from vm_operator.store.specs import VmSpec


@pytest.mark.parametrize(("failures", "delay"), [
    (-1, 0.0), (0, 0.0), (1, 1.0), (2, 2.0), (5, 16.0), (9, 256.0), (10, BACKOFF_CAP),
    (31, BACKOFF_CAP), (32, BACKOFF_CAP), (10**6, BACKOFF_CAP),
])
def test_the_backoff_at_its_edges(failures: int, delay: float) -> None:
    assert backoff_delay(failures) == delay
    assert isinstance(backoff_delay(failures), float)


def test_the_backoff_never_overflows() -> None:
    """The exponent is capped: a failure count in the thousands is still the cap, not an
    OverflowError from 2.0 ** 1000000."""
    assert backoff_delay(2**40) == BACKOFF_CAP == 300.0


@pytest.mark.parametrize(("failures", "ran_for", "after"), [
    (0, 0.0, 1), (1, HEALTHY_AFTER - 0.001, 2), (1, HEALTHY_AFTER, 1),
    (7, HEALTHY_AFTER + 1, 1), (7, 1.0, 8),
])
def test_the_failure_count_after_an_end(failures: int, ran_for: float, after: int) -> None:
    assert failures_after_end(failures, ran_for) == after


@pytest.mark.parametrize(("policy", "code", "wanted"), [
    ("on-failure", 2, True), ("on-failure", -15, True), ("on-failure", 0, False),
    ("never", 2, False), ("always", 0, True),
])
def test_the_restart_policies(policy: str, code: int | None, wanted: bool) -> None:
    assert restart_wanted(policy, code) is wanted  # type: ignore[arg-type]


@pytest.mark.parametrize(("failures", "condition"), [
    (1, "backing-off"), (CRASH_LOOP_AFTER - 1, "backing-off"), (CRASH_LOOP_AFTER, "crash-loop"),
    (CRASH_LOOP_AFTER + 5, "crash-loop"),
])
def test_a_crash_loop_after_three_failures(failures: int, condition: str) -> None:
    assert CRASH_LOOP_AFTER == 3
    assert failing_condition(failures) == condition


@pytest.mark.parametrize(("stamp", "seconds", "expected"), [
    ("2026-03-01T10:00:00.000Z", 0.0, "2026-03-01T10:00:00.000Z"),
    ("2026-03-01T10:00:00.500Z", 0.4996, "2026-03-01T10:00:01.000Z"),
    ("2026-03-01T10:00:00.007Z", 2.5, "2026-03-01T10:00:02.507Z"),
    ("2026-02-28T23:59:59.999Z", 0.001, "2026-03-01T00:00:00.000Z"),
    ("2024-02-28T23:59:59.000Z", 1.0, "2024-02-29T00:00:00.000Z"),  # a leap day, in UTC
    ("2026-03-01T10:00:00.000Z", 3600.0, "2026-03-01T11:00:00.000Z"),
])
def test_a_timestamp_some_seconds_later(stamp: str, seconds: float, expected: str) -> None:
    assert later(stamp, seconds) == expected


@pytest.mark.parametrize(("code", "exit_code", "signal"), [
    (0, 0, None), (1, 1, None), (255, 255, None), (-1, None, 1), (-15, None, 15),
    (None, None, None),
])
def test_a_negative_code_is_the_signal(code: int | None, exit_code: int | None,
                                       signal: int | None) -> None:
    assert last_exit(code, "2026-01-01T00:00:00.000Z") == {
        "exit_code": exit_code, "signal": signal, "at": "2026-01-01T00:00:00.000Z"}


def test_the_spec_a_detail_shows() -> None:
    assert spec_view(None) is None
    spec = VmSpec("ci", False, "2026-01-01T00:00:00.000Z", "op", "running", "always", "config")
    assert spec_view(spec) == {"desired": "running", "restart": "always", "source": "config",
                               "created_at": "2026-01-01T00:00:00.000Z"}
