"""What the bus says of each VM's state, and the poller that notices changes made outside.

``VmStates`` remembers the last state the bus told of each VM (from every ``vm.state``,
``vm.created`` and ``vm.deleted`` published, whoever published it) and which VMs a change of
this operator is working on (``busy``). The core's writes publish through it: ``changed``
(a start, stop or suspend: cause ``api``), ``created``, ``deleted``, ``exited``.

``ListingPoller``: while at least one subscriber listens (``EventBus.on_watchers``), one thread
looks at one shared ``tart list`` per interval (the inventory's cached listing: a request's
fresh listing serves it too) and publishes what changed since the bus last told — ``vm.state``
with cause ``outside``, ``vm.created``, ``vm.deleted`` — for the local VMs that no change of
the operator holds and that the bus has not told of since the listing began, so a change made
through the API is never reported twice. Each look first goes through the listings fetched
since the last one (for requests too: ``fetched``), oldest first: a state a read answered with
is told too, though it was gone by the poller's own listing. Nobody watching: the thread waits,
and asks Tart nothing. A hundred watchers cost what one costs: they share the thread and the listing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from vm_operator.core.event_catalogue import VM_CREATED, VM_DELETED, VM_STATE
from vm_operator.core.events import Event, EventBus
from vm_operator.tart.errors import TartError
from vm_operator.tart.records import Vm

log = logging.getLogger(__name__)

EXISTS = ""  # a VM the bus told was created, whose state it has not told yet
MAX_REMEMBERED = 2000  # VMs whose last word is kept; the oldest go first past it
MAX_PENDING = 32  # listings fetched since the last look, kept for the next; the oldest go first


class VmStates:
    """The last state the bus told of each VM, and the VMs a change of the operator holds."""

    def __init__(self, bus: EventBus, monotonic: Callable[[], float]) -> None:
        self.bus = bus
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}  # name -> state (EXISTS: created, state not told)
        self._heard: dict[str, tuple[int, float]] = {}  # name -> (event id, monotonic time)
        self._busy: dict[str, int] = {}
        bus.on_publish(self._hear)

    # --- what the bus said -----------------------------------------------------------------

    def _hear(self, event: Event) -> None:
        if event.vm is None or event.type not in (VM_STATE.type, VM_CREATED.type, VM_DELETED.type):
            return
        name = event.vm
        with self._lock:
            last = self._heard.get(name)
            if last is not None and last[0] > event.id:
                return  # a later word came first (two publishers raced)
            self._heard[name] = (event.id, self.monotonic())
            if event.type == VM_DELETED.type:
                self._known.pop(name, None)
            elif event.type == VM_CREATED.type:
                self._known[name] = EXISTS
            else:
                to = event.data.get("to")
                self._known[name] = to if isinstance(to, str) else EXISTS
            if len(self._heard) > MAX_REMEMBERED:
                oldest = min(self._heard, key=lambda vm: self._heard[vm][1])
                del self._heard[oldest]

    def known(self, name: str) -> str | None:
        """The state last told (EXISTS: created, not told yet), None: not known to exist."""
        with self._lock:
            return self._known.get(name)

    def snapshot(self) -> tuple[dict[str, str], dict[str, float]]:
        """Every known VM's state, and when the bus last told of each VM (monotonic)."""
        with self._lock:
            return dict(self._known), {name: at for name, (_, at) in self._heard.items()}

    def seed(self, states: dict[str, str]) -> None:
        """Take a listing as what is known, without telling anyone (the first look)."""
        with self._lock:
            for name, state in states.items():
                self._known.setdefault(name, state)

    # --- the operator's own changes ----------------------------------------------------------

    @contextmanager
    def busy(self, name: str) -> Iterator[None]:
        """A change of the operator works on ``name``: the poller leaves it alone, as the
        change publishes what it did itself."""
        with self._lock:
            self._busy[name] = self._busy.get(name, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._busy[name] -= 1
                if not self._busy[name]:
                    del self._busy[name]

    def is_busy(self, name: str) -> bool:
        with self._lock:
            return name in self._busy

    def changed(self, name: str, before: str | None, after: str, cause: str = "api",
                exit_code: int | None = None) -> Event | None:
        """``vm.state`` from ``before`` to ``after`` (returned), unless nothing changed."""
        if before == after:
            return None
        return self.bus.publish(VM_STATE.about(name, {"from": before, "to": after, "cause": cause,
                                                      "exit_code": exit_code}))

    def created(self, name: str, operation: str | None, state: str = "stopped",
                cause: str = "api") -> Event | None:
        """A new VM: ``vm.created``, then its first ``vm.state`` (returned)."""
        self.bus.publish(VM_CREATED.about(name, {"operation": operation}))
        return self.changed(name, None, state, cause)

    def deleted(self, name: str, cause: str = "api") -> Event:
        return self.bus.publish(VM_DELETED.about(name, {"cause": cause}))

    def observed(self, event: Event | None, started: float) -> None:
        """``event`` told what a listing that began at ``started`` showed: the VM counts as
        told of then, not when it was published, so that a later listing (one of the same
        look) tells its next change; unless another word of it came meanwhile."""
        if event is None or event.vm is None:
            return
        with self._lock:
            last = self._heard.get(event.vm)
            if last is not None and last[0] == event.id:
                self._heard[event.vm] = (event.id, started)


def vm_changes(listed: list[Vm], known: dict[str, str], heard: dict[str, float],
               started: float, held: Callable[[str], bool]) -> list[tuple[str, str | None, str | None]]:
    """What a listing that began at ``started`` shows changed since the bus last told, as
    (name, before, after) — before None: new; after None: gone. Only local VMs; none that a
    change of the operator holds, nor any the bus told of after the listing began (pure)."""
    changes: list[tuple[str, str | None, str | None]] = []
    listed_names = set()
    for vm in listed:
        if vm["source"] != "local":
            continue
        name, state = vm["name"], vm["state"]
        listed_names.add(name)
        if held(name) or heard.get(name, float("-inf")) >= started:
            continue
        before = known.get(name)
        if before is None or (before != state and before != EXISTS):
            changes.append((name, before, state))
    for name in sorted(set(known) - listed_names):
        if not held(name) and heard.get(name, float("-inf")) < started:
            changes.append((name, known[name], None))
    return changes


class ListingPoller:
    """One thread, one ``tart list`` per interval, while anyone watches the bus: the changes
    made outside the operator."""

    def __init__(self, states: VmStates, list_vms: Callable[[float], tuple[float, list[Vm]]],
                 held: Callable[[str], bool], interval: float = 1.0) -> None:
        self.states = states
        self.bus = states.bus
        self._list_vms = list_vms  # (max age) -> (when its tart list began, the VMs)
        self._held = held
        self.interval = interval
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seeded = False
        self._looking = threading.Lock()  # one look at a time
        self._last_started = float("-inf")  # when the newest listing looked at began
        self._pending: list[tuple[float, list[Vm]]] = []  # (began, listing) since the last look
        self._pending_guard = threading.Lock()
        self.looks = 0  # how many listings it has looked at (tests and the benchmark)
        # called with each listing looked at, after its events (the readiness of running VMs)
        self.on_listing: Callable[[list[Vm]], None] = lambda listed: None
        self.bus.on_watchers(self._watchers_changed)

    def _watchers_changed(self, count: int) -> None:
        """A watcher came or went. The first one waits for the first look (which only learns
        the states), so that every change after its subscription is told. The last one gone,
        the listings kept for the next look go too: a later watcher is told what changed
        since the bus last told, not what was seen meanwhile."""
        if count <= 0:
            if self.bus.watchers() == 0:
                with self._pending_guard:
                    self._pending.clear()
            return
        if not self._seeded:
            try:
                self.look()
            except TartError as exc:
                log.debug("listing poller: tart list failed: %s", exc)
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="listing-poller", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def stop(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()

    def _run(self) -> None:
        """Started by the first watcher, whose subscription has just looked: wait, look, one
        look per interval (the time a look took is part of the interval)."""
        took = 0.0
        while not self._stop.wait(max(0.0, self.interval - took)):
            with self._wake:  # the count passed to listeners may arrive out of order: ask
                while self.bus.watchers() == 0 and not self._stop.is_set():
                    self._wake.wait()
            if self._stop.is_set():
                return
            began = self.states.monotonic()
            try:
                self.look()
            except TartError as exc:  # Tart is down: say nothing, look again later
                log.debug("listing poller: tart list failed: %s", exc)
            except Exception:  # the thread must live on; a bug is logged
                log.exception("listing poller: a look failed")
            took = self.states.monotonic() - began

    def fetched(self, started: float, listed: list[Vm]) -> None:
        """A listing was fetched (for a request, a refresh ahead, or a look): kept for the
        next look while anyone watches, so that a state a read answered with is told on the
        stream though it was gone by then (a VM started and stopped between two looks). Only
        kept here, never looked at: what fetched it is not kept waiting."""
        if self.bus.watchers() == 0:
            return
        with self._pending_guard:
            self._pending.append((started, listed))
            del self._pending[:-MAX_PENDING]  # the newest (a Tart listed many times a second)

    def look(self) -> None:
        """One listing, and the events it shows, after those of the listings fetched since
        the last look, oldest first; one older than a listing already looked at is passed
        over. The first one only learns the states."""
        started, listed = self._list_vms(self.interval / 4)
        with self._pending_guard:
            pending, self._pending = self._pending, []
        with self._looking:
            self.looks += 1
            seeded = self._seeded
            told = [vms for when, vms in sorted([*pending, (started, listed)],
                                                key=lambda seen: seen[0]) if self._tell(when, vms)]
        if seeded:  # the running VMs of the newest listing looked at
            self.on_listing(told[-1] if told else listed)

    def _tell(self, started: float, listed: list[Vm]) -> bool:
        """The events of one listing (the first one only learns the states); False when it
        was passed over or only learnt (the caller holds ``_looking``)."""
        if started < self._last_started:
            return False
        self._last_started = started
        known, heard = self.states.snapshot()
        if not self._seeded:
            self._seeded = True
            self.states.seed({vm["name"]: vm["state"] for vm in listed
                              if vm["source"] == "local" and vm["name"] not in heard})
            return False
        for name, before, after in vm_changes(listed, known, heard, started, self._held):
            told: Event | None
            if after is None:
                told = self.states.deleted(name, "outside")
            elif before is None:
                told = self.states.created(name, None, after, "outside")
            else:
                told = self.states.changed(name, before, after, "outside")
            self.states.observed(told, started)
        return True
