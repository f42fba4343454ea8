"""The event stream (``GET /events``, Server-Sent Events) and a VM's recent events.

The wire format is the contract of README's Events section: first ``retry: 2000``, then — for
a watcher that resumes with ``Last-Event-ID`` (or ``?last_event_id=``) — the events it missed,
or ``event: reset`` when the history no longer holds them; then each event as it is published
(its types: ``core/event_catalogue.py``), and a ``: heartbeat`` comment whenever the stream has
been quiet for the heartbeat interval.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

from vm_operator.api.app import App, StreamSlots
from vm_operator.api.params import NAME, VM_NAME
from vm_operator.api.problems import TART_FAILURES
from vm_operator.api.schemas import ref
from vm_operator.core.errors import VmNotFound
from vm_operator.core.event_catalogue import OPERATION_PROGRESS, VM_CREATED, VM_STATE
from vm_operator.core.events import RESET, Event, Subscription
from vm_operator.edge.authz import ANONYMOUS, Caller
from vm_operator.edge.errors import ApiError
from vm_operator.edge.params import Int, Schema
from vm_operator.edge.problems.client_errors import BAD_HEADER
from vm_operator.edge.problems.server_errors import TOO_MANY_STREAMS
from vm_operator.edge.responses import EVENT_STREAM, Response, json_response
from vm_operator.edge.routing import OptionalQuery, Request, Route, Success
from vm_operator.tart.errors import TartVmMissing

RETRY_MS = 2000  # what a browser waits before it reconnects
MAX_EVENT_ID = 2**53 - 1  # the largest id a JavaScript number holds exactly

EVENT: Schema = {
    "type": "object",
    "required": ["id", "type", "time", "vm", "data"],
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": MAX_EVENT_ID,
               "description": "Rises by one per event, and across restarts: a process numbers "
                              "its events from its start time in microseconds since 1970"},
        "type": {"type": "string",
                 "examples": [VM_STATE.type, VM_CREATED.type, OPERATION_PROGRESS.type]},
        "time": {"type": "string", "format": "date-time"},
        "vm": {"type": ["string", "null"]},
        "data": {"type": "object"},
    },
}

# What Last-Event-ID and ?last_event_id= take: ASCII digits, at most as many as MAX_EVENT_ID has.
EVENT_ID = Int(0, MAX_EVENT_ID)

RESET_DATA: Schema = {
    "type": "object",
    "required": ["last_id"],
    "properties": {"last_id": {"type": "integer", "minimum": 0,
                               "description": "The last event id issued so far: resume after it"}},
}


def _json_text(schema: Schema) -> Schema:
    """A data field: one line of JSON text (RFC 8259) holding ``schema``."""
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


# One event of the stream as a Server-Sent Events parser gives it: its fields (WHATWG HTML,
# 9.2.6). The opening "retry: 2000" block and ": heartbeat" comments carry no data: no events.
SSE_EVENT: Schema = {
    "description": "One event of the stream (text/event-stream): an event of the bus (event: "
                   "its type, id: its id, data: the Event as JSON), or, first and only when "
                   "the id a watcher resumed from is gone from the history, a reset (no id)",
    "oneOf": [
        {"type": "object", "required": ["event", "data", "id"],
         "properties": {"event": {"type": "string", "not": {"const": RESET},
                                  "description": "The event's type (its JSON's type)"},
                        "id": {"type": "string", "description": "The event's id (its JSON's "
                               "id): send it back as Last-Event-ID to resume after it"},
                        "data": _json_text(ref("Event"))}},
        {"type": "object", "required": ["event", "data"],
         "properties": {"event": {"const": RESET}, "data": _json_text(RESET_DATA)}},
    ],
}

VM_FILTER = OptionalQuery("vm", VM_NAME, "Only the events of this VM")
LAST_EVENT_ID = OptionalQuery(
    "last_event_id", EVENT_ID,
    "Resume after this event id (as the Last-Event-ID header does; the header wins). An id "
    "this process did not issue (an earlier process's) starts the stream with event: reset")


def sse_event(event: Event) -> bytes:
    """One event on the wire: its id, its type, its JSON on one data line, a blank line."""
    body = json.dumps(event.to_json(), separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.id}\nevent: {event.type}\ndata: {body}\n\n".encode()


def sse_reset(last_id: int) -> bytes:
    return f"event: {RESET}\ndata: {json.dumps({'last_id': last_id})}\n\n".encode()


HEARTBEAT = b": heartbeat\n\n"


class EventStream:
    """One watcher's stream (an ``edge.responses.Stream``): its subscription's events as
    Server-Sent Events. ``close`` ends the subscription and gives back the stream's slot."""

    def __init__(self, sub: Subscription, slots: StreamSlots,
                 caller: Caller = ANONYMOUS) -> None:
        self.sub = sub
        self.slots = slots
        self.caller = caller  # a token limited to VM patterns is told only of its VMs
        self._closing = threading.Lock()
        self._closed = False

    def chunks(self) -> Iterator[bytes]:
        sub = self.sub
        yield f"retry: {RETRY_MS}\n\n".encode()
        if sub.reset:
            yield sse_reset(sub.last_id)
        for missed in sub.backlog:
            told = told_to(self.caller, missed)
            if told is not None:
                yield sse_event(told)
        sub.backlog = []
        while not sub.ended:
            event = sub.get(self.slots.heartbeat)
            if event is not None:
                told = told_to(self.caller, event)
                if told is not None:
                    yield sse_event(told)
            elif not sub.ended:
                yield HEARTBEAT

    def close(self) -> None:
        with self._closing:
            if self._closed:
                return
            self._closed = True
        self.slots.give_back()  # first: once the bus counts one watcher less, the slot is free
        self.sub.close()


