"""Settings: every flag has an environment variable, and the flag wins.

``load_config`` is the only place that reads the environment; the rest of the
operator receives a frozen ``Config``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vm_operator import __version__
from vm_operator.transport import DEFAULT_CONNECT_TIMEOUT, SshSettings, ssh_settings

CONTAINER_TART = "/app/bin/tart-binary"


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8082
    tart: str = "tart"
    state_dir: str = ""
    tart_timeout: float = 10.0
    start_timeout: float = 30.0
    cache_ttl: float = 1.0
    max_running: int = 2
    max_connections: int = 256
    header_timeout: float = 10.0
    token: str | None = None
    read_token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    access_log: bool = True
    demo: bool = False
    ssh: SshSettings | None = None  # run Tart on another host over SSH (transport.py)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.token or self.read_token)


def default_tart() -> str:
    """The mounted binary in the image, else ``tart`` from PATH (as a Mac user has it)."""
    if os.path.exists(CONTAINER_TART):
        return CONTAINER_TART
    return shutil.which("tart") or "tart"


def default_state_dir(env: Mapping[str, str]) -> str:
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(base) / "vm-operator")


def unreadable_secret_file(variable: str, path: str, exc: OSError, uid: int | None = None,
                           gid: int | None = None) -> str:
    """One line: which file could not be read, as which user, and how to let that user read it."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    message = f"vm-operator: cannot read {variable} {path}: {exc.strerror}"
    if isinstance(exc, PermissionError):
        return (f"{message}; the operator runs as UID {uid} (GID {gid}): let that user read the "
                f"file, e.g. on the host `setfacl -m u:{uid}:r FILE` (README: Tokens in compose)")
    return message


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A token from ``NAME`` or from the file named by ``NAME_FILE`` (Docker/Kubernetes secrets)."""
    value = env.get(name)
    path = env.get(f"{name}_FILE")
    if path:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise SystemExit(unreadable_secret_file(f"{name}_FILE", path, exc)) from None
    if value is not None and value.strip() == "":
        return None
    if value is not None and len(value) < 16:
        raise SystemExit(f"vm-operator: {name} is shorter than 16 characters")
    return value


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _bounded(
    kind: Callable[[str], float], low: float, high: float | None = None
) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` within [low, high]; applies to env defaults too."""

    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low or (high is not None and value > high):
            limit = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{text} is outside {limit}")
        return value

    return check


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    e = env.get
    parser = argparse.ArgumentParser(
        prog="vm-operator", description="An HTTP API for the Tart VMs of this host.",
        epilog="On macOS, `vm-operator launchd install|uninstall|print` runs it as a launchd "
        "agent (see `vm-operator launchd --help`).",
    )
    parser.add_argument("--version", action="version", version=f"vm-operator {__version__}")
    parser.add_argument("--host", default=e("VM_OPERATOR_HOST", "127.0.0.1"),
                        help="address to listen on (VM_OPERATOR_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=_bounded(int, 0, 65535),
                        default=e("VM_OPERATOR_PORT", "8082"),
                        help="port to listen on, 0 for any free one (VM_OPERATOR_PORT, default 8082)")
    parser.add_argument("--tart", default=e("VM_OPERATOR_TART"),
                        help=f"Tart binary (VM_OPERATOR_TART; default {CONTAINER_TART} where it "
                        "exists, else tart on PATH)")
    parser.add_argument("--state-dir", default=e("VM_OPERATOR_STATE_DIR"),
                        help="where run logs and last-run records live (VM_OPERATOR_STATE_DIR)")
    parser.add_argument("--tart-timeout", type=_bounded(float, 0.1, 600),
                        default=e("VM_OPERATOR_TART_TIMEOUT", "10"),
                        help="seconds a Tart call may take (VM_OPERATOR_TART_TIMEOUT, default 10)")
    parser.add_argument("--start-timeout", type=_bounded(float, 0.1, 600),
                        default=e("VM_OPERATOR_START_TIMEOUT", "30"),
                        help="seconds a start waits for Tart to report the VM running "
                        "(VM_OPERATOR_START_TIMEOUT, default 30)")
    parser.add_argument("--cache-ttl", type=_bounded(float, 0, 60),
                        default=e("VM_OPERATOR_CACHE_TTL", "1"),
                        help="how stale a read may be for changes made outside the API, in "
                        "seconds; 0 spawns Tart on every request (VM_OPERATOR_CACHE_TTL, default 1)")
    parser.add_argument("--max-running", type=_bounded(int, 0),
                        default=e("VM_OPERATOR_MAX_RUNNING", "2"),
                        help="cap on running macOS guests, 0 for none (VM_OPERATOR_MAX_RUNNING, "
                        "default 2: Apple's licence limit; Linux guests do not count)")
    parser.add_argument("--max-connections", type=_bounded(int, 1, 10000),
                        default=e("VM_OPERATOR_MAX_CONNECTIONS", "256"),
                        help="connections served at once; more get a prompt 503 "
                        "(VM_OPERATOR_MAX_CONNECTIONS, default 256)")
    parser.add_argument("--header-timeout", type=_bounded(float, 0.1, 300),
                        default=e("VM_OPERATOR_HEADER_TIMEOUT", "10"),
                        help="seconds a client has to send a request's head, and an idle "
                        "keep-alive connection is kept (VM_OPERATOR_HEADER_TIMEOUT, default 10)")
    parser.add_argument("--allowed-hosts", default=e("VM_OPERATOR_ALLOWED_HOSTS", ""),
                        help="comma-separated host names accepted in the Host header besides IP "
                        "literals and localhost (VM_OPERATOR_ALLOWED_HOSTS)")
    parser.add_argument("--cors-origins", default=e("VM_OPERATOR_CORS_ORIGINS", ""),
                        help="comma-separated origins allowed by CORS; empty turns CORS off "
                        "(VM_OPERATOR_CORS_ORIGINS)")
    parser.add_argument("--no-access-log", action="store_true",
                        default=e("VM_OPERATOR_ACCESS_LOG", "1") in ("0", "false", "no"),
                        help="do not log one JSON line per request (VM_OPERATOR_ACCESS_LOG=0)")
    parser.add_argument("--tart-ssh", default=e("VM_OPERATOR_TART_SSH"),
                        metavar="USER@HOST[:PORT]",
                        help="run every Tart call on this host through ssh, e.g. "
                        "me@host.docker.internal; --tart then names Tart there (default tart) "
                        "(VM_OPERATOR_TART_SSH; default: run Tart here)")
    parser.add_argument("--ssh-port", type=_bounded(int, 1, 65535),
                        default=e("VM_OPERATOR_SSH_PORT"),
                        help="SSH port, when --tart-ssh names none "
                        "(VM_OPERATOR_SSH_PORT, default 22)")
    parser.add_argument("--ssh-key", default=e("VM_OPERATOR_SSH_KEY"),
                        help="private key for --tart-ssh (VM_OPERATOR_SSH_KEY; default: ssh's own)")
    parser.add_argument("--ssh-known-hosts", default=e("VM_OPERATOR_SSH_KNOWN_HOSTS"),
                        help="known_hosts file pinning the host's key; nothing else is trusted "
                        "(VM_OPERATOR_SSH_KNOWN_HOSTS; default: ~/.ssh/known_hosts)")
    parser.add_argument("--ssh-connect-timeout", type=_bounded(int, 1, 600),
                        default=e("VM_OPERATOR_SSH_CONNECT_TIMEOUT", str(DEFAULT_CONNECT_TIMEOUT)),
                        help="seconds ssh may take to connect before the call fails with a 503 "
                        f"(VM_OPERATOR_SSH_CONNECT_TIMEOUT, default {DEFAULT_CONNECT_TIMEOUT})")
    parser.add_argument("--demo", action="store_true",
                        help="serve the bundled Tart simulator with demo VMs in a throw-away "
                        "Tart home (for trying the API without a Mac)")
    return parser


