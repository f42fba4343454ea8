"""Settings: every flag has an environment variable, and the flag wins.

``load_config`` is the only place that reads the environment; the rest of the
operator receives a frozen ``Config``. Every value is checked alike, whether it came
from a flag or a variable, and a bad one stops start-up with one line that names
where it came from: ``--port`` for the flag, ``VM_OPERATOR_PORT`` for the variable.
A variable set to an empty (or blank) value counts as not set, except the token
variables: a configured secret that is empty or unreadable is an error, never "no auth".
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from vm_operator import __version__
from vm_operator.tart.errors import CONTAINER_TART
from vm_operator.tart.home import home_folder, home_label
from vm_operator.tart.ssh_settings import (
    DEFAULT_CONNECT_TIMEOUT,
    SshSettings,
    checked_file,
    parse_target,
    ssh_settings,
)
from vm_operator.tokens import MIN_TOKEN_LENGTH, secret

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8082
    tart: str = "tart"
    state_dir: str = ""
    tart_timeout: float = 10.0
    pull_timeout: float = 3600.0
    start_timeout: float = 30.0
    cache_ttl: float = 1.0
    config_ttl: float = 300.0
    max_running: int = 2
    max_connections: int = 256
    header_timeout: float = 10.0
    token: str | None = None
    read_token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    access_log: bool = True
    demo: bool = False
    ssh: SshSettings | None = None  # run Tart on another host over SSH (tart/ssh.py)
    reconcile_interval: float = 5.0  # seconds between the reconciler's periodic passes
    events_heartbeat: float = 15.0  # seconds between heartbeats of a quiet event stream
    events_max_streams: int = 128  # event streams open at once
    events_queue: int = 1000  # events a watcher may fall behind before it is dropped
    events_history: int = 1000  # events kept for Last-Event-ID resumes
    watch_interval: float = 1.0  # seconds between two looks at Tart while anyone watches
    ready_port: int = 22  # a running VM is ready once its guest accepts connections here
    config: str | None = None  # the declarative file of VMs (core/fleet.py), absolute
    tart_home: str = ""  # the Tart home served (tart/home.py's label); its state dir says so

    @property
    def auth_enabled(self) -> bool:
        return bool(self.token or self.read_token)


def default_tart() -> str:
    """The mounted binary in the image, else ``tart`` from PATH (as a Mac user has it)."""
    if os.path.exists(CONTAINER_TART):
        return CONTAINER_TART
    return shutil.which("tart") or "tart"


def state_base(env: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/vm-operator`` (else ``~/.local/state/vm-operator``)."""
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vm-operator"


def default_state_dir(env: Mapping[str, str], tart_home: str) -> str:
    """One state directory per Tart home (``tart/home.py``): two operators of one user on two
    homes never share specs, run records, logs or run locks."""
    return str(state_base(env) / "homes" / home_folder(tart_home))


# --- one value: these check a flag's value (as argparse types) and a variable's alike ---------

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def _in_range(value: float, text: str, low: float, high: float | None) -> None:
    if high is None and value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low:g}, not {text}")
    if high is not None and not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, not {text}")


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """A whole number within [low, high]."""

    def check(text: str) -> int:
        text = text.strip()
        if not _INTEGER.fullmatch(text):
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}")
        value = int(text)
        _in_range(value, text, low, high)
        return value

    return check


def _decimal(low: float, high: float) -> Callable[[str], float]:
    """A number of seconds (decimals allowed) within [low, high]."""

    def check(text: str) -> float:
        text = text.strip()
        if not _DECIMAL.fullmatch(text):
            raise argparse.ArgumentTypeError(f"must be a number, not {text!r}")
        value = float(text)
        _in_range(value, text, low, high)
        return value

    return check


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(
        f"must be one of {', '.join(TRUE_WORDS)} (on) or {', '.join(FALSE_WORDS)} (off), "
        f"not {text!r}"
    )


