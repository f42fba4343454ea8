"""The composition root: the one module that builds every layer and plugs them together.

Nothing below builds what it depends on: the core is given its Tart adapter, state store
and clock; the edge is given the route table and the application the handlers use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vm_operator.api import ROUTES, openapi
from vm_operator.api.app import App
from vm_operator.config import Config
from vm_operator.core.clock import SystemClock
from vm_operator.core.service import Settings, VmService
from vm_operator.edge.dispatch import Site
from vm_operator.edge.metrics import Metrics
from vm_operator.edge.routing import RouteTable
from vm_operator.edge.security import Access
from vm_operator.store.state import StateStore
from vm_operator.tart.commands import Tart
from vm_operator.tart.local import LocalTransport
from vm_operator.tart.ssh import SshTransport
from vm_operator.tart.ssh_settings import SshSettings
from vm_operator.tart.transport import Observer, Transport, no_observer


@dataclass(frozen=True)
class Built:
    """The parts of a running operator that its entry point needs."""

    site: Site[App]
    metrics: Metrics
    service: VmService
    tart: Tart


def build_tart(ssh: SshSettings | None, binary: str, env: Mapping[str, str], timeout: float,
               store: StateStore, observe: Observer = no_observer) -> Tart:
    """Tart through the configured transport: here, or on a host over SSH."""
    transport: Transport
    if ssh is None:
        transport = LocalTransport(binary, store, env, timeout, observe)
    else:
        transport = SshTransport(ssh, env, timeout, observe)
    return Tart(transport)


def build_app(config: Config, env: Mapping[str, str]) -> Built:
    metrics = Metrics()
    store = StateStore(config.state_dir)
    tart = build_tart(config.ssh, config.tart, env, config.tart_timeout, store,
                      metrics.observe_tart)
    settings = Settings(cache_ttl=config.cache_ttl, start_timeout=config.start_timeout,
                        max_running=config.max_running)
    service = VmService(tart, store, SystemClock(), settings)
    service.adopt_earlier_runs()  # finish the records of runs an earlier process launched
    access = Access(config.token, config.read_token, config.allowed_hosts, config.cors_origins)
    document = openapi()  # fixed: built once
    app = App(service, metrics, lambda: document)
    site: Site[Any] = Site(RouteTable(ROUTES), access, app)
    return Built(site, metrics, service, tart)
