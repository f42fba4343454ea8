"""Every setting of the operator, each declared once: name, check, default, help, section.

``Settings`` holds those the core reads (``core/service.VmService`` is given one); ``Config``
adds the rest and what start-up derives from them (the SSH transport, the Tart home), and is
what ``config.load_config`` returns. Every flag, its variable, the help, the loader, the
README's tables and the known ``VM_OPERATOR_*`` variables come from these fields.

To add a setting: one field here, with its call; read it where it is used (the core through
``Settings``, the other parts as ``wiring.py`` passes them), and put the README's table that
``python -m vm_operator.settings`` prints in place (a unit test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass

from vm_operator.settings import checks
from vm_operator.settings.declare import Section, flag, secret, setting, switch
from vm_operator.tart.commands import DEFAULT_PULL_TIMEOUT
from vm_operator.tart.errors import CONTAINER_TART
from vm_operator.tart.ssh_settings import DEFAULT_CONNECT_TIMEOUT, SshSettings
from vm_operator.tokens import MIN_TOKEN_LENGTH

SERVING = Section("serving the API", "Configuration")
TART = Section("Tart", "Configuration")
VMS = Section("reads and starts", "Configuration")
DESIRED = Section("desired state", "Configuration")
EVENTS = Section("events", "Configuration")
TLS = Section("TLS", "Configuration")
SSH = Section("Tart over SSH", "Container on a Mac: Tart over SSH")
SECTIONS = (SERVING, TLS, TART, VMS, DESIRED, EVENTS, SSH)  # the help's order and the README's


@dataclass(frozen=True)
class Settings:
    """What the core is tuned by."""

    cache_ttl: float = setting(
        1.0, checks.decimal(0, 60), VMS, unit="s",
        help="how stale a read may be for changes made outside the API, in seconds; 0 spawns "
        "Tart on every request")
    config_ttl: float = setting(
        300.0, checks.decimal(0, 86400), VMS, unit="s",
        help="how long a VM's configuration (`tart get`) is kept while the operator does not "
        "change it, in seconds: the bound for a `tart set` typed by hand; 0 runs `tart get` on "
        "every read")
    start_timeout: float = setting(
        30.0, checks.decimal(0.1, 600), VMS, unit="s",
        help="seconds a start waits for Tart to report the VM running")
    max_running: int = setting(
        2, checks.integer(0), VMS,
        help="cap on running macOS guests, 0 for none (the default is Apple's licence limit; "
        "Linux guests do not count)")
    ready_port: int = setting(
        22, checks.integer(1, 65535), VMS,
        help="a running VM is ready once its guest accepts a TCP connection on this port (by "
        "default the guest's sshd's), tried from where Tart runs")
    reconcile_interval: float = setting(
        5.0, checks.decimal(0.1, 3600), DESIRED, unit="s",
        help="seconds between two periodic passes of the reconciler, which keeps VMs as their "
        "desired state asks")
    watch_interval: float = setting(
        1.0, checks.decimal(0.1, 60), EVENTS, unit="s",
        help="seconds between two `tart list` calls that look for changes made outside the "
        "operator, while anyone watches GET /events")
    poll_interval: float = 0.02  # between two looks at a starting VM (not a setting)


@dataclass(frozen=True)
class Config(Settings):
    """Every setting, as start-up resolved it."""

    host: str = setting("127.0.0.1", checks.host, SERVING, help="address to listen on")
    port: int = setting(8082, checks.integer(0, 65535), SERVING,
                        help="port to listen on, 0 for any free one")
    max_connections: int = setting(
        256, checks.integer(1, 10000), SERVING,
        help="connections served at once; more get a prompt 503")
    header_timeout: float = setting(
        10.0, checks.decimal(0.1, 300), SERVING, unit="s",
        help="seconds a client has to send a request's head, and an idle keep-alive connection "
        "is kept")
    allowed_hosts: tuple[str, ...] = setting(
        (), checks.host_list, SERVING, shown="none",
        help="comma-separated host names accepted in the Host header besides IP literals and "
        "localhost")
    cors_origins: tuple[str, ...] = setting(
        (), checks.origin_list, SERVING, shown="none, CORS off",
        help="comma-separated origins allowed by CORS; empty turns CORS off")
    access_log: bool = switch(SERVING, help="log one JSON line per request on stdout")
    token: str | None = secret(
        SERVING, help=f"bearer token with full access (at least {MIN_TOKEN_LENGTH} characters)",
        file_help="a file holding that token (Docker and Kubernetes secrets)")
    read_token: str | None = secret(
        SERVING, help="bearer token for reads only (GET, HEAD, OPTIONS)",
        file_help="a file holding that read-only token")
    tokens_file: str | None = setting(
        None, checks.readable_file, SERVING, shown="none", metavar="FILE",
        help="a TOML file of named tokens with roles and VM patterns (README: Tokens and "
        "roles), read again on SIGHUP; one that cannot be read or is bad stops start-up")
    tls_cert: str | None = setting(
        None, checks.readable_file, TLS, shown="none, plain HTTP", metavar="FILE",
        help="serve HTTPS on the same port with this PEM certificate (chain); needs --tls-key. "
        "TLS 1.2 and later only; `vm-operator tls init` makes one")
    tls_key: str | None = setting(
        None, checks.readable_file, TLS, shown="none", metavar="FILE",
        help="the PEM private key of --tls-cert (unencrypted); a key that does not match the "
        "certificate stops start-up")
    tls_client_ca: str | None = setting(
        None, checks.readable_file, TLS, shown="none", metavar="FILE",
        help="mutual TLS: every client must present a certificate signed by a CA of this PEM "
        "file, in addition to the token; needs --tls-cert")
    tart: str = setting(
        "", checks.text, TART, shown=f"{CONTAINER_TART} where it exists, else tart on PATH",
        help="Tart binary")
    state_dir: str = setting(
        "", checks.text, TART,
        shown="one per Tart home under $XDG_STATE_HOME/vm-operator/homes/ (~/.local/state "
        "without XDG_STATE_HOME)",
        help="where specs, run logs and records live; must be writable, and serves one Tart home")
    tart_timeout: float = setting(
        10.0, checks.decimal(0.1, 600), TART, unit="s", help="seconds a Tart call may take")
    pull_timeout: float = setting(
        DEFAULT_PULL_TIMEOUT, checks.decimal(1, 86400), TART, unit="s",
        help="seconds a `tart clone` or `tart pull` may take (an image of tens of GB) before it "
        "is killed")
    demo: bool = flag(
        TART, help="serve the bundled Tart simulator with demo VMs in a throw-away Tart home "
        "(for trying the API without a Mac)")
    config: str | None = setting(
        None, checks.readable_file, DESIRED, shown="none", metavar="FILE",
        help="a TOML file of VMs (examples/vms.toml) applied at start-up, on SIGHUP and on "
        "POST /config/reload; one that cannot be read stops start-up")
    events_heartbeat: float = setting(
        15.0, checks.decimal(0.05, 300), EVENTS, unit="s",
        help="seconds after which a quiet event stream (GET /events) gets a heartbeat comment")
    events_max_streams: int = setting(
        128, checks.integer(1, 10000), EVENTS,
        help="event streams open at once, each holding a connection; more get a prompt 503")
    events_queue: int = setting(
        1000, checks.integer(1, 100000), EVENTS,
        help="events a stream's reader may fall behind before it is dropped")
    events_history: int = setting(
        1000, checks.integer(1, 100000), EVENTS,
        help="events kept in memory for a stream that resumes with Last-Event-ID; older ones "
        "are told as a reset")
    tart_ssh: str = setting(
        "", checks.text, SSH, shown="off, Tart runs here", metavar="USER@HOST[:PORT]",
        help="run every Tart call on this host through ssh, e.g. me@host.docker.internal; "
        "--tart then names Tart there, tart unless given")
    ssh_port: int | None = setting(
        None, checks.integer(1, 65535), SSH, shown=f"{SshSettings.port}", only_with="tart_ssh",
        help="SSH port, when --tart-ssh names none")
    ssh_key: str | None = setting(
        None, checks.text, SSH, shown="ssh's own keys", only_with="tart_ssh",
        help="private key for --tart-ssh")
    ssh_known_hosts: str | None = setting(
        None, checks.text, SSH, shown="~/.ssh/known_hosts", only_with="tart_ssh",
        help="known_hosts file pinning the host's key; nothing else is trusted")
    ssh_connect_timeout: int = setting(
        DEFAULT_CONNECT_TIMEOUT, checks.integer(1, 600), SSH, unit="s", only_with="tart_ssh",
        help="seconds ssh may take to connect before the call fails with a 503")

    # Derived at start-up (config.load_config), not settings:
    ssh: SshSettings | None = None  # run Tart on another host over SSH (tart/ssh.py)
    tart_home: str = ""  # the Tart home served (tart/home.py's label); its state dir says so

    @property
    def auth_enabled(self) -> bool:
        return bool(self.token or self.read_token or self.tokens_file)