def _text(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _readable_file(text: str) -> str:
    """A file this process can read (the declarative file): its absolute path."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    try:
        with open(text, "rb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror or exc}") from None
    return os.path.abspath(text)


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return len(text) <= 253 and _HOST_NAME.fullmatch(text) is not None


def _host(text: str) -> str:
    host = text.strip()
    if not _is_host(host):
        raise argparse.ArgumentTypeError(f"must be an IP address or a host name, not {text!r}")
    return host


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _host_list(text: str) -> tuple[str, ...]:
    for name in _csv(text):
        if not _is_host(name):
            raise argparse.ArgumentTypeError(
                f"must be host names separated by commas (no scheme, no port); {name!r} is not one"
            )
    return tuple(name.lower() for name in _csv(text))


def _origin_list(text: str) -> tuple[str, ...]:
    for origin in _csv(text):
        if not _ORIGIN.fullmatch(origin):
            raise argparse.ArgumentTypeError(
                "must be origins (scheme://host[:port], no path, never *) separated by commas; "
                f"{origin!r} is not one"
            )
    return tuple(origin.lower() for origin in _csv(text))


_PORT = _integer(0, 65535)
_SSH_PORT = _integer(1, 65535)
_SSH_CONNECT_TIMEOUT = _integer(1, 600)
_TART_TIMEOUT = _decimal(0.1, 600)
_PULL_TIMEOUT = _decimal(1, 86400)
_START_TIMEOUT = _decimal(0.1, 600)
_CACHE_TTL = _decimal(0, 60)
_CONFIG_TTL = _decimal(0, 86400)
_MAX_RUNNING = _integer(0)
_MAX_CONNECTIONS = _integer(1, 10000)
_HEADER_TIMEOUT = _decimal(0.1, 300)
_RECONCILE_INTERVAL = _decimal(0.1, 3600)
_EVENTS_HEARTBEAT = _decimal(0.05, 300)
_EVENTS_MAX_STREAMS = _integer(1, 10000)
_EVENTS_QUEUE = _integer(1, 100000)
_EVENTS_HISTORY = _integer(1, 100000)
_WATCH_INTERVAL = _decimal(0.1, 60)
_READY_PORT = _integer(1, 65535)


# --- the command line -------------------------------------------------------------------------

_EPILOG = f"""\
Every flag's variable sets its default; the flag wins. A variable set to an empty value counts
as not set (the token variables below excepted). Yes/no variables take {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)} (any case).

Authentication (environment only, so that tokens never show in `ps`):
  VM_OPERATOR_TOKEN            bearer token with full access (at least {MIN_TOKEN_LENGTH} characters)
  VM_OPERATOR_TOKEN_FILE       a file holding that token (Docker and Kubernetes secrets)
  VM_OPERATOR_READ_TOKEN       bearer token for reads only (GET, HEAD, OPTIONS)
  VM_OPERATOR_READ_TOKEN_FILE  a file holding that read-only token
With a token set, every route needs `Authorization: Bearer <token>` but the probes (/health,
/ready), the problem pages (/problems) and the dashboard's page and files (/, /ui/...), which
hold no data: the page asks for a token and sends it with every API call.
Without one the API is open to whoever can reach the port. A token variable that is set but
empty, too short, or names a file that is empty or cannot be read stops start-up.

The other commands (the client of a running operator, plan, launchd): `vm-operator help`."""


def variable_for(dest: str) -> str:
    """The environment variable of a flag's destination: ``tart_timeout`` -> VM_OPERATOR_TART_TIMEOUT."""
    return f"VM_OPERATOR_{dest.upper()}"


