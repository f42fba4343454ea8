"""The composition root: the one module that builds every layer and plugs them together.

Nothing below builds what it depends on: the core is given its Tart adapter, state store
and clock; the edge is given the route table and the application the handlers use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vm_operator.api import ROUTES, openapi
from vm_operator.api.app import App, StreamSlots
from vm_operator.api.operations import operation_document
from vm_operator.config import Config
from vm_operator.core.clock import Clock, SystemClock
from vm_operator.core.events import EventBus
from vm_operator.core.fleet_apply import FleetApplier
from vm_operator.core.lifecycle import remove_leftovers, shut_down
from vm_operator.core.operation_events import OperationEvents
from vm_operator.core.operations import OperationQueue
from vm_operator.core.ports import TartPort
from vm_operator.core.service import VmService
from vm_operator.edge.audit import AuditEntry
from vm_operator.edge.dispatch import Site
from vm_operator.edge.metrics import Metrics
from vm_operator.edge.problems import problem_of
from vm_operator.edge.routing import RouteTable
from vm_operator.edge.security import Access, is_loopback
from vm_operator.edge.server import log_line
from vm_operator.edge.token_file import NamedTokens, TokensRefused
from vm_operator.store.audit import AuditLog
from vm_operator.store.operation_records import OperationEvent
from vm_operator.store.operations import OperationStore
from vm_operator.store.specs import SpecStore
from vm_operator.store.state import StateStore
from vm_operator.tart.commands import DEFAULT_PULL_TIMEOUT, Tart
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
    operations: OperationQueue
    operation_store: OperationStore
    fleet: FleetApplier | None = None  # the declarative file (--config), when there is one
    tokens: NamedTokens | None = None  # the tokens file (--tokens-file), when there is one
    audit: AuditLog | None = None

    def start(self) -> None:
        """Start the work that runs beside the requests: the operations' worker, the
        reconciler (its first pass at once: VMs desired running come back) and the declarative
        file's applier, which applies the file once at start-up."""
        self.operations.start()
        self.service.reconciler.start()
        if self.fleet is not None:
            self.fleet.start()
            self.fleet.request("start-up")

    def reload_config(self, cause: str) -> None:
        """Apply the declarative file again, on the applier's thread (SIGHUP)."""
        if self.fleet is not None:
            self.fleet.request(cause)

    def reload_tokens(self, cause: str) -> None:
        """Read the tokens file again (SIGHUP); a refused one leaves the tokens in force. The
        log line names the file and the fault, never a token (the file holds none)."""
        if self.tokens is None:
            return
        try:
            count = self.tokens.reload()
        except TokensRefused as exc:
            log_line({"level": "error", "event": "tokens-refused", "cause": cause,
                      "file": self.tokens.path, "line": exc.line, "key": exc.key,
                      "message": f"{exc}; the previous tokens stay in force"})
            return
        log_line({"level": "info", "event": "tokens-reloaded", "cause": cause,
                  "file": self.tokens.path, "tokens": count})

    def close(self, grace: float) -> None:
        """The operator stops: no new operations; the running one's Tart is killed and its
        record left as it was on disk, for the restarted operator to finish (core.lifecycle).
        The applier and the reconciler stop first: they start nothing more. Over SSH, the
        shared connection ends too."""
        if self.fleet is not None:
            self.fleet.close(grace)
        self.service.reconciler.close()
        self.service.poller.stop()
        shut_down(self.operations, self.operation_store.record, grace)
        if isinstance(self.tart.transport, SshTransport):
            self.tart.transport.close()
        if self.audit is not None:
            self.audit.close()


def build_tart(ssh: SshSettings | None, binary: str, env: Mapping[str, str], timeout: float,
               store: StateStore, observe: Observer = no_observer,
               pull_timeout: float = DEFAULT_PULL_TIMEOUT) -> Tart:
    """Tart through the configured transport: here, or on a host over SSH."""
    transport: Transport
    if ssh is None:
        transport = LocalTransport(binary, store, env, timeout, observe)
    else:
        transport = SshTransport(ssh, env, timeout, observe)
    return Tart(transport, pull_timeout)


def build_operations(state_dir: str, tart: TartPort, specs: SpecStore,
                     clock: Clock) -> tuple[OperationQueue, OperationStore]:
    """The operations queue, its records under ``<state dir>/operations/``: the finished ones
    of earlier runs listed again, those a stop interrupted failed and their leftovers removed.
    Not started: ``Built.start``."""
    store = OperationStore(Path(state_dir) / "operations", clock.utc_now)
    try:
        loaded = store.load(lambda op: remove_leftovers(tart, specs, op))
    except OSError as exc:
        raise SystemExit(f"vm-operator: the operation records in {store.directory} cannot be "
                         f"read: {exc.strerror or exc}") from None
    queue = OperationQueue(clock.utc_now, restored=loaded.operations)
    queue.add_listener(store.record)
    return queue, store


def count_finished(metrics: Metrics, event: OperationEvent) -> None:
    """The metrics' counter of finished operations (not those the history forgets)."""
    if event.operation.finished and not event.forgotten:
        metrics.observe_operation(event.operation.kind, event.operation.state)


def error_kind(exc: Exception) -> str:
    """The problem type of an operation's failure: the catalogue's slug for the exception."""
    problem = problem_of(type(exc))
    return problem.slug if problem is not None else "internal-error"


def build_app(config: Config, env: Mapping[str, str]) -> Built:
    """Every part of the operator, from its configuration."""
    metrics = Metrics()
    store = StateStore(config.state_dir)
    tart = build_tart(config.ssh, config.tart, env, config.tart_timeout, store,
                      metrics.observe_tart, config.pull_timeout)
    clock = SystemClock()
    specs = SpecStore(Path(config.state_dir) / "specs", Path(config.state_dir))
    operations, operation_store = build_operations(config.state_dir, tart, specs, clock)
    service = VmService(tart, store, clock, operations, specs, error_kind, config,
                        EventBus(clock.utc_now, history=config.events_history,
                                 queue_limit=config.events_queue), metrics.observe_reconcile,
                        log_line)
    operations.add_listener(lambda event: count_finished(metrics, event))
    operations.add_listener(OperationEvents(service.events, operation_document))
    service.adopt_earlier_runs()  # finish the records of runs an earlier process launched
    tokens = load_tokens(config.tokens_file)
    access = Access(config.token, config.read_token, config.allowed_hosts, config.cors_origins,
                    tokens, exposed=not is_loopback(config.host))
    audit = AuditLog(config.state_dir)
    document = openapi()  # fixed: built once
    fleet = FleetApplier(service, config.config, log_line) if config.config else None
    app = App(service, metrics, lambda: document,
              StreamSlots(config.events_max_streams, config.events_heartbeat), fleet)
    site = Site(RouteTable(ROUTES), access, app, lambda entry: write_audit(audit, entry))
    return Built(site, metrics, service, tart, operations, operation_store, fleet, tokens, audit)


def load_tokens(path: str | None) -> NamedTokens | None:
    """The tokens file at start-up: one that cannot be read or is bad stops start-up."""
    if path is None:
        return None
    tokens = NamedTokens(path)
    try:
        tokens.reload()
    except TokensRefused as exc:
        raise SystemExit(f"vm-operator: the tokens file {path} (--tokens-file) is refused: "
                         f"{exc}") from None
    return tokens


def write_audit(log: AuditLog, entry: AuditEntry) -> None:
    """An audit line of the edge, written by the store."""
    log.write(entry.to_json())
