"""The subcommands over long-running operations and the host: create, delete, set, images,
ops, host. An operation they queue is followed until it ends (``follow.py``).
"""

from __future__ import annotations

import argparse
import re

from vm_operator.client import render
from vm_operator.client.commands import (
    EXIT_USAGE,
    Command,
    _text,
    detail_pairs,
    vm_name,
    whole,
)
from vm_operator.client.console import Console
from vm_operator.client.follow import (
    EXIT_REFUSED,
    _detach_argument,
    _queued,
    follow_operation,
)
from vm_operator.client.http import Client
from vm_operator.client.records import Operation
from vm_operator.command_line import IMAGES, OPERATIONS, OPERATOR
from vm_operator.vocabulary import (
    CPU,
    DISK_GB,
    DISPLAY_PATTERN,
    MEMORY_MB,
    PRUNE_OLDER_THAN_DAYS,
    PRUNE_SPACE_BUDGET_GB,
    RESTART_POLICIES,
)

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
    console.answer(reply.body, lambda: render.pairs(detail_pairs(reply.value)))
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
    if console.told_list(reply.body, len(reply.value), "no cached images"):
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
    if console.told_list(reply.body, len(reply.value), "no operations"):
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
    console.answer(reply.body, lambda: render.pairs(operation_pairs(reply.value)))
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
