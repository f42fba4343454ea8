"""The entry point: read the settings, wire the parts together, serve until a signal.

``serve_forever`` runs in a thread so that the main thread can wait for SIGTERM or
SIGINT and then drain: a Python PID 1 in a container ignores SIGTERM unless it
handles it, which is why ``docker stop`` used to take the full ten seconds.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from vm_operator import __version__
from vm_operator.command_line import (
    FLAG_OPTIONS,
    HELP,
    LAUNCHD,
    OPERATOR,
    PLAN,
    VALUE_OPTIONS,
    Topic,
    command_index,
)
from vm_operator.config import (
    SECRET_VARIABLES,
    Config,
    default_state_dir,
    load_config,
    state_base,
    unknown_variables,
)
from vm_operator.edge.security import is_loopback
from vm_operator.edge.server import OperatorServer, log_line
from vm_operator.edge.tls import TlsSetupError, server_context
from vm_operator.store.home import HOME_FILE, HomeMismatch, claim
from vm_operator.tart.errors import TartError, tart_advice
from vm_operator.tart.home import home_label
from vm_operator.tart.names import VmName, name_problem
from vm_operator.tart.ssh_settings import describe
from vm_operator.wiring import Built, build_app

SHUTDOWN_GRACE = 1.5


def simulator_path(home: Path) -> Path:
    """An executable that runs the packaged simulator (or VM_OPERATOR_SIMULATOR, if set).

    Tart is one executable path, and the simulator is a module of this package: a small
    wrapper in the demo's own directory runs it with this very interpreter and this very copy
    of the package, whether it was installed (pip, pipx) or is run from a checkout. An installed
    ``tart-simulator`` console script could belong to another installation, or be missing.
    """
    override = os.environ.get("VM_OPERATOR_SIMULATOR")
    if override:
        return Path(override)
    package_parent = Path(__file__).resolve().parent.parent
    wrapper = home / "tart-simulator"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(package_parent))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f'exec {shlex.quote(sys.executable)} -m vm_operator.simulator "$@"\n'
    )
    wrapper.chmod(0o700)
    return wrapper


def demo_setup(config: Config, env: dict[str, str]) -> tuple[Config, Path]:
    """A throw-away Tart home seeded with demo VMs, served by the packaged simulator."""
    home = Path(tempfile.mkdtemp(prefix="vm-operator-demo-"))
    simulator = simulator_path(home)
    if not (simulator.is_file() and os.access(simulator, os.X_OK)):  # X_OK fails on noexec
        shutil.rmtree(home, ignore_errors=True)
        raise SystemExit(f"vm-operator: --demo cannot execute its simulator at {simulator} "
                         "(is the temporary directory mounted noexec? set TMPDIR to another "
                         "directory)")
    env["TART_HOME"] = str(home / "tart")
    env["TART_SIM_SEED"] = "demo"
    # The simulated guests listen on loopback addresses (the simulator's default), on a port
    # of their own: the readiness probe goes there, never off this machine.
    guest_port = env.get("TART_SIM_GUEST_PORT", "").strip() or str(free_loopback_port())
    env["TART_SIM_GUEST_PORT"] = guest_port
    return replace(config, tart=str(simulator), state_dir=str(home / "state"),
                   tart_home=home_label(env, None),
                   ready_port=int(guest_port)), home


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for the demo's simulated guests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_state_dir(path: str, tart_home: str) -> None:
    """Create the state directory, prove it writable and make it the one of ``tart_home``
    (store/home.py), or stop start-up naming it.

    A real probe (create, write, fsync and remove a file), not a permission check: only
    that tells a read-only mount, a full disk or a path under a plain file from a good one.
    """
    where = f"the state directory {path} (--state-dir, VM_OPERATOR_STATE_DIR)"
    if os.path.exists(path) and not os.path.isdir(path):
        raise SystemExit(f"vm-operator: {where} is not a directory")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-probe.")
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise SystemExit(f"vm-operator: {where} cannot be written: {exc.strerror or exc}; "
                         "make it writable for this user, or choose another") from None
    try:
        claim(Path(path), tart_home)
    except HomeMismatch as exc:
        raise SystemExit(
            f"vm-operator: {where} cannot serve the Tart home {tart_home}: {exc.reason}. Its "
            "specs, run records and logs are that home's VMs'; give each Tart home a state "
            "directory of its own (leave --state-dir unset: the default is one per Tart home), "
            f"or, if it is the same home under another name, remove {Path(path) / HOME_FILE}"
        ) from None
    except OSError as exc:
        raise SystemExit(f"vm-operator: {where} cannot record the Tart home it serves: "
                         f"{exc.strerror or exc}") from None


def earlier_state(config: Config, env: Mapping[str, str]) -> Path | None:
    """The state an earlier version kept in ``$XDG_STATE_HOME/vm-operator`` itself, for
    whichever Tart home it ran on, when this operator uses the default state directory."""
    base = state_base(env)
    if config.state_dir != default_state_dir(env, config.tart_home):
        return None
    found = [base / part for part in ("specs", "vms", "operations") if (base / part).is_dir()]
    return base if found else None


def _announce(config: Config, server: OperatorServer, built: Built) -> None:
    host, port = server.server_address[:2]
    log_line({"level": "info", "event": "listening", "host": host, "port": port,
              "version": __version__, "tart": config.tart, "auth": config.auth_enabled,
              "tls": "mutual" if config.tls_client_ca else bool(config.tls_cert),
              "state_dir": config.state_dir, "tart_home": config.tart_home,
              **describe(config.ssh)})
    earlier = earlier_state(config, os.environ)
    if earlier is not None:
        log_line({"level": "warning", "event": "earlier-state-dir",
                  "message": f"{earlier} holds the state of an earlier version, which kept one "
                  "state directory for every Tart home; state now lives in one directory per "
                  f"Tart home. If it was {config.tart_home}'s, stop the operator and move its "
                  f"specs, vms and operations folders into {config.state_dir}"})
    if not config.auth_enabled and not is_loopback(config.host):
        log_line({"level": "warning", "event": "unauthenticated",
                  "message": f"the API listens on {config.host} WITHOUT authentication: anyone who "
                  "can reach this port can start and stop VMs (running commands in guests and "
                  "tunnels to their ports are refused until a token is set). Set "
                  "VM_OPERATOR_TOKEN."})
    if not built.service.tart_status()["available"]:
        advice = "" if config.ssh else f" {tart_advice(config.tart)}"
        log_line({"level": "warning", "event": "tart-unavailable",
                  "message": f"Tart cannot be run at {config.tart}; /health reports degraded."
                  f"{advice}"})


def _stop_demo_vms(built: Built) -> None:
    """The demo's Tart home is about to be deleted: its simulated VMs go with it."""
    try:
        for vm in built.service.list_vms(fresh=True):
            if vm["state"] != "stopped" and name_problem(vm["name"]) is None:
                built.tart.stop(VmName(vm["name"]), 2)
    except TartError:
        pass


