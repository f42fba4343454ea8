"""Settings: every flag has an environment variable, and the flag wins.

The settings are declared once, in ``settings/table.py``; the parser and the loader here are
made from that table. ``load_config`` is the only place that reads the environment; the rest
of the operator receives a frozen ``Config``. Every value is checked alike, whether it came
from a flag or a variable, and a bad one stops start-up with one line that names where it
came from: ``--port`` for the flag, ``VM_OPERATOR_PORT`` for the variable. A variable set to
an empty (or blank) value counts as not set, except the token variables: a configured secret
that is empty or unreadable is an error, never "no auth".
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vm_operator import __version__
from vm_operator.settings import checks
from vm_operator.settings.checks import FALSE_WORDS, TRUE_WORDS
from vm_operator.settings.declare import PREFIX, Declared, declared, variable_for
from vm_operator.settings.docs import flag_help, secret_lines, settings
from vm_operator.settings.table import SECTIONS, Config
from vm_operator.tart.errors import CONTAINER_TART
from vm_operator.tart.home import home_folder, home_label
from vm_operator.tart.ssh_settings import SshSettings, checked_file, parse_target, ssh_settings
from vm_operator.tokens import secret

__all__ = ["CONTAINER_TART", "SECRET_VARIABLES", "Config", "build_parser", "default_state_dir", "default_tart",
           "known_variables", "load_config", "state_base", "unknown_variables", "variable_for"]


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


# --- the command line -------------------------------------------------------------------------

def _epilog() -> str:
    return f"""\
Every flag's variable sets its default; the flag wins. A variable set to an empty value counts
as not set (the token variables below excepted). Yes/no variables take {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)} (any case).

Authentication (environment only, so that tokens never show in `ps`):
{chr(10).join(secret_lines())}
With a token set, every route needs `Authorization: Bearer <token>` but the probes (/health,
/ready), the problem pages (/problems) and the dashboard's page and files (/, /ui/...), which
hold no data: the page asks for a token and sends it with every API call.
Without one the API is open to whoever can reach the port. A token variable that is set but
empty, too short, or names a file that is empty or cannot be read stops start-up.

