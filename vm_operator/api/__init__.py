"""The API: handlers grouped by resource. Each module declares its routes; this is the table."""

from __future__ import annotations

from vm_operator.api import system, vm_ip, vm_logs, vm_power, vms
from vm_operator.api.app import App
from vm_operator.edge.routing import Route

ROUTES: tuple[Route[App], ...] = (
    system.ROUTES + vms.ROUTES + vm_power.ROUTES + vm_ip.ROUTES + vm_logs.ROUTES
)
