"""The create operation: ``tart clone`` (pulling the image when it is not cached), ``tart set``,
then optionally a confirmed start, as a job of the operations queue.

Progress: Tart's clone output goes through the ``ProgressParser``; the phase is ``pulling``
while Tart downloads, else ``cloning``, then ``configuring`` and ``starting``. Cancelling kills
Tart's process group (the job hands the queue the kill switch of the running Tart call).

What is left behind: a cancelled or failed create leaves no VM (``cleanup`` deletes the VM if
it exists, stopping it first if it runs), except that a failure of the start step alone keeps
the created VM, stopped (desired stopped), and says so in the operation's result. A start refused by the macOS
slot cap is no failure: the VM is desired running, the reconciler starts it once a slot frees
(the operation succeeds and says it waits for a slot; an ephemeral VM, which the reconciler
never starts, fails as any other start).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

from vm_operator.core.errors import OperatorError, VmLimit
from vm_operator.core.operations import Job, OperationContext
from vm_operator.core.parts import STOP_TIMEOUT, Parts
from vm_operator.store.operation_records import (
    Cancelled,
    Ending,
)
from vm_operator.store.specs import SpecSource, VmSpec
from vm_operator.store.state import StateDirError
from vm_operator.tart.errors import (
    TartError,
    TartVmLimit,
)
from vm_operator.tart.names import VmName
from vm_operator.tart.progress import (
    PhaseChanged,
    ProgressChanged,
    ProgressEvent,
    ProgressParser,
)
from vm_operator.vocabulary import RestartPolicy

log = logging.getLogger(__name__)

IDENTITY_TRIES = 3  # reads of which VM a clone made, before the spec is written unbound
IDENTITY_RETRY_DELAY = 0.5  # seconds between them

KEPT_STOPPED = "VM kept, stopped: the start failed"
WAITING_FOR_SLOT = ("VM created, waiting for a slot: the macOS cap (--max-running) is full; the "
                    "operator starts it once a macOS VM stops")


@dataclass(frozen=True)
class CreateRequest:
    """A VM to create: ``source`` is an OCI reference or a local VM (``from`` in the API)."""

    name: VmName
    source: VmName
    cpu: int | None = None
    memory_mb: int | None = None
    disk_gb: int | None = None
    display: str | None = None
    random_mac: bool = True
    start: bool = False
    ephemeral: bool = False
    insecure: bool = False
    restart: RestartPolicy = "never"  # the spec's restart policy; its desired power follows start
    spec_source: SpecSource = "api"  # who asks: the API or the declarative file

    def spec(self, created_at: str, operation: str, vm_id: str | None) -> VmSpec:
        """The VM's spec, written once it is configured: desired running when it is started;
        ``vm_id``: the identity of the VM the clone made."""
        return VmSpec(self.name, self.ephemeral, created_at, operation,
                      "running" if self.start else "stopped", self.restart, self.spec_source,
                      vm_id)

    def configures(self) -> bool:
        """Whether ``tart set`` has anything to do."""
        return self.random_mac or any(value is not None for value in (
            self.cpu, self.memory_mb, self.disk_gb, self.display))


class CloneProgress:
    """Feeds a clone's output to the parser, and what it finds to the operation."""

    def __init__(self, ctx: OperationContext) -> None:
        self.ctx = ctx
        self.parser = ProgressParser()

    def __call__(self, chunk: bytes) -> None:
        self._apply(self.parser.feed(chunk))

    def finish(self) -> None:
        """Tart has ended: a last line without its line end counts too."""
        self._apply(self.parser.close())

    def _apply(self, events: list[ProgressEvent]) -> None:
        for event in events:
            if isinstance(event, PhaseChanged):
                self.ctx.set_phase("pulling" if event.phase == "pulling" else "cloning")
            elif isinstance(event, ProgressChanged):
                self.ctx.set_progress(event.percent)


