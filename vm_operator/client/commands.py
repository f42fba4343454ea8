"""The subcommands: for each, its arguments and what it does with the API's answer.

A subcommand is one ``Command`` in ``TABLE``: a function that adds its arguments and a
function that runs it with a ``Client`` and a ``Console``. With ``--json`` a command prints
the server's body exactly as it came; otherwise it renders the typed record for people.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vm_operator.client import render
from vm_operator.client.console import Console
from vm_operator.client.http import Client, Reply
from vm_operator.client.records import Change, LastExit, LogChunk, VmDetail
from vm_operator.command_line import OPERATOR, VMS
from vm_operator.vocabulary import VM_SOURCES, VM_STATES

FOLLOW_WINDOW = 1000  # lines asked for by each poll of logs --follow (the whole log if short)
EXIT_USAGE = 2  # as main.EXIT_USAGE: options that go together only, checked by the command


# --- argument types --------------------------------------------------------------------------


def vm_name(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("a VM name cannot be empty")
    return text


def whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not re.fullmatch(r"[0-9]{1,7}", text) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return int(text)

    parse.__name__ = "number"
    return parse


def seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"must be a number of seconds from {low:g} to {high:g}")
        return value

    parse.__name__ = "seconds"
    return parse


# --- rendering of records ----------------------------------------------------------------------


def _size(value: int | None) -> str:
    return "-" if value is None else f"{value} GB"


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


VM_COLUMNS = (
    render.Column("NAME", shrink=True),
    render.Column("SOURCE", drop=1),
    render.Column("STATE"),
    render.Column("DISK", right=True, drop=3),
    render.Column("SIZE", right=True, drop=2),
    render.Column("ACCESSED", drop=4),
)


def exit_text(ended: LastExit | None) -> str:
    """How the last run ended: ``exit code 1 at T``, ``signal 9 at T``, ``unknown at T``."""
    if ended is None:
        return "-"
    if ended.exit_code is not None:
        return f"exit code {ended.exit_code} at {ended.at}"
    if ended.signal is not None:
        return f"signal {ended.signal} at {ended.at}"
    return f"unknown at {ended.at}"


def desired_pairs(detail: VmDetail) -> list[tuple[str, str]]:
    """The desired state and what the reconciler makes of it (a VM without a spec is only
    observed: nothing to desire, restart or count)."""
    spec = detail.spec
    if spec is None:
        return [("desired", "- (not managed: the operator only observes it)")]
    condition = _text(detail.condition)
    if detail.next_attempt_at is not None:
        condition += f" (next attempt at {detail.next_attempt_at})"
    return [("desired", _text(spec.desired)), ("restart policy", spec.restart),
            ("condition", condition), ("restart count", _text(detail.restart_count)),
            ("last exit", exit_text(detail.last_exit))]


def detail_pairs(detail: VmDetail) -> list[tuple[str, str]]:
    vm = detail.vm
    items = [("name", vm.name), ("source", vm.source), ("state", vm.state),
             ("ready", _text(detail.ready)), ("ip", _text(detail.ip)),
             *desired_pairs(detail),
             ("os", _text(detail.os)), ("cpu", _text(detail.cpu)),
             ("memory", "-" if detail.memory_mb is None else f"{detail.memory_mb} MB"),
             ("disk", _size(vm.disk_gb)), ("size", _size(vm.size_gb)),
             ("disk format", _text(detail.disk_format)), ("display", _text(detail.display)),
             ("accessed", _text(vm.accessed))]
    run = detail.last_run
    if run is None:
        return items + [("last run", "-")]
    exit_code = _text(run.exit_code) if run.exit_code_known else "unknown"
    return items + [("last run started", run.started_at),
                    ("last run finished", _text(run.finished_at)),
                    ("last run exit code", "-" if run.finished_at is None else exit_code),
                    ("last run error", _text(run.error)),
                    ("last run pid", _text(run.pid)),
                    ("last run suspendable", _text(run.suspendable))]


# --- the subcommands -----------------------------------------------------------------------------


def _vms_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", choices=VM_STATES, help="only VMs in this state")
    parser.add_argument("--source", choices=VM_SOURCES, help="only local VMs, or only OCI images")


def _vms(client: Client, args: argparse.Namespace, console: Console) -> int:
    reply = client.list_vms(args.state, args.source)
    empty = "no VMs" + (" match" if args.state or args.source else "")
    if console.told_list(reply.body, len(reply.value), empty):
        return 0
    rows = [[vm.name, vm.source, vm.state, _size(vm.disk_gb), _size(vm.size_gb),
             _text(vm.accessed)] for vm in reply.value]
    console.lines(render.table(VM_COLUMNS, rows, console.width))
    return 0


def _name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", type=vm_name,
                        help="the VM's name as Tart shows it (OCI names such as "
                        "ghcr.io/org/img:tag too)")


def _get(client: Client, args: argparse.Namespace, console: Console) -> int:
    reply = client.get_vm(args.name)
    console.answer(reply.body, lambda: render.pairs(detail_pairs(reply.value)))
    return 0


def _changed(console: Console, reply: Reply[Change], done: str) -> int:
    if console.json:
        console.body(reply.body)
        return 0
    vm = reply.value.vm
    if reply.value.changed:
        console.line(f"{done} {render.safe(vm.name)}")
    else:
        console.line(f"{render.safe(vm.name)} was already {render.safe(vm.state)}")
    return 0


def _start_arguments(parser: argparse.ArgumentParser) -> None:
    _name_argument(parser)
    parser.add_argument("--suspendable", action="store_true",
                        help="start it so that it can be suspended later (macOS guests)")
    parser.add_argument("--wait", choices=("ready",),
                        help="ready: answer once the guest accepts connections on its SSH port "
                        "(exit 4 when it does not in time)")
    parser.add_argument("--timeout", type=whole(1, 900), metavar="SECONDS",
                        help="with --wait ready: how long the server waits, the start included "
                        "(1-900, the server's default 120); the request waits that much longer")


def _start(client: Client, args: argparse.Namespace, console: Console) -> int:
    if args.wait is None:
        if args.timeout is not None:
            console.note("start: --timeout goes with --wait ready")
            return EXIT_USAGE
        return _changed(console, client.start_vm(args.name, args.suspendable), "started")
    reply = client.start_vm_ready(args.name, args.suspendable, args.timeout)
    if console.json:
        console.body(reply.body)
        return 0
    name = render.safe(reply.value.change.vm.name)
    address = f" at {render.safe(reply.value.ip)}" if reply.value.ip else ""
    console.line(f"{name} is ready{address}")
    return 0


def _stop_arguments(parser: argparse.ArgumentParser) -> None:
    _name_argument(parser)
    parser.add_argument("--timeout", type=whole(0, 300), metavar="SECONDS",
                        help="how long Tart lets the guest shut down before it is killed "
                        "(0-300, the server's default 30); the request waits that much longer")


def _stop(client: Client, args: argparse.Namespace, console: Console) -> int:
    return _changed(console, client.stop_vm(args.name, args.timeout), "stopped")


def _suspend(client: Client, args: argparse.Namespace, console: Console) -> int:
    return _changed(console, client.suspend_vm(args.name), "suspended")


def _ip_arguments(parser: argparse.ArgumentParser) -> None:
    _name_argument(parser)
    parser.add_argument("--wait", type=whole(0, 120), nargs="?", const=60, default=0,
                        metavar="SECONDS",
                        help="wait up to SECONDS (0-120; 60 when --wait has no value) for the "
                        "VM to have an address; the request waits that much longer")


def _ip(client: Client, args: argparse.Namespace, console: Console) -> int:
    reply = client.vm_ip(args.name, args.wait)
    console.answer(reply.body, lambda: [render.safe(reply.value.ip)])
    return 0


def _logs_arguments(parser: argparse.ArgumentParser) -> None:
    _name_argument(parser)
    parser.add_argument("--tail", type=whole(1, 100000), metavar="N",
                        help="only the last N lines (1-100000)")
    parser.add_argument("--follow", "-f", action="store_true",
                        help="then print new lines as they come, until the VM stops or Ctrl-C")
    parser.add_argument("--interval", type=seconds(0.1, 60), default=1.0, metavar="SECONDS",
                        help="with --follow: how often to ask for new lines (default 1)")


def _logs(client: Client, args: argparse.Namespace, console: Console) -> int:
    chunk = client.vm_logs(args.name, args.tail)
    if chunk.truncated:
        console.note(f"the first {chunk.omitted} bytes of the log are not shown "
                     "(the operator sends at most its last 4 MiB)")
    if not args.follow:
        console.log(chunk.data)
        return 0
    return follow(client, args.name, chunk, console, args.interval)


@dataclass(frozen=True)
class LogStep:
    """What one read of the log adds: the bytes to print, the offset printed up to after
    them, and how many bytes were lost between ``shown`` and the start of the answer."""

    data: bytes
    shown: int
    skipped: int


def log_step(chunk: LogChunk, shown: int, final: bool) -> LogStep:
    """The part of ``chunk`` after log offset ``shown``. A last line without its newline is
    held back (it is still being written) unless ``final``. When ``chunk`` starts after
    ``shown``, the bytes in between are ``skipped``."""
    skipped = max(0, chunk.omitted - shown)
    start = max(shown, chunk.omitted)
    data = chunk.data[start - chunk.omitted:]
    if not final:
        data = data[:data.rfind(b"\n") + 1]
    return LogStep(data, start + len(data), skipped)


def follow(client: Client, name: str, first: LogChunk, console: Console,
           interval: float) -> int:
    """Print ``first``, then poll the log and print only what is new, until the VM is no
    longer running (its last lines printed) or the user interrupts.

    The server has no offsets to ask from, but every answer says where it starts:
    ``Vm-Operator-Log-Omitted-Bytes`` is the number of bytes before it, so the answer ends
    at byte ``omitted + len(body)`` of the log. The client remembers the offset up to which it
    printed (always the end of a whole line) and prints each answer from there (``log_step``).
    Each poll asks for the last FOLLOW_WINDOW lines; when that answer starts after the offset
    (more arrived in between), it asks for the whole log (at most its last 4 MiB) and says on
    stderr how many bytes it could not show. A new ``tart run`` (``last_run`` started anew,
    or a log shorter than the offset) has a new log: it is printed from its beginning. The
    VM's state is read before the log, so the last read after it stopped holds its last line.
    """
    step = log_step(first, first.omitted, final=False)
    console.log(step.data)
    shown = step.shown
    run: tuple[str, int | None] | None = None
    while True:
        detail = client.get_vm(name).value
        current = None if detail.last_run is None else (detail.last_run.started_at,
                                                         detail.last_run.pid)
        chunk = client.vm_logs(name, FOLLOW_WINDOW)
        if (run is not None and current != run) or chunk.end < shown:
            console.note(f"{name}: a new run started; its log follows")
            shown = 0
        run = current
        if chunk.omitted > shown:
            chunk = client.vm_logs(name)
        running = detail.vm.running
        step = log_step(chunk, shown, final=not running)
        if step.skipped:
            console.note(f"{step.skipped} bytes of the log could not be shown "
                         "(more than the operator's 4 MiB arrived between two reads)")
        console.log(step.data)
        shown = step.shown
        if not running:
            return 0
        time.sleep(interval)


def _health(client: Client, args: argparse.Namespace, console: Console) -> int:
    reply = client.health()
    if console.json:
        console.body(reply.body)
        return 0
    health, details = reply.value, reply.value.details
    if details is None:
        console.lines(render.pairs([("status", health.status), ("details", UNTOLD)]))
        return 0
    console.lines(render.pairs([
        ("status", health.status), ("message", details.message), ("version", details.version),
        ("tart", details.tart.path), ("tart available", _text(details.tart.available)),
        ("tart version", _text(details.tart.version)), ("timestamp", details.timestamp)]))
    return 0


UNTOLD = ("told only to a request with a token, or whose Host is the operator's address "
          "(an IP address, localhost or VM_OPERATOR_ALLOWED_HOSTS)")


# --- the table ----------------------------------------------------------------------------------

Run = Callable[[Client, argparse.Namespace, Console], int]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    run: Run
    arguments: Callable[[argparse.ArgumentParser], None] = field(default=_name_argument)
    json: bool = True  # takes --json (the server's JSON as is)
    actions: tuple[Command, ...] = ()  # sub-actions (images pull, ops cancel); run is the default
    group: str = VMS  # where ``vm-operator help`` lists it (one of GROUPS); actions: their command's


TABLE: tuple[Command, ...] = (
    Command("vms", "list the VMs and OCI images (a table; --json for the API's array)", _vms,
            _vms_arguments),
    Command("get", "show one VM: settings, state, last run", _get),
    Command("start", "start a VM (answers once Tart reports it running; --wait ready: once "
            "its guest accepts connections)", _start,
            _start_arguments),
    Command("stop", "stop a VM", _stop, _stop_arguments),
    Command("suspend", "suspend a VM started with --suspendable", _suspend),
    Command("ip", "print a running VM's IP address", _ip, _ip_arguments),
    Command("logs", "print the output of the VM's last tart run (--follow: and what comes)",
            _logs, _logs_arguments, json=False),
    Command("health", "is the operator serving, and can it run Tart?", _health,
            lambda parser: None, group=OPERATOR),
)