def tart_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment every Tart process is given: the operator's own (TART_HOME, PATH, …)
    without the API's tokens, which no Tart process needs to carry."""
    return {key: value for key, value in environ.items() if key not in SECRET_VARIABLES}


def _serve(words: list[str]) -> int:
    config = load_config(words)
    env = tart_environment(os.environ)
    if not config.demo:
        return serve(config, env)
    config, demo_home = demo_setup(config, env)
    try:
        return serve(config, env, demo_home)
    finally:  # however the demo ends, even when it never started, its Tart home goes
        shutil.rmtree(demo_home, ignore_errors=True)


def _plan(words: list[str]) -> int:
    from vm_operator.plan import main as plan_main

    return plan_main(words)


def _token(words: list[str]) -> int:
    from vm_operator.token_command import main as token_main

    return token_main(words)


def _launchd(words: list[str]) -> int:
    from vm_operator.platform.launchd import main as launchd_main

    return launchd_main(words)


def _tls(words: list[str]) -> int:
    from vm_operator.platform.certificate import main as tls_main

    return tls_main(words)


@dataclass(frozen=True)
class Program:
    """A command of ``vm-operator`` that is not the client's: its name, its line in the
    help, and what runs it with the words after its name."""

    topic: Topic
    run: Callable[[list[str]], int]


PROGRAMS: dict[str, Program] = {program.topic.name: program for program in (
    Program(Topic("serve", "run the operator: the HTTP API over Tart, until SIGTERM or Ctrl-C "
                  "(also without the word: vm-operator [FLAGS]; --demo: over simulated VMs)",
                  OPERATOR), _serve),
    Program(Topic("plan", "print what applying a declarative FILE (--config) would do to the VMs "
                  "of a running operator: its steps, one line each; nothing is done", PLAN),
            _plan),
    Program(Topic("launchd", "install, uninstall or print the launchd agent that runs "
                  "vm-operator for this Mac user (started at login, restarted when it exits)",
                  LAUNCHD), _launchd),
    Program(Topic("token", "make a named token for the tokens file (token new NAME --role "
                  "ROLE [--vm PATTERN]), or print what each role allows (token roles)",
                  OPERATOR), _token),
    Program(Topic("tls", "tls init --dir DIR [--name HOST]…: write a self-signed certificate "
                  "and key for HTTPS (--tls-cert, --tls-key) and print the fingerprint clients "
                  "pin; tls fingerprint FILE: print a certificate's", OPERATOR), _tls),
)}
TOPICS = tuple(program.topic for program in PROGRAMS.values())


def _client(words: list[str]) -> int:
    from vm_operator.client import main as client_main

    return client_main(words, extra=TOPICS)


