"""``vm-operator plan FILE``: what applying a declarative file would do, nothing done.

It reads and checks the file (core/fleet.py), asks the running operator for the VMs as they
are (GET /vms, then GET /vms/{name} of each local VM the plan needs), and prints the steps, one
line each. Exit codes, as ``terraform plan -detailed-exitcode`` has them::

    0  nothing to do
    2  there is something to do (the steps are on stdout)
    1  the file is refused (line and key on stderr), or another error (usage, a refusal of the
       operator)
    3  no operator answered (unreachable, or no answer in time)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from vm_operator.client.http import Client, ClientError, TimedOut, Unreachable
from vm_operator.client.main import (
    REQUEST_TIMEOUT,
    UsageError,
    client_tls,
    read_token,
    server_options,
    server_url,
    token_on_command_line,
)
from vm_operator.client.render import safe
from vm_operator.client.tls import add_options
from vm_operator.core.fleet import (
    Fleet,
    FleetError,
    Observed,
    Step,
    decode_fleet,
    observed_spec,
    observed_vm,
    plan,
)

EXIT_NOTHING = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_UNREACHABLE = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vm-operator plan", allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print what applying a declarative file (--config) would do to the VMs of "
        "a running operator: create / set / start / stop / delete, one line each. Nothing is "
        "done.",
        epilog="exit codes: 0 nothing to do, 2 something to do, 1 the file is refused (line "
        "and key on stderr) or another error, 3 no operator answered")
    parser.add_argument("file", metavar="FILE", help="the TOML file (see examples/vms.toml)")
    server_options(parser, top=True, token_note="a read-only token is enough")
    add_options(parser, top=True)
    return parser


def read_fleet(path: str) -> Fleet:
    """The file's fleet; FleetError when it cannot be read or is refused."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise FleetError(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_fleet(data)


def observe(client: Client, fleet: Fleet) -> list[Observed]:
    """The local VMs the plan compares: those the file names, and with prune every other."""
    found = []
    for vm in client.list_vms(source="local").value:
        if vm.name not in fleet.names() and not fleet.prune:
            continue
        if vm.state == "creating":
            found.append(Observed(vm.name, vm.state))
            continue
        try:
            body = json.loads(client.get_vm(vm.name).body)
        except ClientError as exc:
            if exc.status == 404:  # deleted meanwhile
                continue
            raise
        if isinstance(body, dict):
            found.append(observed_vm(body, observed_spec(body.get("spec"))))
    return found


def main(argv: list[str], *, env: Mapping[str, str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    environ = dict(os.environ) if env is None else dict(env)
    stdout = sys.stdout if out is None else out
    stderr = sys.stderr if err is None else err

    def fail(message: str, code: int) -> int:
        stderr.write(f"vm-operator plan: {safe(message)}\n")
        return code

    if token_on_command_line(argv):
        return fail("there is no --token option; use --token-file FILE, VM_OPERATOR_TOKEN_FILE "
                    "or VM_OPERATOR_TOKEN", EXIT_ERROR)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help: 0; a usage error: 1 (2 means "something to do")
        return EXIT_NOTHING if exc.code == 0 else EXIT_ERROR
    try:
        fleet_path: str = args.file
        fleet = read_fleet(fleet_path)  # a refused file says so before anything is asked
        url = server_url(args.url, environ)
        client = Client(url, read_token(args.token_file, environ), REQUEST_TIMEOUT,
                        client_tls(args, environ, url))
        steps: list[Step] = plan(fleet, observe(client, fleet))
    except FleetError as exc:
        return fail(f"{fleet_path}: {exc}", EXIT_ERROR)
    except (Unreachable, TimedOut) as exc:
        return fail(str(exc), EXIT_UNREACHABLE)
    except ClientError as exc:
        return fail(f"{exc.status} {exc.problem.slug}: {exc.problem.detail}", EXIT_ERROR)
    except (UsageError, ValueError) as exc:  # BadUrl is a ValueError
        return fail(str(exc), EXIT_ERROR)
    for step in steps:
        stdout.write(safe(step.render()) + "\n")
    if not steps:
        stdout.write(f"nothing to do: the VMs are as {safe(fleet_path)} says\n")
    stdout.flush()
    return EXIT_CHANGES if steps else EXIT_NOTHING