def build_parser() -> argparse.ArgumentParser:
    """The flags. None of them has a default here: a flag not given falls back to its variable,
    then to the default, in ``_Sources.value`` (so that a bad variable is named as such)."""
    parser = argparse.ArgumentParser(
        prog="vm-operator serve", description="An HTTP API for the Tart VMs of this host "
        "(`vm-operator [FLAGS]` serves too).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vm-operator {__version__}")
    parser.add_argument("--host", type=_host,
                        help="address to listen on (VM_OPERATOR_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=_PORT,
                        help="port to listen on, 0 for any free one (VM_OPERATOR_PORT, default 8082)")
    parser.add_argument("--tart", type=_text,
                        help=f"Tart binary (VM_OPERATOR_TART; default {CONTAINER_TART} where it "
                        "exists, else tart on PATH)")
    parser.add_argument("--state-dir", type=_text,
                        help="where specs, run logs and records live; must be writable, and "
                        "serves one Tart home (VM_OPERATOR_STATE_DIR; default one per Tart "
                        "home under $XDG_STATE_HOME/vm-operator/homes/)")
    parser.add_argument("--tart-timeout", type=_TART_TIMEOUT,
                        help="seconds a Tart call may take (VM_OPERATOR_TART_TIMEOUT, default 10)")
    parser.add_argument("--pull-timeout", type=_PULL_TIMEOUT,
                        help="seconds a tart clone or tart pull may take (an image of tens of "
                        "GB) before it is killed (VM_OPERATOR_PULL_TIMEOUT, default 3600)")
    parser.add_argument("--start-timeout", type=_START_TIMEOUT,
                        help="seconds a start waits for Tart to report the VM running "
                        "(VM_OPERATOR_START_TIMEOUT, default 30)")
    parser.add_argument("--cache-ttl", type=_CACHE_TTL,
                        help="how stale a read may be for changes made outside the API, in "
                        "seconds; 0 spawns Tart on every request (VM_OPERATOR_CACHE_TTL, default 1)")
    parser.add_argument("--config-ttl", type=_CONFIG_TTL,
                        help="how long a VM's configuration (tart get) is kept while the "
                        "operator does not change it, in seconds: the bound for a `tart set` "
                        "typed by hand; 0 runs tart get on every read (VM_OPERATOR_CONFIG_TTL, "
                        "default 300)")
    parser.add_argument("--max-running", type=_MAX_RUNNING,
                        help="cap on running macOS guests, 0 for none (VM_OPERATOR_MAX_RUNNING, "
                        "default 2: Apple's licence limit; Linux guests do not count)")
    parser.add_argument("--reconcile-interval", type=_RECONCILE_INTERVAL,
                        help="seconds between two periodic passes of the reconciler, which "
                        "keeps VMs as their desired state asks (VM_OPERATOR_RECONCILE_INTERVAL, "
                        "default 5)")
    parser.add_argument("--max-connections", type=_MAX_CONNECTIONS,
                        help="connections served at once; more get a prompt 503 "
                        "(VM_OPERATOR_MAX_CONNECTIONS, default 256)")
    parser.add_argument("--header-timeout", type=_HEADER_TIMEOUT,
                        help="seconds a client has to send a request's head, and an idle "
                        "keep-alive connection is kept (VM_OPERATOR_HEADER_TIMEOUT, default 10)")
    parser.add_argument("--allowed-hosts", type=_host_list,
                        help="comma-separated host names accepted in the Host header besides IP "
                        "literals and localhost (VM_OPERATOR_ALLOWED_HOSTS)")
    parser.add_argument("--cors-origins", type=_origin_list,
                        help="comma-separated origins allowed by CORS; empty turns CORS off "
                        "(VM_OPERATOR_CORS_ORIGINS)")
    parser.add_argument("--no-access-log", action="store_true",
                        help="do not log one JSON line per request (VM_OPERATOR_ACCESS_LOG=off)")
    parser.add_argument("--tart-ssh", type=_text, metavar="USER@HOST[:PORT]",
                        help="run every Tart call on this host through ssh, e.g. "
                        "me@host.docker.internal; --tart then names Tart there (default tart) "
                        "(VM_OPERATOR_TART_SSH; default: run Tart here)")
    parser.add_argument("--ssh-port", type=_SSH_PORT,
                        help="SSH port, when --tart-ssh names none "
                        "(VM_OPERATOR_SSH_PORT, default 22)")
    parser.add_argument("--ssh-key", type=_text,
                        help="private key for --tart-ssh (VM_OPERATOR_SSH_KEY; default: ssh's own)")
    parser.add_argument("--ssh-known-hosts", type=_text,
                        help="known_hosts file pinning the host's key; nothing else is trusted "
                        "(VM_OPERATOR_SSH_KNOWN_HOSTS; default: ~/.ssh/known_hosts)")
    parser.add_argument("--ssh-connect-timeout", type=_SSH_CONNECT_TIMEOUT,
                        help="seconds ssh may take to connect before the call fails with a 503 "
                        f"(VM_OPERATOR_SSH_CONNECT_TIMEOUT, default {DEFAULT_CONNECT_TIMEOUT})")
    parser.add_argument("--events-heartbeat", type=_EVENTS_HEARTBEAT,
                        help="seconds after which a quiet event stream (GET /events) gets a "
                        "heartbeat comment (VM_OPERATOR_EVENTS_HEARTBEAT, default 15)")
    parser.add_argument("--events-max-streams", type=_EVENTS_MAX_STREAMS,
                        help="event streams open at once, each holding a connection; more get "
                        "a prompt 503 (VM_OPERATOR_EVENTS_MAX_STREAMS, default 128)")
    parser.add_argument("--events-queue", type=_EVENTS_QUEUE,
                        help="events a stream's reader may fall behind before it is dropped "
                        "(VM_OPERATOR_EVENTS_QUEUE, default 1000)")
    parser.add_argument("--events-history", type=_EVENTS_HISTORY,
                        help="events kept in memory for a stream that resumes with "
                        "Last-Event-ID; older ones are told as a reset "
                        "(VM_OPERATOR_EVENTS_HISTORY, default 1000)")
    parser.add_argument("--watch-interval", type=_WATCH_INTERVAL,
                        help="seconds between two tart list calls that look for changes made "
                        "outside the operator, while anyone watches GET /events "
                        "(VM_OPERATOR_WATCH_INTERVAL, default 1)")
    parser.add_argument("--ready-port", type=_READY_PORT,
                        help="a running VM is ready once its guest accepts a TCP connection on "
                        "this port, tried from where Tart runs (VM_OPERATOR_READY_PORT, default "
                        "22: the guest's sshd)")
    parser.add_argument("--config", type=_readable_file, metavar="FILE",
                        help="a TOML file of VMs (examples/vms.toml) applied at start-up, on "
                        "SIGHUP and on POST /config/reload (VM_OPERATOR_CONFIG; default: none)")
    parser.add_argument("--demo", action="store_true",
                        help="serve the bundled Tart simulator with demo VMs in a throw-away "
                        "Tart home (for trying the API without a Mac)")
    return parser


