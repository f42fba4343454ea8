"""The subcommands over long-running operations and the host: create, delete, set, images,
ops, host; and ``follow``, which shows an operation until it ends.

An operation (a create, a pull, a prune, a delete the server runs as one) is followed through
the event stream (``GET /events``, opened before the request that queues it, so none of its
changes is missed, however short a phase), else, when there is no stream, by polling ``GET
/operations/{id}``: each new phase is a line, the progress a bar on a terminal or a ``phase:
NN%`` line each time the whole percentage changes elsewhere, all on stderr, so stdout holds
only the outcome (a line, or with ``--json`` the finished operation). Ctrl-C stops following,
not the operation: the client says how to look at or cancel it (exit 130).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any, TextIO

from vm_operator.client import render
from vm_operator.client.commands import (
    EXIT_USAGE,
    IMAGES,
    OPERATIONS,
    OPERATOR,
    Command,
    Console,
    _text,
    detail_pairs,
    vm_name,
    whole,
)
from vm_operator.client.http import Client, ClientError, Reply, TimedOut, Unreachable
from vm_operator.client.records import BadAnswer, Event, Operation
from vm_operator.client.sse import SseParser
from vm_operator.vocabulary import (
    CPU,
    DISK_GB,
    DISPLAY_PATTERN,
    MEMORY_MB,
    PRUNE_OLDER_THAN_DAYS,
    PRUNE_SPACE_BUDGET_GB,
    RESTART_POLICIES,
)

POLL_INTERVAL = 0.2  # seconds between two reads of a followed operation
EXIT_REFUSED = 1
EXIT_TIMEOUT = 4
_DISPLAY = re.compile(DISPLAY_PATTERN)


# --- argument types ------------------------------------------------------------------------------


def display(text: str) -> str:
    if not _DISPLAY.fullmatch(text):
        raise argparse.ArgumentTypeError("a display is WIDTHxHEIGHT in pixels, e.g. 1920x1080")
    return text


def operation_id(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise argparse.ArgumentTypeError("an operation id is 1-64 letters, digits, _ or -")
    return text


def _resources(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cpu", type=whole(*CPU), metavar="N",
                        help="virtual CPUs ({}-{})".format(*CPU))
    parser.add_argument("--memory", type=whole(*MEMORY_MB), metavar="MB",
                        help="memory in MB ({}-{})".format(*MEMORY_MB))
    parser.add_argument("--disk", type=whole(*DISK_GB), metavar="GB",
                        help="disk size in GB ({}-{}); a disk only grows".format(*DISK_GB))
    parser.add_argument("--display", type=display, metavar="WxH",
                        help="display size in pixels, e.g. 1920x1080")
    parser.add_argument("--restart", choices=RESTART_POLICIES,
                        help="restart policy: never, on-failure (the run failed or was killed) "
                        "or always (any end not asked for through the API)")


def resource_fields(args: argparse.Namespace) -> dict[str, object]:
    """The API's fields for the resource options given (none for those left out)."""
    fields: dict[str, object] = {"cpu": args.cpu, "memory_mb": args.memory,
                                 "disk_gb": args.disk, "display": args.display,
                                 "restart": args.restart}
    return {key: value for key, value in fields.items() if value is not None}


# --- following an operation ----------------------------------------------------------------------


def stage_of(op: Operation) -> str | None:
    """What an unfinished operation is doing, as its phase line says it: its phase, or
    ``queued`` while it waits for its turn."""
    if op.phase:
        return op.phase
    return "queued" if op.state == "queued" else None


