"""``tart ip``, shared and bounded: ``GET /vms/{name}/ip?wait=N`` for many askers at once.

A ``tart ip --wait W`` is a process that may live W seconds (up to 120). Asked for one VM by
fifty clients at once it would be fifty processes; so one waiter per VM asks Tart, and whoever
asks for that VM meanwhile joins it:

- the waiter's address answers everyone who joined it;
- an asker whose own wait runs out first is answered "no IP address" (as Tart would be);
- when the waiter ends without one (its wait ran out), an asker with time left starts the next
  waiter (or joins the one another started) for the seconds it has left;
- a look without a wait (``wait=0``) is a waiter of its own kind, shared the same way: it
  answers what Tart says now, which a waiter that is waiting cannot tell.

At most ``MAX_IP_WAITERS`` waiters (``tart ip`` processes) live at once, for all VMs: a request
that would need one more is refused at once (``IpWaitersFull``: 503 with ``Retry-After``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from vm_operator.core.errors import IpWaitersFull
from vm_operator.tart.errors import TartNoIp
from vm_operator.tart.names import VmName

MAX_IP_WAITERS = 16  # tart ip processes at once, all VMs together
RETRY_AFTER = 5  # seconds, for the asker refused past the bound
NO_IP = "no IP address found, is your VM running?"  # Tart's own words


@dataclass(eq=False)
class _Waiter:
    """One ``tart ip --wait wait`` and what it found."""

    wait: int
    askers: int = 1  # who asked for its answer (its starter included)
    done: threading.Event = field(default_factory=threading.Event)
    ip: str | None = None
    error: Exception | None = None


class IpWaiters:
    """``ip(name, wait)``: what ``tart ip --wait wait name`` answers, through shared waiters."""

    def __init__(self, ask: Callable[[VmName, int], str], monotonic: Callable[[], float],
                 limit: int = MAX_IP_WAITERS) -> None:
        self._ask = ask
        self._monotonic = monotonic
        self.limit = limit
        self._lock = threading.Lock()
        self._waiters: dict[tuple[str, bool], _Waiter] = {}  # (VM, waits) -> its waiter

    def live(self) -> int:
        """How many ``tart ip`` run now (tests)."""
        with self._lock:
            return len(self._waiters)

    def askers(self, name: str) -> int:
        """How many asked for the answer of the VM's ``tart ip`` under way (tests)."""
        with self._lock:
            return sum(w.askers for (vm, _), w in self._waiters.items() if vm == name)

    def ip(self, name: VmName, wait: int) -> str:
        deadline = self._monotonic() + wait
        while True:
            waiter, mine = self._join(name, wait)
            if mine:
                self._run(name, waiter)
            elif wait == 0:
                waiter.done.wait()  # a look without a wait: as long as its tart ip lives
            elif not waiter.done.wait(max(0.0, deadline - self._monotonic())):
                raise TartNoIp(NO_IP, 1)  # this asker's wait ran out first
            if waiter.ip is not None:
                return waiter.ip
            assert waiter.error is not None
            left = deadline - self._monotonic()
            if not (isinstance(waiter.error, TartNoIp) and left >= 1):
                raise waiter.error
            wait = math.floor(left)  # the waiter's wait ran out before this asker's

    def _join(self, name: VmName, wait: int) -> tuple[_Waiter, bool]:
        """The VM's waiter of this kind, and whether this asker is to start it."""
        key = (str(name), wait > 0)
        with self._lock:
            waiter = self._waiters.get(key)
            if waiter is not None:
                waiter.askers += 1
                return waiter, False
            if len(self._waiters) >= self.limit:
                raise IpWaitersFull(f"{self.limit} tart ip are waiting already (for other "
                                    "VMs); retry in a few seconds", RETRY_AFTER)
            waiter = self._waiters[key] = _Waiter(wait)
            return waiter, True

    def _run(self, name: VmName, waiter: _Waiter) -> None:
        try:
            waiter.ip = self._ask(name, waiter.wait)
        except Exception as exc:  # noqa: BLE001 - every asker that joined gets it
            waiter.error = exc
        finally:
            if waiter.ip is None and waiter.error is None:  # this thread is being torn down
                waiter.error = TartNoIp(NO_IP, 1)
            with self._lock:
                del self._waiters[(str(name), waiter.wait > 0)]
            waiter.done.set()
