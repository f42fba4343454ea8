"""What the reconciler remembers of each VM, and how that changes: a state machine, pure.

``VmMemory`` is a frozen record; each transition below takes the record and what was seen or
asked, and returns a ``Step``: the next record, the action to take (``start``, ``stop``) and
what to tell (a failure counted, a wait begun). ``core/reconciler.py`` is the shell: it reads
the clock, Tart and the specs, applies a transition under its lock, then acts and tells.

Two things a VM's memory holds are states, one at a time:

- ``RunSeen``: what this process knows of the VM's current run: none seen; one the run
  supervisor watches (launched or adopted here: its end is reported, ``run_ended``); one seen
  running that it does not watch (started outside: a pass sees it end); none seen since a
  start of the reconciler's failed and was counted (an end of the run it may have left is the
  same failure, not another).
- ``Plan``: what the reconciler means to do about it: what the spec says; keep it stopped (a
  stop through the API, or its policy after an end); stop it once (desired just set stopped).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Literal

from vm_operator.core.reconcile_rules import (
    HEALTHY_AFTER,
    backoff_delay,
    failing_condition,
    failures_after_end,
    last_exit,
    restart_wanted,
)
from vm_operator.core.records import LastExit
from vm_operator.store.specs import VmSpec
from vm_operator.tart.records import Vm
from vm_operator.vocabulary import Condition, Desired, RestartPolicy

Action = Literal["start", "stop"]


class RunSeen(Enum):
    NONE = "none"  # no run seen since its last end
    SUPERVISED = "supervised"  # launched or adopted here: the run supervisor reports its end
    OUTSIDE = "outside"  # seen running, not watched here: a pass sees it end (exit unknown)
    START_FAILED = "start-failed"  # its start failed, counted: the end of its run is no news


class Plan(Enum):
    AS_SPEC = "as-spec"  # do what the spec says
    STAY_STOPPED = "stay-stopped"  # a stop through the API, or its policy after an end
    STOP_ONCE = "stop-once"  # desired was just set to stopped: stop it once


@dataclass(frozen=True)
class VmMemory:
    failures: int = 0  # consecutive unasked ends and failed starts, since healthy running
    restart_count: int = 0  # starts the reconciler made since the last ask
    last_exit: LastExit | None = None
    retry_at: float | None = None  # monotonic: no start before
    condition: Condition | None = None
    run: RunSeen = RunSeen.NONE
    running_since: float = 0.0  # monotonic: when this process saw it start or run (a run)
    end_asked: bool = False  # a stop or suspend through the API ends the current run
    plan: Plan = Plan.AS_SPEC
    operation: str | None = None  # the create of the VM this is about (a new VM: a new memory)

    @property
    def sees_run(self) -> bool:
        """Whether a run of it is seen (``running_since`` holds when it began)."""
        return self.run in (RunSeen.SUPERVISED, RunSeen.OUTSIDE)


@dataclass(frozen=True)
class Failure:
    """A failure counted: ``reconcile.failed``."""

    error: str
    restart_count: int
    delay: float  # seconds until the next attempt


@dataclass(frozen=True)
class Step:
    memory: VmMemory
    action: Action | None = None
    reason: str = ""  # why the action (``reconcile.action``)
    failure: Failure | None = None
    waiting: Condition | None = None  # a wait that begins now: ``reconcile.waiting``


# --- helpers ------------------------------------------------------------------------------------


def renewed(memory: VmMemory, operation: str | None) -> VmMemory:
    """The memory of the VM a spec of ``operation`` is about: a VM created again under its
    name (deleted and created: another create) starts afresh."""
    if operation is not None and memory.operation != operation:
        return VmMemory(operation=operation)
    return memory


def backoff_cleared(memory: VmMemory) -> VmMemory:
    """No next attempt waited for, no condition to show."""
    return replace(memory, retry_at=None, condition=None)


def unsettled(memory: VmMemory) -> VmMemory:
    """A policy's (or a stop's) decision to keep it stopped is over; a stop due stays due."""
    return replace(memory, plan=Plan.AS_SPEC) if memory.plan is Plan.STAY_STOPPED else memory


def afresh(memory: VmMemory) -> VmMemory:
    """A new ask: forget the restarts, failures, the backoff and a decision to stay put."""
    return unsettled(backoff_cleared(replace(memory, restart_count=0, failures=0)))


def seen_running(memory: VmMemory, now: float, supervised: bool) -> VmMemory:
    """A run begins (or is first seen) at ``now``; ``supervised``: the run supervisor
    watches it."""
    return replace(memory, run=RunSeen.SUPERVISED if supervised else RunSeen.OUTSIDE,
                   running_since=now)


def run_over(memory: VmMemory) -> VmMemory:
    """No run of it is known any more."""
    return replace(memory, run=RunSeen.NONE, running_since=0.0)


def backed_off(memory: VmMemory, failures: int, error: str, now: float) -> Step:
    """``failures`` in a row: wait the backoff before the next start."""
    delay = backoff_delay(failures)
    condition = failing_condition(failures)
    began = condition == "crash-loop" and memory.condition != condition
    after = replace(memory, failures=failures, retry_at=now + delay, condition=condition)
    return Step(after, failure=Failure(error, memory.restart_count, delay),
                waiting=condition if began else None)


def ended_unasked(memory: VmMemory, policy: RestartPolicy, code: int | None, ran_for: float,
                  now: float) -> Step:
    """The run ended without being asked to: restart it (after the backoff) or not, as its
    policy says."""
    if not restart_wanted(policy, code):
        return Step(replace(memory, plan=Plan.STAY_STOPPED, condition="exited", retry_at=None))
    how = ("exit code unknown" if code is None else
           f"killed by signal {-code}" if code < 0 else f"exit code {code}")
    return backed_off(memory, failures_after_end(memory.failures, ran_for),
                      f"its run ended ({how}); restart: {policy}", now)


# --- what is asked through the API --------------------------------------------------------------


def desired_set(memory: VmMemory, operation: str | None, desired: Desired | None,
                restart: RestartPolicy | None) -> Step:
    """The spec's desired power or restart policy was written (None: as it was): a new ask;
    desired ``stopped`` stops it once."""
    memory = renewed(memory, operation)
    if desired is not None or restart is not None:
        memory = afresh(memory)
    if desired == "stopped":
        return Step(replace(memory, plan=Plan.STOP_ONCE))
    return Step(replace(memory, plan=Plan.AS_SPEC) if memory.plan is Plan.STOP_ONCE else memory)


def start_served(memory: VmMemory, now: float, supervised: bool) -> Step:
    """A start through the API succeeded: a new ask, its run watched from now on."""
    memory = replace(afresh(memory), plan=Plan.AS_SPEC, end_asked=False)
    if not memory.sees_run:
        memory = seen_running(memory, now, supervised)
    return Step(memory)


def stop_requested(memory: VmMemory) -> Step:
    """A stop through the API is about to end the run: keep it stopped until asked again."""
    return Step(replace(afresh(memory), plan=Plan.STAY_STOPPED, end_asked=True))


def suspend_requested(memory: VmMemory, asked: bool) -> Step:
    """A suspend through the API is about to end the run (``asked`` False: it was refused,
    the run goes on as before)."""
    return Step(replace(memory, end_asked=asked))


# --- what it observes -------------------------------------------------------------------------


def run_ended(memory: VmMemory, spec: VmSpec | None, code: int | None, at: str,
              launched_here: bool, now: float) -> Step:
    """The run supervisor reports the end of a run (exit ``code``, None: unknown, at ``at``);
    ``launched_here``: its record says this process launched it. An end nobody asked for of a
    VM desired running is a failure, or settles it, as its policy says."""
    if spec is not None:
        memory = renewed(memory, spec.operation)
    since: float | None = memory.running_since if memory.sees_run else None
    if memory.run is RunSeen.NONE and launched_here:
        since = now  # launched by this process before anyone saw it run (a create's start)
    asked = memory.end_asked
    memory = replace(run_over(memory), last_exit=last_exit(code, at), end_asked=False)
    if since is None or asked or spec is None or spec.ephemeral or spec.desired != "running":
        return Step(memory)
    return ended_unasked(memory, spec.restart, code, now - since, now)


def observed(memory: VmMemory, spec: VmSpec, vm: Vm | None, now: float, utc_now: str,
             supervised: bool) -> Step:
    """A pass compares the spec with what Tart lists (``vm``, None: not listed) at ``now``;
    ``supervised``: the run supervisor watches a run of it. The step says whether to start or
    stop it."""
    memory = renewed(memory, spec.operation)
    if vm is None or vm["source"] != "local":
        condition: Condition | None = "missing" if spec.desired == "running" else None
        plan = Plan.AS_SPEC if memory.plan is Plan.STOP_ONCE else memory.plan
        return Step(replace(memory, condition=condition, plan=plan))
    if memory.condition == "missing":  # it exists again
        memory = replace(memory, condition=None)
    if memory.plan is Plan.STOP_ONCE:
        if vm["state"] == "running":  # due until the stop begins (``stop_begun``): a pass
            return Step(memory, "stop", "desired stopped")  # that cannot act tries again
        memory = replace(memory, plan=Plan.AS_SPEC)
    if spec.desired != "running" or vm["state"] == "suspended":
        return Step(memory)  # a suspend through the API keeps it suspended until a start
    if vm["state"] == "running":
        return Step(running(memory, now, supervised))
    return found_stopped(memory, spec, now, utc_now)


def running(memory: VmMemory, now: float, supervised: bool) -> VmMemory:
    """Seen running: ten minutes of it forget the earlier failures."""
    if not memory.sees_run:
        memory = seen_running(memory, now, supervised)
    elif memory.failures and now - memory.running_since >= HEALTHY_AFTER:
        memory = replace(memory, failures=0)  # healthy: the backoff starts again from 1 s
    return unsettled(backoff_cleared(memory))


def found_stopped(memory: VmMemory, spec: VmSpec, now: float, utc_now: str) -> Step:
    """Desired running, seen stopped: start it, unless its end is still to be reported, its
    policy keeps it stopped or its backoff has not ended."""
    if memory.run is RunSeen.SUPERVISED:
        return Step(memory)  # its end is being reported (run_ended): act then
    step = Step(memory)
    if memory.run is RunSeen.OUTSIDE:  # a run this process does not watch ended: exit unknown
        ended = replace(run_over(memory), last_exit=last_exit(None, utc_now))
        step = ended_unasked(ended, spec.restart, None, now - memory.running_since, now)
    after = step.memory
    if after.plan is Plan.STAY_STOPPED or (after.retry_at is not None and now < after.retry_at):
        return step
    reason = ("its run ended; restart: " + spec.restart if after.failures else
              "desired running, found stopped")
    return replace(step, action="start", reason=reason)


# --- what it does -------------------------------------------------------------------------------


def stop_begun(memory: VmMemory) -> Step:
    """The reconciler stops the VM: the end of its run is asked for, and a stop that was due
    is done."""
    plan = Plan.AS_SPEC if memory.plan is Plan.STOP_ONCE else memory.plan
    return Step(replace(memory, end_asked=True, plan=plan))


def start_begun(memory: VmMemory, now: float) -> Step:
    """The reconciler starts the VM: from now on an end of its run is this run's."""
    return Step(replace(seen_running(memory, now, True), end_asked=False))