def told_to(caller: Caller, event: Event) -> Event | None:
    """The event as ``caller`` is told it (None: not at all): a token limited to VM patterns
    is told what ``Event.seen_by`` keeps, on the stream as in a VM's history."""
    return event.seen_by(caller.may_touch) if caller.scoped else event


def resume_after(req: Request) -> int | None:
    """The id a watcher resumes after: the ``Last-Event-ID`` header (what a reconnecting
    client sends), else ``?last_event_id=``; None for a new watcher."""
    header = req.headers.get("Last-Event-ID")
    if header:  # an empty one is no id (what EventSource sends before its first event)
        try:
            return EVENT_ID.from_text("Last-Event-ID", header)
        except ValueError as exc:
            raise ApiError(BAD_HEADER, f"{exc} (the id of an event)") from None
    return req.optional(LAST_EVENT_ID)


def events(app: App, req: Request) -> Response:
    after = resume_after(req)
    if not app.streams.take():
        raise ApiError(TOO_MANY_STREAMS,
                       f"{app.streams.limit} event streams are open already "
                       "(VM_OPERATOR_EVENTS_MAX_STREAMS)", (("Retry-After", "5"),))
    try:
        sub = app.service.events.subscribe(req.optional(VM_FILTER), after)
    except BaseException:
        app.streams.give_back()
        raise
    return Response(200, b"", EVENT_STREAM, stream=EventStream(sub, app.streams, req.caller))


def vm_events(app: App, req: Request) -> Response:
    """The VM's recent events, oldest first: what the bus remembers of it. A VM the bus has
    heard nothing of is looked up in Tart: 404 only when neither knows it."""
    name = req.get(NAME)
    history = app.service.events.history(name)
    if not history:
        app.service.inventory.find(name)  # raises VmNotFound
    told = (told_to(req.caller, event) for event in history)
    return json_response(200, {"events": [event.to_json() for event in told
                                          if event is not None]})


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/events", events,
          "The event stream (Server-Sent Events): VM states, creates, deletes, operations; "
          "resumable with Last-Event-ID", "streamEvents", query=(VM_FILTER, LAST_EVENT_ID),
          ok=(Success(200, "Events as they happen (text/event-stream: id, event and data "
                      "lines, data being the event's JSON; ': heartbeat' comments). The "
                      "schema describes one event", SSE_EVENT, "text/event-stream"),),
          problems=(BAD_HEADER, TOO_MANY_STREAMS)),
    Route("GET", "/vms/{name}/events", vm_events,
          "A VM's recent events, oldest first (bounded history)", "getVmEvents", path=(NAME,),
          ok=(Success(200, "The events", {
              "type": "object", "required": ["events"],
              "properties": {"events": {"type": "array", "items": ref("Event")}}}),),
          problems=(VmNotFound, TartVmMissing, *TART_FAILURES)),
)