# Variables read outside the parser: the secrets (tokens.secret), the client's own, and those
# of docker-compose.yml and the Dockerfile (a shell that runs compose may well export them).
OTHER_VARIABLES = frozenset({
    "VM_OPERATOR_TOKEN", "VM_OPERATOR_TOKEN_FILE", "VM_OPERATOR_READ_TOKEN",
    "VM_OPERATOR_READ_TOKEN_FILE", "VM_OPERATOR_URL",
    "VM_OPERATOR_BIND", "VM_OPERATOR_IMAGE", "VM_OPERATOR_VERSION", "VM_OPERATOR_UID",
    "VM_OPERATOR_GID",
})


def known_variables() -> frozenset[str]:
    """Every VM_OPERATOR_* variable the operator or its client reads."""
    flags = {variable_for(action.dest) for action in build_parser()._actions
             if action.dest not in ("help", "version", "demo", "no_access_log")}
    return frozenset(flags | {"VM_OPERATOR_ACCESS_LOG"} | OTHER_VARIABLES)


def unknown_variables(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """The VM_OPERATOR_* variables set that nothing reads (a typo, or a setting of another
    version), each with the closest known name, if any: start-up warns about them."""
    prefix = "VM_OPERATOR_"
    known = known_variables()
    suffixes = sorted(name.removeprefix(prefix) for name in known)
    found: list[tuple[str, str | None]] = []
    for name in sorted(env):
        if name.startswith(prefix) and name not in known:
            close = difflib.get_close_matches(name.removeprefix(prefix), suffixes, n=1,
                                              cutoff=0.75)
            found.append((name, prefix + close[0] if close else None))
    return found


def _refusal(origin: str, problem: object) -> SystemExit:
    """Start-up stops with one line naming the flag or variable at fault."""
    return SystemExit(f"vm-operator: {origin}: {problem}")


@dataclass(frozen=True)
class _Sources:
    """Where each setting comes from: the flag when given, else its variable, else the default."""

    args: argparse.Namespace
    env: Mapping[str, str]

    def value(self, dest: str, check: Callable[[str], T], default: T) -> T:
        given: T | None = getattr(self.args, dest, None)
        if given is not None:  # argparse already ran ``check`` on it
            return given
        variable = variable_for(dest)
        raw = self.env.get(variable, "")
        if not raw.strip():
            return default
        try:
            return check(raw)
        except argparse.ArgumentTypeError as exc:
            raise _refusal(variable, exc) from None

    def origin(self, dest: str) -> str:
        """How an error names a setting: its flag when given, else its variable."""
        if getattr(self.args, dest, None) is not None:
            return "--" + dest.replace("_", "-")
        return variable_for(dest)


def _ssh_settings(sources: _Sources, tart: str, demo: bool) -> SshSettings | None:
    """The SSH transport, when --tart-ssh is set. The image's VM_OPERATOR_TART (a container
    path) never names Tart on the host: there it is ``tart``, unless --tart says otherwise."""
    target = sources.value("tart_ssh", _text, "")
    if not target:
        return None
    if demo:
        raise SystemExit("vm-operator: --demo serves the local simulator; it cannot be combined "
                         f"with {sources.origin('tart_ssh')}")
    port = sources.value("ssh_port", _SSH_PORT, None)
    connect_timeout = sources.value("ssh_connect_timeout", _SSH_CONNECT_TIMEOUT,
                                    DEFAULT_CONNECT_TIMEOUT)
    key = sources.value("ssh_key", _text, None)
    known_hosts = sources.value("ssh_known_hosts", _text, None)
    try:
        parse_target(target, port)
    except ValueError as exc:
        raise _refusal(sources.origin("tart_ssh"), exc) from None
    try:
        checked_file(key, "SSH key")
    except ValueError as exc:
        raise _refusal(sources.origin("ssh_key"), exc) from None
    try:
        checked_file(known_hosts, "SSH known_hosts file")
    except ValueError as exc:
        raise _refusal(sources.origin("ssh_known_hosts"), exc) from None
    remote_tart = tart if tart and tart != CONTAINER_TART else "tart"
    try:
        return ssh_settings(target, port=port, key=key, known_hosts=known_hosts,
                            connect_timeout=connect_timeout, tart=remote_tart)
    except ValueError as exc:  # what is left to check is the remote Tart's name
        raise _refusal(sources.origin("tart"), exc) from None


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    args = build_parser().parse_args(argv)
    sources = _Sources(args, env)
    tart = sources.value("tart", _text, "")
    # --no-access-log turns it off; else VM_OPERATOR_ACCESS_LOG (a yes/no variable) decides.
    access_log = not args.no_access_log and sources.value("access_log", _boolean, True)
    token = secret(env, "VM_OPERATOR_TOKEN")
    read_token = secret(env, "VM_OPERATOR_READ_TOKEN")
    if token is not None and token == read_token:
        raise SystemExit("vm-operator: the read-only token is the full-access token; "
                         "give VM_OPERATOR_READ_TOKEN a token of its own")
    ssh = _ssh_settings(sources, tart, args.demo)
    tart_home = home_label(env, ssh)
    return Config(
        host=sources.value("host", _host, "127.0.0.1"),
        port=sources.value("port", _PORT, 8082),
        tart=tart or default_tart(),
        state_dir=sources.value("state_dir", _text, "") or default_state_dir(env, tart_home),
        tart_timeout=sources.value("tart_timeout", _TART_TIMEOUT, 10.0),
        pull_timeout=sources.value("pull_timeout", _PULL_TIMEOUT, 3600.0),
        start_timeout=sources.value("start_timeout", _START_TIMEOUT, 30.0),
        cache_ttl=sources.value("cache_ttl", _CACHE_TTL, 1.0),
        config_ttl=sources.value("config_ttl", _CONFIG_TTL, 300.0),
        max_running=sources.value("max_running", _MAX_RUNNING, 2),
        max_connections=sources.value("max_connections", _MAX_CONNECTIONS, 256),
        header_timeout=sources.value("header_timeout", _HEADER_TIMEOUT, 10.0),
        token=token,
        read_token=read_token,
        allowed_hosts=sources.value("allowed_hosts", _host_list, ()),
        cors_origins=sources.value("cors_origins", _origin_list, ()),
        access_log=access_log,
        demo=args.demo,
        ssh=ssh,
        reconcile_interval=sources.value("reconcile_interval", _RECONCILE_INTERVAL, 5.0),
        events_heartbeat=sources.value("events_heartbeat", _EVENTS_HEARTBEAT, 15.0),
        events_max_streams=sources.value("events_max_streams", _EVENTS_MAX_STREAMS, 128),
        events_queue=sources.value("events_queue", _EVENTS_QUEUE, 1000),
        events_history=sources.value("events_history", _EVENTS_HISTORY, 1000),
        watch_interval=sources.value("watch_interval", _WATCH_INTERVAL, 1.0),
        ready_port=sources.value("ready_port", _READY_PORT, 22),
        config=sources.value("config", _readable_file, None),
        tart_home=tart_home,
    )

