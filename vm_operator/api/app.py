"""What the handlers are given: the VM service, the metrics, the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vm_operator.core.fleet_apply import FleetApplier
from vm_operator.core.service import VmService
from vm_operator.edge.metrics import Metrics


@dataclass
class App:
    service: VmService
    metrics: Metrics
    openapi: Callable[[], dict[str, object]] = field(default=dict)
    fleet: FleetApplier | None = None  # the declarative file (--config), when there is one