The other commands (the client of a running operator, plan, launchd): `vm-operator help`."""


def build_parser() -> argparse.ArgumentParser:
    """The flags, one per setting of the table, grouped by its sections. None of them has a
    default here: a flag not given falls back to its variable, then to the default, in
    ``_Sources.value`` (so that a bad variable is named as such)."""
    parser = argparse.ArgumentParser(
        prog="vm-operator serve", description="An HTTP API for the Tart VMs of this host "
        "(`vm-operator [FLAGS]` serves too).",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vm-operator {__version__}")
    groups = {section: parser.add_argument_group(section.title) for section in SECTIONS}
    for item in settings():
        group, kind, flag = groups[item.spec.section], item.spec.kind, item.flag
        if flag is None:  # a secret: its variables are the epilog's
            continue
        if kind == "value":
            group.add_argument(flag, dest=item.name, type=item.spec.check or str,
                               metavar=item.spec.metavar, help=flag_help(item))
        else:  # a switch (--no-NAME) or a flag alone: present or not
            group.add_argument(flag, dest=item.name, action="store_const",
                               const=kind == "flag", help=flag_help(item))
    return parser


# The variables that hold a token itself (not a file's name): no Tart process is given them.
SECRET_VARIABLES = frozenset(item.variable for item in settings() if item.spec.kind == "secret")

# Variables read outside the table: the client's own, and those of docker-compose.yml and the
# Dockerfile (a shell that runs compose may well export them).
OTHER_VARIABLES = frozenset({
    "VM_OPERATOR_URL", "VM_OPERATOR_CA_FILE", "VM_OPERATOR_FINGERPRINT",
    "VM_OPERATOR_CLIENT_CERT", "VM_OPERATOR_CLIENT_KEY", "VM_OPERATOR_BIND", "VM_OPERATOR_IMAGE", "VM_OPERATOR_VERSION",
    "VM_OPERATOR_UID", "VM_OPERATOR_GID",
})


def known_variables() -> frozenset[str]:
    """Every VM_OPERATOR_* variable the operator or its client reads."""
    return frozenset({name for item in settings() for name in item.variables} | OTHER_VARIABLES)


def unknown_variables(env: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """The VM_OPERATOR_* variables set that nothing reads (a typo, or a setting of another
    version), each with the closest known name, if any: start-up warns about them."""
    known = known_variables()
    suffixes = sorted(name.removeprefix(PREFIX) for name in known)
    found: list[tuple[str, str | None]] = []
    for name in sorted(env):
        if name.startswith(PREFIX) and name not in known:
            import difflib  # only a start-up with an unknown variable needs it in memory

            close = difflib.get_close_matches(name.removeprefix(PREFIX), suffixes, n=1,
                                              cutoff=0.75)
            found.append((name, PREFIX + close[0] if close else None))
    return found


def _refusal(origin: str, problem: object) -> SystemExit:
    """Start-up stops with one line naming the flag or variable at fault."""
    return SystemExit(f"vm-operator: {origin}: {problem}")


@dataclass(frozen=True)
class _Sources:
    """Where each setting comes from: the flag when given, else its variable, else the default."""

    args: argparse.Namespace
    env: Mapping[str, str]

    def value(self, item: Declared) -> object:
        given: object = getattr(self.args, item.name, None)
        if given is not None:  # argparse already ran the check on it
            return given
        if item.spec.kind == "flag":
            return item.default
        if item.spec.kind == "secret":
            return secret(self.env, item.variable)
        raw = self.env.get(item.variable, "")
        if not raw.strip():
            return item.default
        check = checks.yes_no if item.spec.kind == "switch" else item.spec.check
        assert check is not None, item.name
        try:
            return check(raw)
        except argparse.ArgumentTypeError as exc:
            raise _refusal(item.variable, exc) from None

    def origin(self, dest: str) -> str:
        """How an error names a setting: its flag when given, else its variable."""
        if getattr(self.args, dest, None) is not None:
            return "--" + dest.replace("_", "-")
        return variable_for(dest)


def _read(sources: _Sources) -> Config:
    """Every setting from its flag, variable or default, in the table's order; one read only
    with another (``only_with``: the SSH settings without --tart-ssh) keeps its default."""
    values: dict[str, Any] = {}
    for item in declared(Config):
        needs = item.spec.only_with
        values[item.name] = (item.default if needs is not None and not values[needs]
                             else sources.value(item))
    return Config(**values)


def _ssh_settings(config: Config, sources: _Sources) -> SshSettings | None:
    """The SSH transport, when --tart-ssh is set. The image's VM_OPERATOR_TART (a container
    path) never names Tart on the host: there it is ``tart``, unless --tart says otherwise."""
    target = config.tart_ssh
    if not target:
        return None
    if config.demo:
        raise SystemExit("vm-operator: --demo serves the local simulator; it cannot be combined "
                         f"with {sources.origin('tart_ssh')}")
    try:
        parse_target(target, config.ssh_port)
    except ValueError as exc:
        raise _refusal(sources.origin("tart_ssh"), exc) from None
    try:
        checked_file(config.ssh_key, "SSH key")
    except ValueError as exc:
        raise _refusal(sources.origin("ssh_key"), exc) from None
    try:
        checked_file(config.ssh_known_hosts, "SSH known_hosts file")
    except ValueError as exc:
        raise _refusal(sources.origin("ssh_known_hosts"), exc) from None
    tart = config.tart
    remote_tart = tart if tart and tart != CONTAINER_TART else "tart"
    try:
        return ssh_settings(target, port=config.ssh_port, key=config.ssh_key,
                            known_hosts=config.ssh_known_hosts,
                            connect_timeout=config.ssh_connect_timeout, tart=remote_tart)
    except ValueError as exc:  # what is left to check is the remote Tart's name
        raise _refusal(sources.origin("tart"), exc) from None


def _check_tls(config: Config, sources: _Sources) -> None:
    """A certificate needs its key and a key its certificate; a client CA needs both. (Whether
    they can be used together, ``edge/tls.server_context`` says at start-up.)"""
    if config.tls_cert and not config.tls_key:
        raise _refusal(sources.origin("tls_cert"), "needs its private key: set --tls-key "
                       "(VM_OPERATOR_TLS_KEY) too")
    if config.tls_key and not config.tls_cert:
        raise _refusal(sources.origin("tls_key"), "needs its certificate: set --tls-cert "
                       "(VM_OPERATOR_TLS_CERT) too")
    if config.tls_client_ca and not config.tls_cert:
        raise _refusal(sources.origin("tls_client_ca"), "mutual TLS needs TLS: set --tls-cert "
                       "and --tls-key too")


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    sources = _Sources(build_parser().parse_args(argv), env)
    config = _read(sources)
    if config.token is not None and config.token == config.read_token:
        raise SystemExit("vm-operator: the read-only token is the full-access token; "
                         "give VM_OPERATOR_READ_TOKEN a token of its own")
    _check_tls(config, sources)
    ssh = _ssh_settings(config, sources)
    tart_home = home_label(env, ssh)
    return replace(config, tart=config.tart or default_tart(),
                   state_dir=config.state_dir or default_state_dir(env, tart_home),
                   ssh=ssh, tart_home=tart_home)
