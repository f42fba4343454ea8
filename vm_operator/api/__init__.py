"""The API: handlers grouped by resource. Each module declares its routes; this is the table,
and /openapi.json is generated from it."""

from __future__ import annotations

from dataclasses import replace

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
    vm_exec,
    vm_exec_socket,
    vm_ip,
    vm_logs,
    vm_manage,
    vm_power,
    vm_tunnel,
    vms,
)
from vm_operator.api.app import App
from vm_operator.api.schemas import SCHEMAS
from vm_operator.edge.openapi import Info, Tag, openapi_document
from vm_operator.edge.routing import Route

# The resources, /openapi.json's tags: a generated client makes one module of each.
SYSTEM = Tag("system", "Health, readiness, metrics and the documentation (this document, the "
             "problem types)")
VMS = Tag("vms", "The VMs: list, read, create, start, stop, suspend, change and delete them; "
          "their IP address, run logs, and commands run in them")
OPERATIONS = Tag("operations", "Long-running operations (create, delete, pull, prune): read, "
                 "cancel, delete")
IMAGES = Tag("images", "Tart's OCI image cache: list, pull, prune, delete")
HOST = Tag("host", "The Tart host: Tart, its home's disk, the macOS slots, the queue")
EVENTS = Tag("events", "The event stream, and a VM's recent events")
CONFIG = Tag("config", "The declarative file (--config)")
DASHBOARD = Tag("dashboard", "The dashboard's page and its assets (public)")
TAGS = (VMS, OPERATIONS, IMAGES, EVENTS, HOST, CONFIG, SYSTEM, DASHBOARD)

_TAGGED: tuple[tuple[Tag, tuple[Route[App], ...]], ...] = (
    (SYSTEM, system.ROUTES), (VMS, vms.ROUTES), (VMS, vm_create.ROUTES), (VMS, vm_power.ROUTES),
    (VMS, vm_ip.ROUTES), (VMS, vm_exec.ROUTES), (VMS, vm_exec_socket.ROUTES), (VMS, vm_tunnel.ROUTES), (VMS, vm_logs.ROUTES),
    (OPERATIONS, operations.ROUTES),
    (VMS, vm_manage.ROUTES), (IMAGES, images.ROUTES), (HOST, host.ROUTES),
    (EVENTS, events.ROUTES), (CONFIG, config.ROUTES), (DASHBOARD, dashboard.ROUTES),
)

ROUTES: tuple[Route[App], ...] = tuple(
    replace(route, tag=tag.name) for tag, routes in _TAGGED for route in routes
)

INFO = Info(title="vm-operator", version=__version__,
            description="Create, list, inspect, start, stop and delete the Tart VMs of a "
            "Mac host.")


def openapi() -> dict[str, object]:
    """/openapi.json: every route of the table, described from its declaration."""
    return openapi_document(ROUTES, {**SCHEMAS, "Event": events.EVENT}, INFO, TAGS)
