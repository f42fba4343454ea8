"""The API: handlers grouped by resource. Each module declares its routes; this is the table,
and /openapi.json is generated from it."""

from __future__ import annotations

from vm_operator import __version__
from vm_operator.api import (
    config,
    dashboard,
    events,
    host,
    images,
    operations,
    system,
    vm_create,
    vm_ip,
    vm_logs,
    vm_manage,
    vm_power,
    vms,
)
from vm_operator.api.app import App
from vm_operator.api.schemas import SCHEMAS
from vm_operator.edge.openapi import Info, openapi_document
from vm_operator.edge.routing import Route

ROUTES: tuple[Route[App], ...] = (
    system.ROUTES + vms.ROUTES + vm_create.ROUTES + vm_power.ROUTES + vm_ip.ROUTES
    + vm_logs.ROUTES + operations.ROUTES + vm_manage.ROUTES + images.ROUTES + host.ROUTES
    + events.ROUTES + config.ROUTES + dashboard.ROUTES
)

INFO = Info(title="vm-operator", version=__version__,
            description="Create, list, inspect, start, stop and delete the Tart VMs of a "
            "Mac host.")


def openapi() -> dict[str, object]:
    """/openapi.json: every route of the table, described from its declaration."""
    return openapi_document(ROUTES, SCHEMAS, INFO)
