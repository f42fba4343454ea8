"""Commands in a guest: ``vm-operator exec NAME -- COMMAND…`` (``POST /vms/{name}/exec``) and
``vm-operator run [--rm] FROM -- COMMAND…`` (create a VM, wait until it is ready, exec, and with
``--rm`` delete it whatever happened, Ctrl-C included): the command's stdout and stderr printed
to ours, its exit code ours. When the operator refuses, the client's own exit codes apply
(1 refused, 3 unreachable, 4 timed out), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vm_operator.client.commands import Command, vm_name, whole
from vm_operator.client.console import Console
from vm_operator.client.follow import await_operation
from vm_operator.client.http import Client, ClientError
from vm_operator.client.records import BadAnswer, Operation
from vm_operator.client.terminal import exec_on_terminal
from vm_operator.command_line import VMS
from vm_operator.vocabulary import CPU, MEMORY_MB

DEFAULT_TIMEOUT = 300  # the server's default exec timeout
READY_TIMEOUT = 600  # seconds run waits for its VM to be ready (an uncached image is pulled)
REMOVE_WAIT = 120.0  # seconds run --rm waits for its VM to go
POLL = 0.5  # seconds between two looks at a VM being removed


@dataclass(frozen=True)
class ExecOutcome:
    """``POST /vms/{name}/exec``'s answer."""

    exit_code: int
    stdout: str
    stderr: str
    truncated: bool

    @classmethod
    def from_json(cls, data: Any) -> ExecOutcome:
        if not isinstance(data, dict):
            raise BadAnswer("the exec answer is not an object")
        kinds = {"exit_code": int, "stdout": str, "stderr": str, "truncated": bool}
        for key, kind in kinds.items():
            if not isinstance(data.get(key), kind) or (kind is int
                                                       and isinstance(data[key], bool)):
                raise BadAnswer(f"field {key!r} is missing or not a {kind.__name__}")
        return cls(data["exit_code"], data["stdout"], data["stderr"], data["truncated"])


def _command_words(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("words", nargs="+", metavar="COMMAND",
                        help="after --: the program and its arguments, passed as they are "
                        "(no shell: use sh -c '…' for one)")
    parser.add_argument("--timeout", type=whole(1, 3600), default=DEFAULT_TIMEOUT,
                        metavar="SECONDS", help="how long the command may take (1-3600, default "
                        f"{DEFAULT_TIMEOUT}); then it is killed")


def _exec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--interactive", action="store_true",
                        help="send this command's stdin (read to its end first) to the command")
    parser.add_argument("-t", "--tty", action="store_true",
                        help="on a terminal in the guest, live (GET /vms/{name}/exec, a "
                        "WebSocket): keys as typed, output as printed, no timeout")
    parser.add_argument("name", metavar="NAME", type=vm_name, help="the running VM")
    _command_words(parser)


def run_in(client: Client, name: str, args: argparse.Namespace, console: Console) -> int:
    """Exec the words in ``name``; print what it printed; its exit code."""
    body: dict[str, object] = {"command": list(args.words), "timeout": args.timeout}
    if args.interactive:
        body["stdin"] = sys.stdin.read()
    reply = client.exec_vm(name, body, args.timeout, ExecOutcome.from_json)
    outcome = reply.value
    if console.json:
        console.body(reply.body)
        return outcome.exit_code
    console.out.write(outcome.stdout)
    console.out.flush()
    console.err.write(outcome.stderr)
    console.err.flush()
    if outcome.truncated:
        console.note("the output was cut at the operator's cap (1 MiB each of stdout, stderr)")
    return outcome.exit_code


def _exec(client: Client, args: argparse.Namespace, console: Console) -> int:
    if args.tty:
        return exec_on_terminal(client, args.name, list(args.words))
    return run_in(client, args.name, args, console)


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rm", action="store_true",
                        help="delete the VM once the command ended, whatever happened (Ctrl-C "
                        "too); it is ephemeral meanwhile")
    parser.add_argument("--name", type=vm_name, metavar="NAME",
                        help="the new VM's name (default: run-<random>)")
    parser.add_argument("--cpu", type=whole(*CPU), metavar="N",
                        help="virtual CPUs ({}-{})".format(*CPU))
    parser.add_argument("--memory", type=whole(*MEMORY_MB), metavar="MB",
                        help="memory in MB ({}-{})".format(*MEMORY_MB))
    parser.add_argument("-i", "--interactive", action="store_true",
                        help="send this command's stdin (read to its end first) to the command")
    parser.add_argument("source", metavar="FROM", type=vm_name,
                        help="an OCI image (pulled when not cached) or a local VM")
    _command_words(parser)


def _run(client: Client, args: argparse.Namespace, console: Console) -> int:
    name = args.name or f"run-{uuid.uuid4().hex[:12]}"
    spec: dict[str, object] = {"name": name, "from": args.source}
    spec.update({key: value for key, value in (("cpu", args.cpu), ("memory_mb", args.memory))
                 if value is not None})
    if args.rm:
        spec["ephemeral"] = True
    created: list[Operation] = []
    try:
        reply = client.create_vm(spec)
        created.append(reply.value)
        op = await_operation(client, reply).value
        if op.state != "succeeded":
            problem = op.error.problem if op.error else None
            console.note(f"creating {name} from {args.source} {op.state}"
                         + (f": {problem.detail}" if problem else ""))
            return 1
        client.start_vm_ready(name, timeout=READY_TIMEOUT)
        return run_in(client, name, args, console)
    finally:
        # only a VM this run made: a --name that was taken already (409) is the user's VM
        if args.rm and (created or not args.name):
            with _no_interrupts():
                _remove(client, name, created[0] if created else None, console)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Ctrl-C again while the VM is being removed: that removal still finishes."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _remove(client: Client, name: str, create: Operation | None, console: Console) -> None:
    """Delete the VM (stopping it first): a create still under way is cancelled first (its
    cleanup removes what it made); a deletion under way (the ephemeral VM's run ended) is
    waited for."""
    try:
        if create is not None:
            op = client.operation(create.id).value
            if not op.finished:
                await_operation(client, client.cancel_operation(op.id))
        deadline = time.monotonic() + REMOVE_WAIT
        while True:  # until a delete finds it gone
            try:
                reply = client.delete_vm(name, force=True, timeout=10)
                if reply is not None:
                    await_operation(client, reply)
            except ClientError as exc:
                if exc.status == 404:
                    return
                if exc.status != 409 or time.monotonic() > deadline:
                    raise
                time.sleep(POLL)  # another change holds it (its ephemeral deletion)
                continue
            if time.monotonic() > deadline:
                console.note(f"{name} is still there after {REMOVE_WAIT:g} s")
                return
    except ClientError as exc:
        console.note(f"could not delete {name}: {exc}")


TABLE: tuple[Command, ...] = (
    Command("exec", "run a command in a running VM (-i: with this stdin; -t: on a terminal, "
            "live); its output and exit code are this command's", _exec, _exec_arguments, group=VMS),
    Command("run", "create a VM from an image or a VM, wait until it is ready, run a command in "
            "it (--rm: then delete it, whatever happened)", _run, _run_arguments, group=VMS),
)
