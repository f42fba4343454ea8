"""The SSH transport's settings (pure): where Tart runs, and how ssh must reach it.

Kept apart from the transport itself, so that reading the configuration never imports the
code that runs ssh.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

DEFAULT_CONNECT_TIMEOUT = 5
# Seconds the shared SSH connection (ssh_commands.ssh_options) stays open after its last call.
DEFAULT_CONTROL_PERSIST = 120

# A user or a host name: it never starts with "-" (ssh would read an option) or ".".
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")
_SAFE_PATH = re.compile(r"[\w./@+,:= ~-]+")


@dataclass(frozen=True)
class SshSettings:
    """Where Tart runs, and how ssh must reach it."""

    destination: str  # user@host or host (an IPv6 address without brackets)
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    tart: str = "tart"  # the Tart binary on the remote host
    ssh: str = "ssh"  # the local OpenSSH client
    control_persist: int = DEFAULT_CONTROL_PERSIST  # idle seconds before the shared connection ends

    @property
    def label(self) -> str:
        """How messages name the host: ``user@host:port``."""
        return f"{self.destination}:{self.port}"


def parse_target(value: str, port: int | None = None) -> tuple[str, int]:
    """``user@host[:port]`` (IPv6 as ``user@[::1]:22``) -> (destination, port).

    A separate ``port`` (VM_OPERATOR_SSH_PORT) is used when the target names none; naming
    two different ports is an error. Raises ValueError with a message for the user.
    """
    text = value.strip()
    user, at, rest = text.rpartition("@")
    if at and not _PLAIN_NAME.fullmatch(user):
        raise ValueError(f"the SSH user in {value!r} is not a plain user name")
    target_port: int | None = None
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not _IPV6.fullmatch(host) or ":" not in host:
            raise ValueError(f"{value!r} holds a malformed IPv6 address")
        if tail:
            if not tail.startswith(":"):
                raise ValueError(f"{value!r}: expected ':PORT' after the IPv6 address")
            target_port = _port(tail[1:], value)
    else:
        host, colon, tail = rest.partition(":")
        if colon:
            target_port = _port(tail, value)
        if not _PLAIN_NAME.fullmatch(host):
            raise ValueError(
                f"the SSH host in {value!r} is not a host name or address "
                "(expected user@host[:port])"
            )
    if target_port is not None and port is not None and target_port != port:
        raise ValueError(f"{value!r} names port {target_port} but the SSH port is set to {port}")
    chosen = target_port if target_port is not None else port if port is not None else 22
    return (f"{user}@{host}" if at else host), chosen


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"the SSH port in {value!r} is not a number from 1 to 65535")
    return int(text)


def checked_file(path: str | None, what: str) -> str | None:
    if not path:
        return None
    if not _SAFE_PATH.fullmatch(path):
        raise ValueError(
            f"the {what} path {path!r} holds characters ssh would interpret; "
            "use letters, digits, spaces and ./_-@+,:=~ only"
        )
    expanded = os.path.expanduser(path)
    if not os.path.isfile(expanded) or not os.access(expanded, os.R_OK):
        raise ValueError(f"the {what} {expanded!r} does not exist or is not readable")
    return os.path.abspath(expanded)


def ssh_settings(
    target: str,
    *,
    port: int | None = None,
    key: str | None = None,
    known_hosts: str | None = None,
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
    tart: str = "tart",
    ssh: str = "ssh",
) -> SshSettings:
    """Validate the transport settings (ValueError with a message for the user)."""
    destination, chosen = parse_target(target, port)
    if not tart or tart.startswith("-") or "\n" in tart:
        raise ValueError(f"the remote Tart binary {tart!r} is not a command name or path")
    if not 1 <= connect_timeout <= 600:
        raise ValueError("the SSH connect timeout must be from 1 to 600 seconds")
    return SshSettings(
        destination=destination,
        port=chosen,
        key=checked_file(key, "SSH key"),
        known_hosts=checked_file(known_hosts, "SSH known_hosts file"),
        connect_timeout=int(connect_timeout),
        tart=tart,
        ssh=ssh,
    )


def describe(settings: SshSettings | None) -> dict[str, str]:
    """For the startup log line."""
    if settings is None:
        return {"transport": "local"}
    return {"transport": "ssh", "tart_host": settings.label, "remote_tart": settings.tart}
