"""The words of the ``vm-operator`` command line that its entry point (``cli.py``) and the
client (``client/``) both read: the client's options, which may come before any command,
where the command is among the words, and the groups and lines of ``vm-operator help``.

They live outside ``client/`` so that ``vm-operator serve`` finds its command without
importing the client (its parsers, HTTP, renderers and records): a server does not carry
the client in its memory. This module imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HELP = "help"  # vm-operator help [COMMAND]

# The groups of ``vm-operator help``, in its order: each command names its own.
OPERATOR = "the operator"  # serve (cli.py), health, host
VMS = "VMs"
IMAGES = "images"
OPERATIONS = "operations"
EVENTS = "events"
PLAN = "plan"  # vm-operator plan (plan.py)
LAUNCHD = "launchd"  # vm-operator launchd (platform/launchd.py)
GROUPS = (OPERATOR, VMS, IMAGES, OPERATIONS, EVENTS, PLAN, LAUNCHD)


@dataclass(frozen=True)
class Topic:
    """One line of the overview: a command (an action: ``images pull``), what it does, and the
    group it is listed in (one of ``GROUPS``)."""

    name: str
    summary: str
    group: str


# The client's TLS options (client/tls.py reads them), as (option, variable, metavar, help):
# each variable sets its option's default; the option wins.
TLS_OPTIONS = (
    ("--ca-file", "VM_OPERATOR_CA_FILE", "FILE",
     ("trust the operator's certificate by this PEM file (its cert.pem, or the CA that signed "
     "it) instead of the system's CAs")),
    ("--fingerprint", "VM_OPERATOR_FINGERPRINT", "sha256:HEX",
     ("trust exactly the certificate with this SHA-256 fingerprint (vm-operator tls init "
     "prints it); checked before the request is sent")),
    ("--client-cert", "VM_OPERATOR_CLIENT_CERT", "FILE",
     "the PEM certificate to present when the operator asks for mutual TLS"),
    ("--client-key", "VM_OPERATOR_CLIENT_KEY", "FILE",
     "the PEM key of --client-cert (when that file does not hold it)"),
)

# The client's options: taken before the command (by the top-level parser) or after it (by the
# command's). Those that take a value, and those that do not.
VALUE_OPTIONS = frozenset({"--url", "--token-file", "--request-timeout",
                           *(option for option, _, _, _ in TLS_OPTIONS)})
FLAG_OPTIONS = frozenset({"--json"})


def command_index(words: Sequence[str]) -> int | None:
    """Where the command is in ``words``: the first word after the client's options (and
    their values) that lead them. None when there is none, or when an option that is not the
    client's comes first (``--port 0``: the server's flags)."""
    at = 0
    while at < len(words):
        word = words[at]
        if not word.startswith("-") or word == "-":
            return at
        option, has_value, _ = word.partition("=")
        if option in VALUE_OPTIONS:
            at += 1 if has_value else 2
        elif option in FLAG_OPTIONS and not has_value:
            at += 1
        else:
            return None
    return None
