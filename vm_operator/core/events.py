"""The operator's events: what changed, in order, for whoever watches (``GET /events``).

Every part of the core that changes something, or observes a change, publishes an ``Event``
on the one ``EventBus``, of a type of the catalogue (``event_catalogue.py``). Each event gets the next ``id``, the wall-clock time, the VM it is
about (or None) and a small JSON-ready ``data`` mapping. Ids rise by one within a process and
never repeat across processes: a process numbers its events from the time it started, in
microseconds since 1970 (``first_id_now``), and no process publishes an event per microsecond,
so its last id stays below the next process's first (unless the clock is set back).

The bus keeps a bounded history: a subscriber that comes back with the id of the last event it
saw (SSE's ``Last-Event-ID``) gets what it missed, or — when that is older than the history, or
is no id this process issued (an earlier process's, say) — is told to reset
(``Subscription.reset``) and starts from now. A subscriber that does not keep
up (its queue is full) is dropped: publishing never blocks and never holds memory for a slow
reader. Per VM, a shorter history of its own serves ``GET /vms/{name}/events``.

Publishing is safe from any thread, and calls nothing outside the bus while it holds its lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import cast

from vm_operator.core.event_catalogue import NewEvent, StepAbout, Withheld

# What a ``data`` value may hold: what json.dumps writes without help.
JsonScalar = str | int | float | bool | None
JsonValue = JsonScalar | list["JsonValue"] | Mapping[str, "JsonValue"]

# The event types are the catalogue's (core/event_catalogue.py); this is no type of it:
RESET = "reset"  # never published: what a subscriber is told when its history is gone
OPERATION_EVENTS = "operation."  # the prefix of an operation's events (event_catalogue)


def first_id_now() -> int:
    """The first event id of a process starting now: the wall clock in microseconds, plus one
    (below 2**53, what a JavaScript number holds exactly, until the year 2255)."""
    return time.time_ns() // 1000 + 1


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    time: str
    vm: str | None
    data: Mapping[str, JsonValue]
    steps: tuple[StepAbout, ...] = ()  # what each line of data["steps"] is about (not written)
    withheld: Withheld | None = None  # members naming another VM (not written)

    def to_json(self) -> dict[str, JsonValue]:
        """The event as the stream and ``GET /vms/{name}/events`` write it."""
        return {"id": self.id, "type": self.type, "time": self.time, "vm": self.vm,
                "data": dict(self.data)}

    def seen_by(self, may_touch: Callable[[str], bool]) -> Event | None:
        """The event as a watcher that may touch only some VMs sees it: one about another VM
        not at all, nor an operation's about no VM (a pull, a prune); one about no VM whole, but for the lines of its ``steps`` about other VMs
        (a ``config.applied``: only its own steps, ``failed`` counting those, none if it has
        none: it still learns that the file was applied; a create's line that names a source
        it may not touch is told ``without_source``). Either way, its ``withheld`` members
        are told ``instead`` when they name a VM it may not touch, or may name any (a
        ``config.refused`` not about one of its VMs)."""
        if self.vm is not None and not may_touch(self.vm):
            return None
        if self.vm is None and self.type.startswith(OPERATION_EVENTS):
            return None  # a pull's, a prune's: not its operations (edge/authz.operation_refusal)
        event = self
        if self.withheld is not None:
            shown = self.withheld.told(self.data, may_touch)
            if shown is not self.data:
                event = replace(self, data=cast(Mapping[str, JsonValue], shown), withheld=None)
        steps = event.steps
        kept = [index for index, step in enumerate(steps) if may_touch(step.vm)]
        hidden_sources = {index for index in kept
                          if (source := steps[index].source) is not None
                          and not may_touch(source)}
        if len(kept) == len(steps) and not hidden_sources:
            return event
        lines = event.data.get("steps")
        assert isinstance(lines, list) and len(lines) == len(steps)
        told = [steps[index].without_source if index in hidden_sources else lines[index]
                for index in kept]
        data = {**event.data, "steps": told,
                "failed": sum(steps[index].failed for index in kept)}
        return replace(event, data=data, steps=tuple(steps[index] for index in kept))


@dataclass(eq=False)
class Subscription:
    """One watcher's view of the bus. ``backlog``: the events it missed (resumed with an id);
    ``reset``: the id it resumed from is gone from the history."""

    bus: EventBus
    vm: str | None
    limit: int
    backlog: list[Event] = field(default_factory=list)
    reset: bool = False
    dropped: bool = False  # it fell ``limit`` events behind: the bus let it go
    last_id: int = 0  # the newest event's id when it subscribed (what a reset tells; before
    # the process's first event, the id just below it)
    closed: bool = False
    _queue: deque[Event] = field(default_factory=deque)
    _ready: threading.Condition = field(default_factory=threading.Condition)

    def wants(self, event: Event) -> bool:
        return self.vm is None or event.vm == self.vm

    def offer(self, event: Event) -> None:
        """Called by the bus with its lock held: never blocks."""
        with self._ready:
            if self.closed or self.dropped:
                return
            if len(self._queue) >= self.limit:
                self.dropped = True
                self._queue.clear()
            else:
                self._queue.append(event)
            self._ready.notify_all()

    def get(self, timeout: float) -> Event | None:
        """The next event, or None after ``timeout`` seconds, or when dropped or closed."""
        with self._ready:
            if not self._queue and not (self.dropped or self.closed):
                self._ready.wait(timeout)
            if self._queue and not self.dropped:
                return self._queue.popleft()
            return None

    @property
    def ended(self) -> bool:
        return self.dropped or self.closed

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._queue.clear()
            self._ready.notify_all()
        self.bus.unsubscribe(self)


WatchListener = Callable[[int], None]
PublishListener = Callable[[Event], None]


class EventBus:
    """Events in order, a bounded history, subscribers that may come and go."""

    def __init__(self, utc_now: Callable[[], str], history: int = 1000,
                 per_vm_history: int = 200, max_vms: int = 1000,
                 queue_limit: int = 1000, first_id: int | None = None) -> None:
        self._utc_now = utc_now
        self._lock = threading.Lock()
        self._next_id = first_id_now() if first_id is None else first_id
        self._before_first = self._next_id - 1  # the id a watcher of this process has seen
        # before its first event: "nothing yet" (never an id of an earlier process)
        self._history: deque[Event] = deque(maxlen=history)
        self._per_vm: OrderedDict[str, deque[Event]] = OrderedDict()
        self._per_vm_history = per_vm_history
        self._max_vms = max_vms
        self._queue_limit = queue_limit
        self._subscribers: list[Subscription] = []
        self._watch_listeners: list[WatchListener] = []
        self._publish_listeners: list[PublishListener] = []
        self._published = 0
        self._dropped = 0

    def publish(self, new: NewEvent) -> Event:
        """Publish an event of the catalogue (``ENTRY.about(vm, data)``)."""
        data = cast(Mapping[str, JsonValue], new.data)  # the catalogue's shapes are JSON's
        vm = new.vm
        with self._lock:
            event = Event(self._next_id, new.type, self._utc_now(), vm, dict(data),
                          new.steps, new.withheld)
            self._next_id += 1
            self._published += 1
            self._history.append(event)
            if vm is not None:
                self._remember(vm, event)
            for sub in self._subscribers:
                if sub.wants(event):
                    sub.offer(event)
                    if sub.dropped:
                        self._dropped += 1
            self._subscribers = [sub for sub in self._subscribers if not sub.ended]
            listeners = list(self._publish_listeners)
        for listener in listeners:
            listener(event)
        return event

    def on_publish(self, listener: PublishListener) -> None:
        """Call ``listener(event)`` after each event is published, on the publishing thread,
        without the bus's lock held: two publishers may call it out of id order."""
        with self._lock:
            self._publish_listeners.append(listener)

    def _remember(self, vm: str, event: Event) -> None:
        events = self._per_vm.get(vm)
        if events is None:
            events = self._per_vm[vm] = deque(maxlen=self._per_vm_history)
            while len(self._per_vm) > self._max_vms:  # forget the VM heard of least recently
                self._per_vm.popitem(last=False)
        else:
            self._per_vm.move_to_end(vm)
        events.append(event)

    def subscribe(self, vm: str | None = None, after: int | None = None) -> Subscription:
        """A new subscription to the events after now, or — given ``after``, the id of the last
        event the watcher saw — after that one (``backlog``), if the history still holds it.
        An ``after`` this process never issued (an earlier process's, or one to come) resets."""
        sub = Subscription(self, vm, self._queue_limit)
        with self._lock:
            last = sub.last_id = self._next_id - 1
            if after is not None and after != last:
                oldest = self._history[0].id if self._history else self._next_id
                if not self._before_first <= after < last or after + 1 < oldest:
                    sub.reset = True
                else:
                    sub.backlog = [e for e in self._history if e.id > after and sub.wants(e)]
            self._subscribers.append(sub)
            count = len(self._subscribers)
            listeners = list(self._watch_listeners)
        for listener in listeners:
            listener(count)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
            count = len(self._subscribers)
            listeners = list(self._watch_listeners)
        for listener in listeners:
            listener(count)

    def on_watchers(self, listener: WatchListener) -> None:
        """Call ``listener(count)`` whenever a subscription begins or ends."""
        with self._lock:
            self._watch_listeners.append(listener)

    def watchers(self) -> int:
        with self._lock:
            self._subscribers = [sub for sub in self._subscribers if not sub.ended]
            return len(self._subscribers)

    def last_id(self) -> int:
        with self._lock:
            return self._next_id - 1

    def history(self, vm: str) -> list[Event]:
        """The recent events of one VM, oldest first."""
        with self._lock:
            return list(self._per_vm.get(vm, ()))

    def counts(self) -> tuple[int, int]:
        """(events published, subscribers dropped for falling behind), for the metrics."""
        with self._lock:
            return self._published, self._dropped
