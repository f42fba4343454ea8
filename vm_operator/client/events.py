"""``vm-operator events``: the operator's event stream (``GET /events``), one line per event.

People get ``TIME  TYPE  VM  what happened``; scripts get ``--json``, each event's JSON on one
line. It follows until Ctrl-C. When the connection drops (the operator restarted, a proxy cut
it, three heartbeats missed) it reconnects after the server's ``retry`` delay with
``Last-Event-ID``, so no event is printed twice and none is lost while the server's history
still holds it; when it no longer does (or the id is an earlier operator process's: ids rise
across restarts and never repeat), the server says ``reset``, the client says on stderr that
events were missed and resumes from the server's newest id. It gives up (exit 3) when it cannot reconnect for RECONNECT_FOR
seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from collections.abc import Callable
from typing import Any

from vm_operator.client import render
from vm_operator.client.commands import Command, vm_name
from vm_operator.client.console import Console
from vm_operator.client.http import Client, TimedOut, Unreachable
from vm_operator.client.records import BadAnswer, Event
from vm_operator.client.sse import Message, SseParser
from vm_operator.command_line import EVENTS

RECONNECT_FOR = 60.0  # seconds of failed reconnections before the client gives up
RETRY_DEFAULT = 2.0  # seconds before a reconnection when the server named no retry delay
RETRY_MAX = 30.0
MAX_LINE = 1 << 20  # an event line longer than this is no event of the operator's
TYPE_WIDTH = 21  # "operation.cancelled" and the like line up


# --- one line per event (pure) --------------------------------------------------------------------


def _word(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def _state(data: dict[str, Any]) -> str:
    exit_code = data.get("exit_code")
    code = "" if exit_code is None else f", exit code {_word(data, 'exit_code')}"
    return f"{_word(data, 'from')} -> {_word(data, 'to')} ({_word(data, 'cause')}{code})"


def _created(data: dict[str, Any]) -> str:
    operation = data.get("operation")
    return "created" + (f" by operation {operation}" if operation else "")


def _operation(data: dict[str, Any]) -> str:
    target = data.get("vm") or data.get("image") or "-"
    text = f"{_word(data, 'kind')} {target}: {_word(data, 'state')}"
    if data.get("phase"):
        text += f", {_word(data, 'phase')}"
    if data.get("progress") is not None:
        text += f" {_word(data, 'progress')}%"
    error = data.get("error")
    if isinstance(error, dict) and error.get("detail"):
        text += f": {_word(error, 'detail')}"
    return f"{text} ({_word(data, 'id')})"


def _members(data: dict[str, Any]) -> str:
    """Every member as ``key=value``, by key: a type with no summary of its own (and one of
    an operator newer than this client)."""
    return " ".join(f"{key}={_word(data, key)}" for key in sorted(data))


Summary = Callable[[dict[str, Any]], str]

# What each type of the operator's event catalogue says (its data, as the README's Events
# table defines it); a test checks that every catalogued type is here.
SUMMARIES: dict[str, Summary] = {
    "vm.state": _state,
    "vm.created": _created,
    "vm.deleted": lambda data: f"deleted ({_word(data, 'cause')})",
    "vm.ready": lambda data: f"ready at {_word(data, 'ip')}:{_word(data, 'port')}",
    "vm.connect": lambda data: (f"tunnel to port {_word(data, 'port')} from "
                                f"{_word(data, 'client')} ended after "
                                f"{_word(data, 'duration_s')} s: {_word(data, 'bytes_to_guest')} "
                                f"bytes in, {_word(data, 'bytes_from_guest')} out"),
    "vm.exec": lambda data: (f"exec {_word(data, 'command')} from {_word(data, 'client')}: "
                             f"{_word(data, 'outcome')}, exit {_word(data, 'exit_code')}, "
                             f"{_word(data, 'duration_ms')} ms"),
    "operation.queued": _operation,
    "operation.started": _operation,
    "operation.progress": _operation,
    "operation.succeeded": _operation,
    "operation.failed": _operation,
    "operation.cancelled": _operation,
    "reconcile.action": _members,
    "reconcile.failed": _members,
    "reconcile.waiting": _members,
    "config.applied": _members,
    "config.refused": _members,
}


def summary(event: Event) -> str:
    """What happened, in a few words (the event's data, as the contract defines it)."""
    return SUMMARIES.get(event.type, _members)(event.data)


def event_line(event: Event) -> str:
    """``TIME  TYPE  VM  summary``, every part made safe to print."""
    kind = render.safe(event.type)
    return (f"{render.safe(event.time)}  {kind:<{TYPE_WIDTH}}  {render.safe(event.vm or '-')}  "
            f"{render.safe(summary(event))}")


def retry_delay(parser: SseParser) -> float:
    if parser.retry_ms is None:
        return RETRY_DEFAULT
    return min(RETRY_MAX, max(0.1, parser.retry_ms / 1000))


def resume_id(parser: SseParser) -> int | None:
    """The ``Last-Event-ID`` to send: the last id seen, when it is one of the operator's."""
    last = parser.last_id
    return int(last) if last is not None and last.isascii() and last.isdigit() else None


def resume_from_reset(parser: SseParser, message: Message) -> None:
    """After ``reset`` the stream goes on from the server's newest id (its ``last_id``): the
    next reconnection resumes there, not from an id the server no longer knows (an earlier
    process's), which would be told ``reset`` again and lose what came in between."""
    try:
        last_id = json.loads(message.data).get("last_id")
    except (ValueError, AttributeError):
        return
    if isinstance(last_id, int) and not isinstance(last_id, bool) and last_id >= 0:
        parser.last_id = str(last_id)


# --- the command -------------------------------------------------------------------------------------


def _events_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vm", metavar="NAME", type=vm_name, help="only the events of this VM")


def _show(message: Message, console: Console) -> None:
    if message.event == "reset":
        console.note("events were missed: the operator's history no longer holds those after "
                     "the last one shown; live events follow")
        return
    try:
        event = Event.from_json(json.loads(message.data))
    except (ValueError, BadAnswer) as exc:
        console.note(f"skipped an event that is not vm-operator's ({exc})")
        return
    if console.json:
        line = message.data if "\n" not in message.data else json.dumps(json.loads(message.data))
        console.raw(line.encode() + b"\n")
    else:
        console.line(event_line(event))
        console.out.flush()


def read_stream(response: Any, parser: SseParser, console: Console) -> None:
    """Print the events of one connection until it ends (EOF) or breaks (a read error or
    timeout: the caller reconnects). Errors of stdout (a broken pipe) are not caught here."""
    content_type = response.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip() != "text/event-stream":
        raise Unreachable("GET /events did not answer an event stream: is the URL that of a "
                          "vm-operator with events?")
    while True:
        try:
            raw = response.readline(MAX_LINE + 1)
        except (OSError, http.client.HTTPException):
            return
        if not raw:
            return
        if len(raw) > MAX_LINE:
            raise Unreachable("an event line is longer than 1 MiB: not vm-operator's stream")
        message = parser.feed(raw.decode("utf-8", "replace"))
        if message is not None:
            if message.event == "reset":
                resume_from_reset(parser, message)
            _show(message, console)


def _events(client: Client, args: argparse.Namespace, console: Console) -> int:
    parser = SseParser()
    dropped_at: float | None = None  # when the stream last dropped; None while connected
    while True:
        try:
            response = client.open_events(args.vm, resume_id(parser))
        except (Unreachable, TimedOut):
            if dropped_at is None or time.monotonic() - dropped_at > RECONNECT_FOR:
                raise  # never connected, or the operator stays away: exit 3 (4)
            time.sleep(retry_delay(parser))
            continue
        dropped_at = None
        with response:
            read_stream(response, parser, console)
        dropped_at = time.monotonic()
        console.note("the event stream dropped; reconnecting"
                     + ("" if parser.last_id is None else f" after event {parser.last_id}"))
        time.sleep(retry_delay(parser))


TABLE: tuple[Command, ...] = (
    Command("events", "print the operator's events as they happen (until Ctrl-C); "
            "--json: each event's JSON on one line", _events, _events_arguments, group=EVENTS),
)