def main(argv: list[str] | None = None) -> int:
    """``vm-operator COMMAND …``: the command found after the client's options (which may
    come first) runs; without one, the words are the server's flags and it serves."""
    words = sys.argv[1:] if argv is None else list(argv)
    at = command_index(words)
    if at is None:  # no command: the server's flags (none: serve with the defaults)
        if words[:1] in (["-h"], ["--help"]):
            return _client(["--help"])
        if words and words[0].partition("=")[0] in VALUE_OPTIONS | FLAG_OPTIONS:
            return _client(words)  # the client's options, and no command: its usage error
        return _serve(words)
    name, others = words[at], words[:at] + words[at + 1:]
    if name in PROGRAMS:
        return PROGRAMS[name].run(others)
    if name == HELP and words[at + 1:at + 2] and words[at + 1] in PROGRAMS:
        return _help_of(PROGRAMS[words[at + 1]])
    return _client(words)  # a client command, help, or a word no command has (exit 2)


def _help_of(program: Program) -> int:
    try:
        return program.run(["--help"])
    except SystemExit as exc:  # argparse's --help
        return exc.code if isinstance(exc.code, int) else 2


class Signals:
    """The signals, read by the main thread's loop, which does the work.

    The handlers do nothing: Python runs a handler between two bytecodes of the main thread,
    wherever it is, so a handler that took a lock (``Event.set`` does) could wait forever for
    a lock its own thread holds. The interpreter's C handler instead writes each signal's
    number to a pipe (``signal.set_wakeup_fd``): the loop reads them from there, in order,
    and none is lost."""

    def __init__(self) -> None:
        self.stopping = False
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        self._write = write
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def handle(self, signum: int, frame: object) -> None:
        """The Python-level handler: nothing (the pipe carries the signal)."""

    def wait(self) -> list[int]:
        """The signals that came since the last call (waiting up to an hour for one)."""
        ready, _, _ = select.select([self._read], [], [], 3600)
        if not ready:
            return []
        found = list(os.read(self._read, 512))
        if any(sig in (signal.SIGTERM, signal.SIGINT) for sig in found):
            self.stopping = True
        return found

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        os.close(self._read)
        os.close(self._write)


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context when --tls-cert is set; files that cannot be used together
    stop start-up with one line."""
    if not (config.tls_cert and config.tls_key):
        return None
    try:
        return server_context(config.tls_cert, config.tls_key, config.tls_client_ca)
    except TlsSetupError as exc:
        raise SystemExit(f"vm-operator: TLS (--tls-cert, --tls-key, --tls-client-ca): {exc}"
                         ) from None


def serve(config: Config, env: dict[str, str], demo_home: Path | None = None) -> int:
    """Check the TLS files and the state directory, listen, serve until SIGTERM or SIGINT,
    drain."""
    tls = tls_context(config)
    prepare_state_dir(config.state_dir, config.tart_home)
    built = build_app(config, env)
    try:
        server = OperatorServer(
            (config.host, config.port), built.site, built.metrics,
            max_connections=config.max_connections,
            header_timeout=config.header_timeout,
            access_log=config.access_log, tls=tls,
        )
    except OSError as exc:
        print(f"vm-operator: cannot listen on {config.host}:{config.port}: {exc.strerror}",
              file=sys.stderr)
        return 1
    signals = Signals()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signals.handle)
    if config.config or config.tokens_file:  # without either, SIGHUP keeps its default action
        signal.signal(signal.SIGHUP, signals.handle)
    for variable, close in unknown_variables(os.environ):  # a typo must not pass unseen
        log_line({"level": "warning", "event": "unknown-variable", "variable": variable,
                  "did_you_mean": close})
    built.start()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                     name="serve", daemon=True).start()
    _announce(config, server, built)
    if demo_home is not None:
        port, scheme = server.server_address[1], "https" if tls else "http"
        print(f"\nvm-operator demo: simulated Tart VMs served at {scheme}://{config.host}:{port}\n"
              f"  curl {scheme}://{config.host}:{port}/vms\n"
              f"  curl -X POST {scheme}://{config.host}:{port}/vms/macos-sequoia-base/start\n"
              f"  curl -X POST {scheme}://{config.host}:{port}/vms/macos-sequoia-base/stop\n"
              "Ctrl-C stops the demo and removes its throw-away Tart home.\n",
              file=sys.stderr, flush=True)
    while not signals.stopping:
        came = signals.wait()
        if signal.SIGHUP in came and not signals.stopping:
            built.reload_tokens("SIGHUP")
            if config.config:
                log_line({"level": "info", "event": "config-reload", "cause": "SIGHUP",
                          "file": config.config})
                built.reload_config("SIGHUP")
    signals.close()
    server.shutdown()
    busy = server.drain(SHUTDOWN_GRACE)
    built.close(SHUTDOWN_GRACE)
    log_line({"level": "info", "event": "stopped", "unfinished_requests": busy})
    if demo_home is not None:
        _stop_demo_vms(built)
    return 0