class Watch:
    """Shows an operation as it goes: a line for each new stage, and its progress (a bar on
    a terminal, ``stage: NN%`` lines elsewhere) whenever the percentage moves. A stage with a
    bar ends at 100 % when the next begins (Tart moves on once the pull is complete, and a
    poll may not have seen its last percent); when the operation fails, it ends where it
    was."""

    def __init__(self, stream: TextIO, terminal: bool, width: int) -> None:
        self.stream = stream
        self.terminal = terminal
        self.width = width
        self.stage: str | None = None
        self.progress: int | None = None
        self.bar: render.Progress | None = None

    def show(self, op: Operation) -> None:
        stage = stage_of(op)
        if not op.finished and stage is not None and stage != self.stage:
            self._end_bar(done=True)  # a stage that showed progress is over: it got to 100 %
            self.stage = stage
            self.stream.write(f"{render.safe(stage)}...\n")
            self.stream.flush()
        if op.progress is not None and op.progress != self.progress:
            self.progress = op.progress
            if self.bar is None:
                self.bar = render.Progress(self.stream, self.terminal, self.width,
                                           self.stage or op.kind)
            self.bar.update(op.progress)

    def end(self, succeeded: bool) -> None:
        self._end_bar(done=succeeded)

    def _end_bar(self, done: bool) -> None:
        if self.bar is not None:
            self.bar.finish(done)
            self.bar = None
            if done:  # shown as 100 %: the same value in the next stage is no news
                self.progress = 100


def _stream_width(console: Console) -> int:
    """Columns for the bar: the table width (COLUMNS, stdout's terminal), else stderr's
    terminal, else 80 (also for a terminal that reports no size)."""
    if console.width is not None:
        return console.width
    try:
        columns = os.get_terminal_size(console.err.fileno()).columns
    except (OSError, ValueError):
        return 80
    return columns if columns > 0 else 80


MAX_EVENT_LINE = 1 << 20


class OperationStream:
    """The operator's event stream, opened before the request that queues an operation:
    every change of the operation is an ``operation.*`` event carrying it whole, so each of
    its phases is seen, however short (a poll every POLL_INTERVAL can miss one)."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.parser = SseParser()

    @classmethod
    def open(cls, client: Client, vm: str | None) -> OperationStream | None:
        """The stream of ``vm``'s events (every event when None); None when the operator
        does not give one (too many streams, no events route): the caller polls then."""
        try:
            return cls(client.open_events(vm, None))
        except (ClientError, Unreachable, TimedOut):
            return None

    def next_change(self, operation_id: str) -> Reply[Operation] | None:
        """The operation as its next event tells it (its document, as ``GET
        /operations/{id}`` answers it); None once the stream ends, breaks, says events were
        missed (``reset``) or is not the operator's: the caller polls then."""
        while True:
            try:
                raw = self.response.readline(MAX_EVENT_LINE + 1)
            except (OSError, http.client.HTTPException):
                return None
            if not raw or len(raw) > MAX_EVENT_LINE:
                return None
            message = self.parser.feed(raw.decode("utf-8", "replace"))
            if message is not None and message.event == "reset":
                return None
            if message is None or not message.event.startswith("operation."):
                continue
            try:
                event = Event.from_json(json.loads(message.data))
                if event.data.get("id") == operation_id:
                    body = json.dumps(event.data, separators=(",", ":")).encode()
                    return Reply(Operation.from_json(event.data), body, 200)
            except (ValueError, BadAnswer):
                return None

    def close(self) -> None:
        self.response.close()


def follow_operation(client: Client, reply: Reply[Operation], console: Console,
                     done: Callable[[Operation], str],
                     stream: OperationStream | None = None) -> int:
    """Follow the operation of ``reply`` until it ends, showing it: through ``stream`` while
    it tells, else by polling. Then its outcome: ``done`` of it on stdout (with ``--json`` the
    finished operation as ``GET /operations/{id}`` answers it) and 0, or why it did not
    succeed on stderr and 1 (4 when its error is a 504: something timed out)."""
    op, body = reply.value, reply.body
    watch = Watch(console.err, console.err_terminal, _stream_width(console))
    try:
        told = None if stream is None else stream.next_change(op.id)
        if told is None:
            stream = None
        else:  # the stream tells every change from the first (the reply may be a later one)
            op, body = told.value, told.body
        watch.show(op)
        while not op.finished:
            told = None if stream is None else stream.next_change(op.id)
            if told is None:  # no stream, or it ended: poll
                stream = None
                time.sleep(POLL_INTERVAL)
                told = client.operation(op.id)
            op, body = told.value, told.body
            watch.show(op)
    except KeyboardInterrupt:
        watch.end(succeeded=False)
        console.note(f"stopped following; the operation {op.id} goes on: "
                     f"'vm-operator ops get {op.id}' shows it, "
                     f"'vm-operator ops cancel {op.id}' cancels it")
        raise
    watch.end(succeeded=op.state == "succeeded")
    if console.json:
        console.body(body)
    return outcome(op, console, done)


