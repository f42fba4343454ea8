"""What the handlers are given: the VM service, the metrics, the OpenAPI document, and the
slots of the event streams."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from vm_operator.core.cache import Derived
from vm_operator.core.fleet_apply import FleetApplier
from vm_operator.core.records import CreatingVm
from vm_operator.core.service import VmService
from vm_operator.edge.conditional import Rendered
from vm_operator.edge.metrics import Metrics
from vm_operator.tart.records import Vm


class StreamSlots:
    """How many event streams (``GET /events``) may be open at once, and how often an idle one
    gets a heartbeat. Each stream holds a connection and a thread for as long as it lasts."""

    def __init__(self, limit: int = 128, heartbeat: float = 15.0) -> None:
        self.limit = limit
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._open = 0

    def take(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self._open -= 1

    @property
    def open(self) -> int:
        with self._lock:
            return self._open


@dataclass
class App:
    service: VmService
    metrics: Metrics
    openapi: Callable[[], dict[str, object]] = field(default=dict)
    streams: StreamSlots = field(default_factory=StreamSlots)
    fleet: FleetApplier | None = None  # the declarative file (--config), when there is one
    rendered: Rendered = field(default_factory=Rendered)  # the reads' answers, made once
    # what a list shows, by its filters and caller: made again when the listing changes
    shown: Derived[list[Vm | CreatingVm]] = field(default_factory=Derived)
