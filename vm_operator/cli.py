"""The entry point: read the settings, wire the parts together, serve until a signal.

``serve_forever`` runs in a thread so that the main thread can wait for SIGTERM or
SIGINT and then drain: a Python PID 1 in a container ignores SIGTERM unless it
handles it, which is why ``docker stop`` used to take the full ten seconds.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import replace
from pathlib import Path

from vm_operator import __version__
from vm_operator.api import App
from vm_operator.config import Config, load_config
from vm_operator.metrics import Metrics
from vm_operator.openapi import openapi_document
from vm_operator.security import Access
from vm_operator.server import OperatorServer, log_line
from vm_operator.state import StateStore
from vm_operator.tart import TartError
from vm_operator.transport import build_transport, describe
from vm_operator.vms import VmService

SHUTDOWN_GRACE = 1.5


def simulator_path() -> Path:
    """The bundled simulator, found beside the package in a checkout (or VM_OPERATOR_SIMULATOR)."""
    override = os.environ.get("VM_OPERATOR_SIMULATOR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "scripts" / "tart-simulator"


def demo_setup(config: Config, env: dict[str, str]) -> tuple[Config, Path]:
    """A throw-away Tart home seeded with demo VMs, served by the simulator."""
    simulator = simulator_path()
    if not simulator.is_file():
        raise SystemExit(f"vm-operator: --demo needs the bundled simulator at {simulator} "
                         "(run it from a checkout, or set VM_OPERATOR_SIMULATOR)")
    home = Path(tempfile.mkdtemp(prefix="vm-operator-demo-"))
    env["TART_HOME"] = str(home / "tart")
    env["TART_SIM_SEED"] = "demo"
    return replace(config, tart=str(simulator), state_dir=str(home / "state")), home


def build_app(config: Config, env: dict[str, str]) -> App:
    metrics = Metrics()
    store = StateStore(config.state_dir)
    runner, launcher = build_transport(config.ssh, config.tart, env, config.tart_timeout, store,
                                       metrics.observe_tart)
    service = VmService(
        runner, store, launcher=launcher,
        cache_ttl=config.cache_ttl,
        start_timeout=config.start_timeout,
        max_running=config.max_running,
    )
    service.adopt_earlier_runs()  # finish the records of runs an earlier process launched
    access = Access(config.token, config.read_token, config.allowed_hosts, config.cors_origins)
    return App(service, access, metrics, openapi_document)


def _prepare_state_dir(path: str) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        log_line({"level": "warning", "event": "state-dir",
                  "message": f"cannot create state dir {path}: {exc.strerror}; "
                  "starts will fail until it is writable"})


def _announce(config: Config, server: OperatorServer, app: App) -> None:
    host, port = server.server_address[:2]
    log_line({"level": "info", "event": "listening", "host": host, "port": port,
              "version": __version__, "tart": config.tart, "auth": config.auth_enabled,
              "state_dir": config.state_dir, **describe(config.ssh)})
    if not config.auth_enabled and not _is_loopback(config.host):
        log_line({"level": "warning", "event": "unauthenticated",
                  "message": f"the API listens on {config.host} WITHOUT authentication: anyone who "
                  "can reach this port can start and stop VMs. Set VM_OPERATOR_TOKEN."})
    if not app.service.tart_status()["available"]:
        log_line({"level": "warning", "event": "tart-unavailable",
                  "message": f"Tart cannot be run at {config.tart}; /health reports degraded"})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stop_demo_vms(app: App) -> None:
    """The demo's Tart home is about to be deleted: its simulated VMs go with it."""
    try:
        for vm in app.service.list_vms(fresh=True):
            if vm["state"] != "stopped":
                app.service.runner.run(["stop", "--timeout", "2", vm["name"]], 5)
    except TartError:
        pass


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["launchd"]:  # vm-operator launchd install|uninstall|print (macOS agent)
        from vm_operator.launchd import main as launchd_main

        return launchd_main(words[1:])
    config = load_config(argv)
    env = dict(os.environ)
    demo_home = None
    if config.demo:
        config, demo_home = demo_setup(config, env)
    _prepare_state_dir(config.state_dir)
    app = build_app(config, env)
    try:
        server = OperatorServer(
            (config.host, config.port), app,
            max_connections=config.max_connections,
            header_timeout=config.header_timeout,
            access_log=config.access_log,
        )
    except OSError as exc:
        print(f"vm-operator: cannot listen on {config.host}:{config.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     name="serve", daemon=True).start()
    _announce(config, server, app)
    if demo_home is not None:
        port = server.server_address[1]
        print(f"\nvm-operator demo: simulated Tart VMs served at http://{config.host}:{port}\n"
              f"  curl http://{config.host}:{port}/vms\n"
              f"  curl -X POST http://{config.host}:{port}/vms/macos-sequoia-base/start\n"
              f"  curl -X POST http://{config.host}:{port}/vms/macos-sequoia-base/stop\n"
              "Ctrl-C stops the demo and removes its throw-away Tart home.\n",
              file=sys.stderr, flush=True)
    while not stop.wait(3600):
        pass
    server.shutdown()
    busy = server.drain(SHUTDOWN_GRACE)
    log_line({"level": "info", "event": "stopped", "unfinished_requests": busy})
    if demo_home is not None:
        _stop_demo_vms(app)
        shutil.rmtree(demo_home, ignore_errors=True)
    return 0