def outcome(op: Operation, console: Console, done: Callable[[Operation], str]) -> int:
    """The exit code of a finished operation, and its message."""
    if op.state == "succeeded":
        if not console.json:
            console.line(done(op))
        if op.result:
            console.note(op.result)
        return 0
    what = f"{op.kind} {op.target}"
    if op.state == "cancelled":
        console.note(f"{what}: the operation {op.id} was cancelled")
        return EXIT_REFUSED
    if op.error is None:
        console.note(f"{what} failed (operation {op.id})")
        return EXIT_REFUSED
    problem = op.error.problem
    console.note(f"{what} failed: {problem.status} {problem.slug}: {problem.detail}")
    if op.error.tart_message:
        console.note(f"tart said: {op.error.tart_message}")
    if op.result:
        console.note(op.result)
    return EXIT_TIMEOUT if problem.status == 504 else EXIT_REFUSED


def _queued(client: Client, args: argparse.Namespace, console: Console,
            request: Callable[[], Reply[Operation]], done: Callable[[Operation], str],
            vm: str | None = None) -> int:
    """Send ``request``, which queues an operation (of ``vm``, when it has one): follow it,
    or with ``--detach`` print its id (the server's JSON with ``--json``) and return."""
    if args.detach:
        reply = request()
        if console.json:
            console.body(reply.body)
        else:
            console.line(reply.value.id)
        return 0
    stream = OperationStream.open(client, vm)
    try:
        return follow_operation(client, request(), console, done, stream)
    finally:
        if stream is not None:
            stream.close()


def _detach_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detach", action="store_true",
                        help="do not follow the operation: print its id and return at once")


# --- create, delete, set ---------------------------------------------------------------------------


def _create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", type=vm_name, help="the new VM's name")
    parser.add_argument("--from", dest="source", metavar="REF", type=vm_name, required=True,
                        help="what to clone: an OCI reference (pulled when not cached) or a "
                        "local VM")
    _resources(parser)
    parser.add_argument("--start", action="store_true", help="start it once created")
    parser.add_argument("--ephemeral", action="store_true",
                        help="delete it once its run ends, for any reason")
    parser.add_argument("--insecure", action="store_true",
                        help="pull over plain HTTP or without checking the registry's "
                        "certificate")
    _detach_argument(parser)


def create_body(args: argparse.Namespace) -> dict[str, object]:
    """The JSON of ``POST /vms`` for the command line (options left out are left to the
    server's defaults)."""
    body: dict[str, object] = {"name": args.name, "from": args.source, **resource_fields(args)}
    for flag in ("start", "ephemeral", "insecure"):
        if getattr(args, flag):
            body[flag] = True
    return body


def _create(client: Client, args: argparse.Namespace, console: Console) -> int:
    started = " and started" if args.start else ""
    return _queued(client, args, console, lambda: client.create_vm(create_body(args)),
                   lambda op: f"created{started} {render.safe(op.vm or args.name)}", args.name)


def _delete_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", type=vm_name, help="the VM to delete")
    parser.add_argument("--force", action="store_true",
                        help="stop it first when it is running or suspended")
    parser.add_argument("--timeout", type=whole(0, 300), metavar="SECONDS",
                        help="with --force: how long Tart lets the guest shut down (0-300, the "
                        "server's default 30)")


def _delete(client: Client, args: argparse.Namespace, console: Console) -> int:
    if args.timeout is not None and not args.force:
        console.note("delete: --timeout goes with --force")
        return EXIT_USAGE
    reply = client.delete_vm(args.name, args.force, args.timeout)
    message = f"deleted {render.safe(args.name)}"
    if reply is None:  # deleted at once (204): no body, nothing to print with --json
        if not console.json:
            console.line(message)
        return 0
    return follow_operation(client, reply, console, lambda op: message)