class CreateJob:
    """One create: ``job()`` is what the queue runs."""

    def __init__(self, parts: Parts, request: CreateRequest) -> None:
        self.parts = parts
        self.request = request
        self.keep = False  # the VM stays even though the operation failed (its start did)

    def job(self) -> Job:
        return Job(self.run, self.cleanup)

    def run(self, ctx: OperationContext) -> None:
        self._clone(ctx)
        ctx.raise_if_cancelled()
        self._configure(ctx)
        ctx.raise_if_cancelled()
        if self.request.start:
            self._start(ctx)
            ctx.raise_if_cancelled()

    def _clone(self, ctx: OperationContext) -> None:
        request, tart = self.request, self.parts.tart
        ctx.set_phase("cloning")
        progress = CloneProgress(ctx)
        try:
            tart.clone(request.source, request.name, insecure=request.insecure,
                       on_output=progress, on_started=ctx.on_cancel)
        except TartError as exc:
            ctx.on_cancel(None)
            if ctx.cancelled:
                raise Cancelled() from None
            raise self.parts.failure(exc) from None
        finally:
            self.parts.inventory.reconfigured(request.name)
        ctx.on_cancel(None)
        progress.finish()
        self.parts.power.states.created(request.name, ctx.id)  # a clone is stopped

    def _configure(self, ctx: OperationContext) -> None:
        request, parts = self.request, self.parts
        ctx.set_phase("configuring")
        try:
            # written whole: a record left by an earlier VM of this name is replaced (it must
            # never make this one ephemeral, nor give it another VM's desired state), and that
            # VM's run records and logs go: they are not this VM's. Written first with no wish
            # for its power, so that which VM the clone made is on disk before anything else:
            # a restart that interrupts the configuring removes that VM, and no other
            # (lifecycle.remove_leftovers)
            vm_id = self._identity()
            parts.store.forget(request.name)
            try:
                parts.tart.forget_log(request.name)
            except TartError as exc:  # an earlier VM's logs left on the host: not this VM's
                log.warning("create of %r: the run logs of an earlier VM of this name cannot "
                            "be removed: %s", request.name, exc)
            spec = request.spec(parts.clock.utc_now(), ctx.id, vm_id)
            parts.specs.save(replace(spec, desired=None))
            if request.configures():
                parts.tart.set(request.name, cpu=request.cpu, memory_mb=request.memory_mb,
                               disk_gb=request.disk_gb, display=request.display,
                               random_mac=request.random_mac)
            parts.specs.save(spec)
        except (OperatorError, TartError, StateDirError) as exc:
            raise parts.failure(exc) from None
        finally:
            parts.inventory.reconfigured(request.name)

    def _identity(self) -> str | None:
        """Which VM the clone made (core/ownership.py), read up to ``IDENTITY_TRIES`` times (one
        SSH hiccup must not leave the spec unbound); when it still cannot be read, None: the
        spec is bound to the VM that carries the name when the operator next looks, unless
        that VM was born after the spec was written (``ownership.verdict``)."""
        for attempt in range(1, IDENTITY_TRIES + 1):
            try:
                return self.parts.tart.vm_identity(self.request.name)
            except TartError as exc:
                log.warning("create of %r: which VM the clone made cannot be read (try %d of "
                            "%d): %s", self.request.name, attempt, IDENTITY_TRIES, exc)
                if attempt < IDENTITY_TRIES:
                    time.sleep(IDENTITY_RETRY_DELAY)
        return None

    def _start(self, ctx: OperationContext) -> None:
        request, parts = self.request, self.parts
        ctx.set_phase("starting")
        try:
            parts.power.start(request.name)
        except (OperatorError, TartError) as exc:
            if isinstance(exc, VmLimit | TartVmLimit) and not request.ephemeral:
                # desired running (its spec says so): the reconciler starts it once a slot
                # frees (an ephemeral VM it never starts), so the create did what it was
                # asked; the VM's condition says waiting-for-slot
                ctx.note(WAITING_FOR_SLOT)
                return
            if not request.ephemeral:
                self._desired_stopped()
            self._stop_quietly()
            if request.ephemeral:  # its run ended: an ephemeral VM goes
                ctx.note("the start failed; the VM was ephemeral, so it was deleted")
            else:
                self.keep = True
                ctx.note(KEPT_STOPPED)
            raise parts.failure(exc) from None

    def _desired_stopped(self) -> None:
        """A VM kept after its start failed is desired stopped, as the operation reports it
        (the reconciler would start it again otherwise); a spec that cannot be written is
        logged: the create has failed already."""
        try:
            spec = self.parts.specs.load(self.request.name)
            if spec is not None:
                self.parts.specs.save(replace(spec, desired="stopped"))
        except StateDirError as exc:
            log.warning("create of %r: its desired state cannot be written: %s",
                        self.request.name, exc)

    def _stop_quietly(self) -> None:
        """After a failed start: a run left behind (a start timeout leaves it) is stopped."""
        try:
            self.parts.power.stop(self.request.name, STOP_TIMEOUT)
        except (OperatorError, TartError) as exc:
            log.warning("create of %r: stopping it after its failed start failed: %s",
                        self.request.name, exc)

    def cleanup(self, ctx: OperationContext, ending: Ending) -> None:
        if ending == "failed" and self.keep:
            return
        try:
            self.parts.remove_vm(self.request.name)
        except (OperatorError, TartError, StateDirError) as exc:
            raise self.parts.failure(exc) from None
