"""Readiness: a running VM is *ready* when Tart reports its IP address and its guest accepts a
TCP connection on the ready port (22, its sshd, unless configured otherwise).

"running" only means that ``tart run`` holds the VM's lock; the guest boots long after, takes
a DHCP lease (``tart ip`` answers), and its sshd listens later still. Clients that wait for the
IP alone race that sshd (cirrus-cli#714). The core never opens a socket: the connection is
tried by the Tart adapter (``TartPort.probe``), from where Tart runs (over SSH: on the host).

Answers are cached per VM for ``ttl`` seconds (the detail of a polled VM that is not ready yet
costs at most one ``tart ip`` and one probe per ``ttl``); the start waiter asks fresh. Once a run
is seen ready it stays ready, unasked, until it ends: a polled ready VM costs Tart nothing (its
guest's sshd going away later is not noticed; a ``fresh`` look, as the waiter makes, sees it).
The first time a run is seen ready, ``vm.ready`` {"ip", "port"} is published on the bus; a run
that ends (or a VM seen not running) is forgotten, so the next run announces itself again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vm_operator.core.cache import FreshCache, cache_for
from vm_operator.core.clock import Clock
from vm_operator.core.errors import ReadyTimeout, not_running
from vm_operator.core.event_catalogue import VM_READY
from vm_operator.core.events import EventBus
from vm_operator.core.ports import TartPort
from vm_operator.tart.errors import TartError
from vm_operator.tart.names import VmName

WAITING_FOR_IP = "ip"
WAITING_FOR_CONNECTION = "connection"


@dataclass(frozen=True)
class Readiness:
    """What one look at a running VM found: its address (None while Tart reports none) and
    whether a TCP connection to it on ``port`` succeeded."""

    ip: str | None
    port: int
    ready: bool

    @property
    def waiting_for(self) -> str:
        """What is missing: ``ip`` (Tart reports no address) or ``connection``; "" if ready."""
        if self.ready:
            return ""
        return WAITING_FOR_IP if self.ip is None else WAITING_FOR_CONNECTION


def ready_timeout(name: str, seen: Readiness, seconds: float) -> ReadyTimeout:
    """The 504 of a start that waited for readiness in vain, naming what it waited for."""
    if seen.ip is None:
        what = "Tart reported no IP address for it (tart ip)"
    else:
        what = (f"it has the IP address {seen.ip}, but no TCP connection to {seen.ip}:"
                f"{seen.port} succeeded (VM_OPERATOR_READY_PORT)")
    return ReadyTimeout(
        f'VM "{name}" was not ready within {seconds:g} s: {what}; it was left running',
        waiting_for=seen.waiting_for, ip=seen.ip, port=seen.port,
    )


@dataclass(eq=False)
class ReadinessProbe:
    """Looks at running VMs: IP address, then a connection; publishes ``vm.ready``."""

    tart: TartPort
    clock: Clock
    events: EventBus
    port: int
    ttl: float
    poll_interval: float = 0.25
    sleep: Callable[[float], None] = time.sleep
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _caches: dict[str, FreshCache[Readiness]] = field(default_factory=dict, init=False,
                                                      repr=False)
    _announced: set[str] = field(default_factory=set, init=False, repr=False)
    # runs seen ready: not looked at again
    _ready: dict[str, Readiness] = field(default_factory=dict, init=False, repr=False)
    # per VM, how many runs forget() has ended
    _runs: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def check(self, name: VmName, fresh: bool = False) -> Readiness:
        """Readiness of a VM Tart lists as running: at most ``ttl`` old unless ``fresh``; a run
        once seen ready is ready until it ends, unless ``fresh``."""
        seen_ready = None if fresh else self._ready.get(name)
        if seen_ready is not None:  # the common read: no lock
            return seen_ready
        with self._guard:
            if not fresh and name in self._ready:
                return self._ready[name]
            run = self._runs.get(name, 0)
            cache = cache_for(self._caches, name, lambda: self._look(name), self.clock.monotonic)
        now = self.clock.monotonic()
        seen = cache.get(now if fresh else now - self.ttl)
        if seen.ready:
            self._announce(name, seen, run)
        return seen

    def _look(self, name: VmName) -> Readiness:
        try:
            ip = self.tart.ip(name, 0)
        except TartError:  # no address yet (or Tart failed): not ready, nothing to probe
            return Readiness(None, self.port, False)
        try:
            connected = self.tart.probe(ip, self.port)
        except (TartError, ValueError):
            connected = False
        return Readiness(ip, self.port, connected)

    def _announce(self, name: str, seen: Readiness, run: int) -> None:
        with self._guard:
            if self._runs.get(name, 0) != run:  # that run ended while it was looked at
                return
            self._ready[name] = seen
            if name in self._announced:
                return
            self._announced.add(name)
        self.events.publish(VM_READY.about(name, {"ip": seen.ip, "port": seen.port}))

    def forget(self, name: str) -> None:
        """The VM's run ended, or it was seen not running: its next run is a new one."""
        with self._guard:
            self._caches.pop(name, None)
            self._announced.discard(name)
            self._ready.pop(name, None)
            self._runs[name] = self._runs.get(name, 0) + 1

    def wait(self, name: VmName, deadline: float, seconds: float,
             running: Callable[[], bool]) -> Readiness:
        """Look until the VM is ready (returned), ``deadline`` (``clock.monotonic``) passes
        (``ReadyTimeout`` naming what was missing, ``seconds`` the wait asked for), or
        ``running()`` says it no longer runs (``NotRunning``)."""
        while True:
            seen = self.check(name, fresh=True)
            if seen.ready:
                return seen
            now = self.clock.monotonic()
            if now >= deadline:
                raise ready_timeout(name, seen, seconds)
            if not running():
                self.forget(name)
                raise not_running(name, "it stopped while waiting for it to be ready")
            self.sleep(min(self.poll_interval, deadline - now))