def _set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", type=vm_name, help="the VM (stopped)")
    _resources(parser)
    parser.add_argument("--random-mac", action="store_true",
                        help="give it a new random MAC address")


def patch_body(args: argparse.Namespace) -> dict[str, object]:
    """The merge patch of ``PATCH /vms/{name}``: only the settings given."""
    body = resource_fields(args)
    if args.random_mac:
        body["random_mac"] = True
    return body


def _set(client: Client, args: argparse.Namespace, console: Console) -> int:
    patch = patch_body(args)
    if not patch:
        console.note("set: give at least one of --cpu, --memory, --disk, --display, "
                     "--restart, --random-mac")
        return EXIT_USAGE
    reply = client.patch_vm(args.name, patch)
    if console.json:
        console.body(reply.body)
    else:
        console.lines(render.pairs(detail_pairs(reply.value)))
    return 0


# --- images ------------------------------------------------------------------------------------------

IMAGE_COLUMNS = (
    render.Column("REF", shrink=True),
    render.Column("KIND", drop=1),
    render.Column("DISK", right=True, drop=3),
    render.Column("SIZE", right=True, drop=2),
    render.Column("ACCESSED", drop=4),
)


def _images(client: Client, args: argparse.Namespace, console: Console) -> int:
    reply = client.images()
    if console.json:
        console.body(reply.body)
        return 0
    if not reply.value:
        console.note("no cached images")
        return 0
    rows = [[image.ref, image.kind, f"{image.disk_gb} GB", f"{image.size_gb} GB",
             _text(image.accessed)] for image in reply.value]
    console.lines(render.table(IMAGE_COLUMNS, rows, console.width))
    return 0


def _ref_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="REF", type=vm_name,
                        help="an OCI reference, e.g. ghcr.io/cirruslabs/ubuntu:latest")


def _pull_arguments(parser: argparse.ArgumentParser) -> None:
    _ref_argument(parser)
    parser.add_argument("--insecure", action="store_true",
                        help="plain HTTP, or HTTPS without checking the registry's certificate")
    _detach_argument(parser)


def _pull(client: Client, args: argparse.Namespace, console: Console) -> int:
    return _queued(client, args, console, lambda: client.pull_image(args.ref, args.insecure),
                   lambda op: f"pulled {render.safe(op.image or args.ref)}")


def _image_rm(client: Client, args: argparse.Namespace, console: Console) -> int:
    client.delete_image(args.ref)  # 204: no body, nothing to print with --json
    if not console.json:
        console.line(f"removed {render.safe(args.ref)}")
    return 0


def _prune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--older-than", type=whole(*PRUNE_OLDER_THAN_DAYS), metavar="DAYS",
                        help="remove the images not used for DAYS days")
    parser.add_argument("--space-budget", type=whole(*PRUNE_SPACE_BUDGET_GB), metavar="GB",
                        help="keep the most recently used images that fit in GB, remove the rest")
    _detach_argument(parser)


def _prune(client: Client, args: argparse.Namespace, console: Console) -> int:
    if args.older_than is None and args.space_budget is None:
        console.note("images prune: give --older-than DAYS, --space-budget GB or both")
        return EXIT_USAGE
    return _queued(client, args, console,
                   lambda: client.prune_images(args.older_than, args.space_budget),
                   lambda op: "pruned")


# --- operations --------------------------------------------------------------------------------------

OPERATION_COLUMNS = (
    render.Column("ID"),
    render.Column("KIND"),
    render.Column("TARGET", shrink=True),
    render.Column("STATE"),
    render.Column("PHASE", drop=2),
    render.Column("PROGRESS", right=True, drop=1),
    render.Column("CREATED", drop=3),
)


def _percent(value: int | None) -> str:
    return "-" if value is None else f"{value}%"


