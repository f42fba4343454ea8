"""The reconciler's rules, pure: the backoff, the failure count, the restart policies, the
crash-loop threshold, and the timestamps and records it shows (``core/reconciler.py`` acts on
them; ``core/reconcile_state.py`` is its memory of each VM)."""

from __future__ import annotations

import calendar
import time

from vm_operator.core.records import DesiredStatus, LastExit, SpecView
from vm_operator.store.specs import VmSpec
from vm_operator.vocabulary import Condition, RestartPolicy

BACKOFF_FIRST = 1.0  # seconds before the first restart after an end
BACKOFF_CAP = 300.0  # never more than 5 minutes between two attempts
HEALTHY_AFTER = 600.0  # 10 minutes of running forget the earlier failures
CRASH_LOOP_AFTER = 3  # consecutive failures that make a crash loop


def backoff_delay(failures: int) -> float:
    """Seconds to wait before the next start after ``failures`` consecutive failures: none
    before the first, then 1 s, doubling, capped at ``BACKOFF_CAP``."""
    if failures <= 0:
        return 0.0
    return min(BACKOFF_FIRST * 2.0 ** min(failures - 1, 30), BACKOFF_CAP)


def failures_after_end(failures: int, ran_for: float) -> int:
    """The consecutive failures once a run that lasted ``ran_for`` seconds ended unasked:
    one more, or the first one when it had run healthy for ``HEALTHY_AFTER``."""
    return 1 if ran_for >= HEALTHY_AFTER else failures + 1


def restart_wanted(policy: RestartPolicy, exit_code: int | None) -> bool:
    """Whether a run that ended without a stop through the API is started again: ``always``
    after any end, ``on-failure`` after a non-zero exit or a kill (``exit_code`` None: killed
    by a signal, or the exit was not seen), ``never`` never."""
    if policy == "always":
        return True
    return policy == "on-failure" and exit_code != 0


def wake_in(interval: float, now: float, began: float, retry_ats: list[float]) -> float:
    """Seconds from ``now`` to the next pass: ``interval``, or sooner the earliest next attempt
    (monotonic) not yet due when the last pass ``began`` (never less than none); one that was
    due then had that pass, which acted on it or could not (held, missing): the periodic pass
    tries again."""
    pending = [at for at in retry_ats if at > began]
    if not pending:
        return interval
    return max(0.0, min(interval, min(pending) - now))


def failing_condition(failures: int) -> Condition:
    return "crash-loop" if failures >= CRASH_LOOP_AFTER else "backing-off"


def later(stamp: str, seconds: float) -> str:
    """The API timestamp ``seconds`` after ``stamp`` (both ``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
    whole, _, rest = stamp.partition(".")
    base = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    millis = int(rest.rstrip("Z") or 0) + round(seconds * 1000)
    when = base + millis // 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{millis % 1000:03d}Z"


def last_exit(exit_code: int | None, at: str) -> LastExit:
    """A run's end: a negative code is the signal that killed it (subprocess's convention)."""
    if exit_code is not None and exit_code < 0:
        return {"exit_code": None, "signal": -exit_code, "at": at}
    return {"exit_code": exit_code, "signal": None, "at": at}


def spec_view(spec: VmSpec | None) -> SpecView | None:
    if spec is None:
        return None
    return {"desired": spec.desired, "restart": spec.restart, "source": spec.source,
            "created_at": spec.created_at}


def desired_status(spec: VmSpec | None, restart_count: int, last_exit: LastExit | None,
                   next_attempt_at: str | None, condition: Condition | None) -> DesiredStatus:
    """The desired-state fields of a VM's detail (``Reconciler.status``)."""
    return {"spec": spec_view(spec), "restart_count": restart_count, "last_exit": last_exit,
            "next_attempt_at": next_attempt_at, "condition": condition}