def start_wanted(memory: VmMemory, spec: VmSpec | None) -> bool:
    """Asked under the VM's write lock: a stop through the API that came first (or a spec no
    longer desired running) means no start."""
    return memory.plan is not Plan.STAY_STOPPED and spec is not None and (
        spec.desired == "running")


def start_declined(memory: VmMemory) -> Step:
    """A stop came first: nothing was started."""
    return Step(run_over(memory))


def start_refused_for_slot(memory: VmMemory) -> Step:
    """The macOS slot cap refused the start: not a failure, no backoff; it waits for a slot."""
    after = replace(run_over(memory), condition="waiting-for-slot", retry_at=None)
    began = memory.condition != "waiting-for-slot"
    return Step(after, waiting="waiting-for-slot" if began else None)


def start_failed(memory: VmMemory, error: str, now: float) -> Step:
    """The start failed: one failure more, unless the end of the run it launched was reported
    (and counted) already; an end of that run reported later is this same failure."""
    if memory.run is RunSeen.NONE:
        return Step(memory)  # run_ended has counted that end already
    counted = replace(run_over(memory), run=RunSeen.START_FAILED)
    return backed_off(counted, memory.failures + 1, f"start: {error}", now)


def start_succeeded(memory: VmMemory, supervised: bool) -> Step:
    """The VM runs: one restart more; still running (else run_ended has seen it end), its run
    is watched and nothing is waited for."""
    memory = replace(memory, restart_count=memory.restart_count + 1)
    if not memory.sees_run:
        return Step(memory)
    return Step(unsettled(backoff_cleared(seen_running(memory, memory.running_since,
                                                       supervised))))