def _ops(client: Client, args: argparse.Namespace, console: Console) -> int:
    reply = client.operations()
    if console.json:
        console.body(reply.body)
        return 0
    if not reply.value:
        console.note("no operations")
        return 0
    rows = [[op.id, op.kind, op.target, op.state, _text(op.phase), _percent(op.progress),
             op.created_at] for op in reply.value]
    console.lines(render.table(OPERATION_COLUMNS, rows, console.width))
    return 0


def operation_pairs(op: Operation) -> list[tuple[str, str]]:
    items = [("id", op.id), ("kind", op.kind), ("vm", _text(op.vm)), ("image", _text(op.image)),
             ("state", op.state), ("phase", _text(op.phase)), ("progress", _percent(op.progress)),
             ("cancel requested", _text(op.cancel_requested)), ("created", op.created_at),
             ("finished", _text(op.finished_at)), ("result", _text(op.result))]
    if op.error is not None:
        problem = op.error.problem
        items.append(("error", f"{problem.status} {problem.slug}: {problem.detail}"))
        items.append(("tart said", _text(op.error.tart_message)))
    return items


def _id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", type=operation_id, help="the operation's id")


def _op_get(client: Client, args: argparse.Namespace, console: Console) -> int:
    reply = client.operation(args.id)
    if console.json:
        console.body(reply.body)
    else:
        console.lines(render.pairs(operation_pairs(reply.value)))
    return 0


def _op_cancel(client: Client, args: argparse.Namespace, console: Console) -> int:
    reply = client.cancel_operation(args.id)
    op = reply.value
    if console.json:
        console.body(reply.body)
    if op.state == "cancelled":
        if not console.json:
            console.line(f"cancelled {op.id} ({op.kind} {render.safe(op.target)})")
        return 0
    if not op.finished:  # 202: asked; Tart is being stopped, its cleanup runs
        if not console.json:
            console.line(f"cancel requested: {op.id} is cleaning up "
                         f"('vm-operator ops get {op.id}' shows when it ends)")
        return 0
    console.note(f"{op.id} had {op.state} before it could be cancelled")
    return EXIT_REFUSED


# --- host ------------------------------------------------------------------------------------------


def _bytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB"


def _host(client: Client, args: argparse.Namespace, console: Console) -> int:
    reply = client.host()
    if console.json:
        console.body(reply.body)
        return 0
    host = reply.value
    limit = "no limit" if host.macos_limit is None else f"of {host.macos_limit}"
    console.lines(render.pairs([
        ("tart", host.tart_path), ("tart version", _text(host.tart_version)),
        ("tart home", host.tart_home),
        ("disk", f"{_bytes(host.disk_free_bytes)} free of {_bytes(host.disk_total_bytes)}"),
        ("macOS guests running", f"{host.macos_running} ({limit})"),
        ("operations", (f"{host.operations_running} running, {host.operations_queued} "
                        f"queued (at most {host.operations_max_queued})"))]))
    return 0


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


TABLE: tuple[Command, ...] = (
    Command("create", "create a VM from an image or a VM, following the operation "
            "(a progress bar while it pulls)", _create, _create_arguments),
    Command("delete", "delete a VM (--force: stop it first)", _delete, _delete_arguments),
    Command("set", "change a stopped VM's CPUs, memory, disk, display, restart policy", _set,
            _set_arguments),
    Command("images", "list Tart's OCI image cache (pull, rm, prune: see images ACTION --help)",
            _images, _no_arguments, group=IMAGES, actions=(
                Command("pull", "pull an image into the cache, with a progress bar", _pull,
                        _pull_arguments),
                Command("rm", "remove an image from the cache", _image_rm, _ref_argument),
                Command("prune", "remove the least recently used images", _prune,
                        _prune_arguments),
            )),
    Command("ops", "list the operations (create, delete, pull, prune); get or cancel one",
            _ops, _no_arguments, group=OPERATIONS, actions=(
                Command("get", "one operation: state, phase, progress, error", _op_get,
                        _id_argument),
                Command("cancel", "cancel an operation (Tart is killed, half-done work undone)",
                        _op_cancel, _id_argument),
            )),
    Command("host", "the host: Tart, free disk, macOS guests against the limit, operations",
            _host, _no_arguments, group=OPERATOR),
)