def _ssh_settings(args: argparse.Namespace) -> SshSettings | None:
    """The SSH transport, when --tart-ssh is set. The image's VM_OPERATOR_TART (a container
    path) never names Tart on the host: there it is ``tart``, unless --tart says otherwise."""
    if not args.tart_ssh:
        return None
    if args.demo:
        raise SystemExit("vm-operator: --demo serves the local simulator; it cannot be combined "
                         "with --tart-ssh / VM_OPERATOR_TART_SSH")
    tart = args.tart if args.tart and args.tart != CONTAINER_TART else "tart"
    try:
        return ssh_settings(args.tart_ssh, port=args.ssh_port, key=args.ssh_key,
                            known_hosts=args.ssh_known_hosts,
                            connect_timeout=int(args.ssh_connect_timeout), tart=tart)
    except ValueError as exc:
        raise SystemExit(f"vm-operator: {exc}") from None


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(argv)
    return Config(
        host=args.host,
        port=int(args.port),
        tart=args.tart or default_tart(),
        state_dir=args.state_dir or default_state_dir(env),
        tart_timeout=float(args.tart_timeout),
        start_timeout=float(args.start_timeout),
        cache_ttl=float(args.cache_ttl),
        max_running=int(args.max_running),
        max_connections=int(args.max_connections),
        header_timeout=float(args.header_timeout),
        token=_secret(env, "VM_OPERATOR_TOKEN"),
        read_token=_secret(env, "VM_OPERATOR_READ_TOKEN"),
        allowed_hosts=tuple(h.lower() for h in _csv(args.allowed_hosts)),
        cors_origins=_csv(args.cors_origins),
        access_log=not args.no_access_log,
        demo=args.demo,
        ssh=_ssh_settings(args),
    )
