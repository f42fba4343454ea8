"""``vm-operator token``: make a named token, or print what each role allows.

``token new NAME --role ROLE… [--vm PATTERN…]`` prints a fresh token on its first line (shown
this once: the operator keeps only its SHA-256) and then the ``[[token]]`` entry to paste into
the tokens file (``--tokens-file``). ``token roles`` prints the README's roles table, made from
the routes' declarations (``Route.needs``) and ``edge.authz.ROLE_MEANINGS``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from vm_operator.edge.authz import ROLE_MEANINGS, Role
from vm_operator.edge.routing import Route
from vm_operator.edge.token_file import TokensRefused, digest_of, parse_tokens

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits


def entry(name: str, token: str, roles: Sequence[Role], vms: Sequence[str]) -> str:
    """The ``[[token]]`` entry of a token (TOML; strings as JSON writes them, which TOML reads)."""
    lines = ["[[token]]", f"name = {json.dumps(name)}",
             f"sha256 = {json.dumps(digest_of(token).hex())}",
             f"roles = [{', '.join(json.dumps(role.value) for role in roles)}]"]
    if vms:
        lines.append(f"vms = [{', '.join(json.dumps(vm) for vm in vms)}]")
    return "\n".join(lines) + "\n"


def roles_table(routes: Sequence[Route[Any]]) -> str:
    """The README's roles table: each role, what it allows, and the routes that need it."""
    rows = ["| role | allows | routes |", "| --- | --- | --- |"]
    for role in Role:
        needing = [f"`{route.method} {route.pattern}`" for route in routes
                   if not route.public and route.needs is role]
        rows.append(f"| `{role.value}` | {ROLE_MEANINGS[role]} | {', '.join(needing) or 'none yet'} |")
    return "\n".join(rows) + "\n"


def _roles(values: list[str]) -> list[Role]:
    found: list[Role] = []
    for value in values:
        for word in value.split(","):
            try:
                role = Role(word.strip())
            except ValueError:
                known = ", ".join(role.value for role in Role)
                raise argparse.ArgumentTypeError(f"unknown role {word!r} (known: {known})") from None
            if role not in found:
                found.append(role)
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="vm-operator token",
        description="Make a named token for the tokens file (--tokens-file), or print what "
        "each role allows.")
    actions = parser.add_subparsers(dest="action", required=True)
    new = actions.add_parser("new", help="print a fresh token and its [[token]] entry")
    new.add_argument("name", help="the token's name (the audit log records it)")
    new.add_argument("--role", action="append", required=True, metavar="ROLE",
                     help="read, write, connect or admin; repeat it or separate with commas")
    new.add_argument("--vm", action="append", default=[], metavar="PATTERN",
                     help="a shell pattern of the VM names it may touch (e.g. 'ci-*'); "
                     "repeat it for more; none: every VM")
    actions.add_parser("roles", help="print what each role allows (the README's table)")
    args = parser.parse_args(argv)
    if args.action == "roles":
        from vm_operator.api import ROUTES

        sys.stdout.write(roles_table(ROUTES))
        return 0
    try:
        roles = _roles(args.role)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    token = secrets.token_urlsafe(TOKEN_BYTES)
    text = entry(args.name, token, roles, args.vm)
    try:
        parse_tokens(text)  # what the operator will read: refused here, not at its SIGHUP
    except TokensRefused as exc:
        print(f"vm-operator token: {exc.key or 'the entry'}: {exc.reason}", file=sys.stderr)
        return 2
    sys.stdout.write(f"{token}\n\n# The line above is the token: give it to its client now; it "
                     "is not shown again\n# and the operator never stores it. Paste this entry "
                     "into the tokens file,\n# then send the operator SIGHUP:\n" + text)
    return 0
