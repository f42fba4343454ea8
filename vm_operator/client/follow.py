"""Following an operation until it ends: what ``create``, ``delete``, ``images pull`` and
``images prune`` (manage.py) do with the operation they queue.

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
import time
from collections.abc import Callable
from typing import Any, TextIO

from vm_operator.client import render
from vm_operator.client.console import Console
from vm_operator.client.http import Client, ClientError, Reply, TimedOut, Unreachable
from vm_operator.client.records import BadAnswer, Event, Operation
from vm_operator.client.sse import SseParser

POLL_INTERVAL = 0.2  # seconds between two reads of a followed operation
EXIT_REFUSED = 1
EXIT_TIMEOUT = 4


def stage_of(op: Operation) -> str | None:
    """What an unfinished operation is doing, as its phase line says it: its phase, or
    ``queued`` while it waits for its turn."""
    if op.phase:
        return op.phase
    return "queued" if op.state == "queued" else None


class OperationProgress:
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


def await_operation(client: Client, reply: Reply[Operation],
                    stream: OperationStream | None = None,
                    seen: Callable[[Operation], None] = lambda op: None) -> Reply[Operation]:
    """The operation of ``reply`` once it has ended (as ``GET /operations/{id}`` answers it):
    through ``stream`` while it tells, else by polling; ``seen`` is shown each of its states,
    from the first."""
    op_id = reply.value.id
    told = None if stream is None else stream.next_change(op_id)
    if told is None:
        stream = None
    else:  # the stream tells every change from the first (the reply may be a later one)
        reply = told
    seen(reply.value)
    while not reply.value.finished:
        told = None if stream is None else stream.next_change(op_id)
        if told is None:  # no stream, or it ended: poll
            stream = None
            time.sleep(POLL_INTERVAL)
            told = client.operation(op_id)
        reply = told
        seen(reply.value)
    return reply


def follow_operation(client: Client, reply: Reply[Operation], console: Console,
                     done: Callable[[Operation], str],
                     stream: OperationStream | None = None) -> int:
    """Follow the operation of ``reply`` until it ends, showing it (``await_operation``).
    Then its outcome: ``done`` of it on stdout (with ``--json`` the finished operation as
    ``GET /operations/{id}`` answers it) and 0, or why it did not succeed on stderr and 1 (4
    when its error is a 504: something timed out)."""
    op_id = reply.value.id
    watch = OperationProgress(console.err, console.err_terminal, _stream_width(console))
    try:
        reply = await_operation(client, reply, stream, watch.show)
    except KeyboardInterrupt:
        watch.end(succeeded=False)
        console.note(f"stopped following; the operation {op_id} goes on: "
                     f"'vm-operator ops get {op_id}' shows it, "
                     f"'vm-operator ops cancel {op_id}' cancels it")
        raise
    op = reply.value
    watch.end(succeeded=op.state == "succeeded")
    if console.json:
        console.body(reply.body)
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
