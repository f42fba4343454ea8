"""The API: one route table, handlers that return ``Response`` values, and ``dispatch``.

``dispatch`` takes a request as plain data (method, target, headers) and returns a
response; it never touches a socket, which is what lets the server shell stay thin.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from vm_operator import __version__
from vm_operator.errors import ApiError, api_error_for, bad_request
from vm_operator.names import InvalidName, decode_segment, validate_name
from vm_operator.responses import Response, json_response, problem, text_response
from vm_operator.security import Access, Headers, check_access, cors_headers
from vm_operator.state import LOG_TAIL_LINES_MAX
from vm_operator.tart import SOURCES, STATES, TartError
from vm_operator.vms import VmService, utc_now

if TYPE_CHECKING:
    from vm_operator.metrics import Metrics


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Headers


@dataclass
class App:
    """What handlers may use: the VM service, the settings, the metrics."""

    service: VmService
    access: Access
    metrics: Metrics
    openapi: Callable[[], dict[str, Any]] = field(default=dict)


Handler = Callable[[App, Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    query: tuple[str, ...] = ()

    @cached_property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.pattern.strip("/").split("/"))


# --- query parameters (pure) ------------------------------------------------------


def int_param(req: Request, key: str, default: int, low: int, high: int) -> int:
    raw = req.query.get(key)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,6}", raw) or not low <= int(raw) <= high:
        raise bad_request("invalid-parameter", f"{key} must be a whole number from {low} to {high}")
    return int(raw)


def bool_param(req: Request, key: str) -> bool:
    raw = req.query.get(key, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise bad_request("invalid-parameter", f"{key} must be true or false")
    return raw in ("true", "1")


def choice_param(req: Request, key: str, choices: tuple[str, ...]) -> str | None:
    raw = req.query.get(key)
    if raw is not None and raw not in choices:
        raise bad_request("invalid-parameter", f"{key} must be one of: {', '.join(choices)}")
    return raw


# --- handlers ---------------------------------------------------------------------


def health(app: App, req: Request) -> Response:
    tart = app.service.tart_status()
    healthy = tart["available"]
    return json_response(
        200,
        {
            "status": "healthy" if healthy else "degraded",
            "message": "vm-operator is serving"
            if healthy
            else f"vm-operator is serving, but Tart cannot be run ({tart['path']})",
            "timestamp": utc_now(),
            "version": __version__,
            "tart": tart,
        },
    )


def ready(app: App, req: Request) -> Response:
    try:
        vms = app.service.list_vms()
    except TartError as exc:
        error = api_error_for(exc)
        return problem(503, "not-ready", "Not ready", f"tart list fails: {error.detail}")
    return json_response(200, {"status": "ready", "vms": len(vms)})


def list_vms(app: App, req: Request) -> Response:
    state = choice_param(req, "state", STATES)
    source = choice_param(req, "source", SOURCES)
    vms = [
        vm
        for vm in app.service.list_vms()
        if (state is None or vm["state"] == state) and (source is None or vm["source"] == source)
    ]
    return json_response(200, vms)


def get_vm(app: App, req: Request) -> Response:
    return json_response(200, app.service.describe(req.params["name"]))


def start_vm(app: App, req: Request) -> Response:
    status, vm = app.service.start(req.params["name"], bool_param(req, "suspendable"))
    return json_response(status, vm)


def stop_vm(app: App, req: Request) -> Response:
    timeout = int_param(req, "timeout", 30, 0, 300)
    status, vm = app.service.stop(req.params["name"], timeout)
    return json_response(status, vm)


def suspend_vm(app: App, req: Request) -> Response:
    return json_response(200, app.service.suspend(req.params["name"]))


def vm_ip(app: App, req: Request) -> Response:
    wait = int_param(req, "wait", 0, 0, 120)
    return json_response(200, {"name": req.params["name"], "ip": app.service.ip(req.params["name"], wait)})


LOG_HEADERS = "Vm-Operator-Log-Truncated, Vm-Operator-Log-Omitted-Bytes"


def vm_logs(app: App, req: Request) -> Response:
    """The end of the run log (at most state.LOG_TAIL_BYTES, from a line boundary), or its
    last ``?tail=N`` lines; the headers say whether that limit cut the answer."""
    lines = int_param(req, "tail", 0, 1, LOG_TAIL_LINES_MAX) if "tail" in req.query else None
    tail = app.service.logs(req.params["name"], lines)
    return text_response(200, tail.data).with_headers(
        ("Vm-Operator-Log-Truncated", "true" if tail.truncated else "false"),
        ("Vm-Operator-Log-Omitted-Bytes", str(tail.omitted)),
        ("Access-Control-Expose-Headers", LOG_HEADERS),  # for a browser app (CORS)
    )


def openapi(app: App, req: Request) -> Response:
    return json_response(200, app.openapi())


def metrics(app: App, req: Request) -> Response:
    return Response(200, app.metrics.render(app.service).encode(), "text/plain; version=0.0.4; charset=utf-8")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", health),
    Route("GET", "/ready", ready),
    Route("GET", "/vms", list_vms, ("state", "source")),
    Route("GET", "/vms/{name}", get_vm),
    Route("POST", "/vms/{name}/start", start_vm, ("suspendable",)),
    Route("POST", "/vms/{name}/stop", stop_vm, ("timeout",)),
    Route("POST", "/vms/{name}/suspend", suspend_vm),
    Route("GET", "/vms/{name}/ip", vm_ip, ("wait",)),
    Route("GET", "/vms/{name}/logs", vm_logs, ("tail",)),
    Route("GET", "/openapi.json", openapi),
    Route("GET", "/metrics", metrics),
)

PROBES = frozenset({"/health", "/ready"})


# --- routing (pure) ---------------------------------------------------------------


def split_target(target: str) -> tuple[list[str], str]:
    """Split an origin-form request target into raw path segments and the query string."""
    if not target.startswith("/") or "#" in target:
        raise bad_request("bad-target", "the request target must be an absolute path")
    path, _, query = target.partition("?")
    return path[1:].split("/"), query


RouteIndex = tuple[dict[tuple[str, ...], list[Route]], dict[int, list[Route]]]


def _index(routes: tuple[Route, ...]) -> RouteIndex:
    """Literal patterns by their exact segments (one dict lookup for /health, /vms, ...),
    and patterns with parameters grouped by segment count."""
    literal: dict[tuple[str, ...], list[Route]] = {}
    patterned: dict[int, list[Route]] = {}
    for route in routes:
        if any(part.startswith("{") for part in route.segments):
            patterned.setdefault(len(route.segments), []).append(route)
        else:
            literal.setdefault(route.segments, []).append(route)
    return literal, patterned


_INDEX = _index(ROUTES)


def match(
    segments: list[str], routes: tuple[Route, ...] = ROUTES
) -> list[tuple[Route, dict[str, str]]]:
    """All routes whose pattern fits the raw segments, with their raw parameters."""
    literal, patterned = _INDEX if routes is ROUTES else _index(routes)
    found: list[tuple[Route, dict[str, str]]] = [
        (route, {}) for route in literal.get(tuple(segments), ())
    ]
    for route in patterned.get(len(segments), ()):
        params: dict[str, str] = {}
        for want, got in zip(route.segments, segments):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            found.append((route, params))
    return found


def allowed_methods(candidates: list[tuple[Route, dict[str, str]]]) -> str:
    methods = {route.method for route, _ in candidates}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods | {"OPTIONS"}))


def parse_query(query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """Strict query parsing: unknown keys, repeats and bad encodings are all errors."""
    if not query:
        return {}
    if "%" in query and re.search(r"%(?![0-9A-Fa-f]{2})", query):
        raise bad_request("bad-query", "the query holds an invalid percent-encoding")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True,
                          errors="strict", max_num_fields=16)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("bad-query", "the query string cannot be parsed") from None
    result: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise bad_request("unknown-parameter", f"unknown query parameter {key!r} (known: {known})")
        if key in result:
            raise bad_request("repeated-parameter", f"query parameter {key!r} is given twice")
        result[key] = value
    return result


def _routes_for(target: str) -> tuple[list[str], str, list[tuple[Route, dict[str, str]]]]:
    """Segments, query and the routes whose path fits the target; 404 when none does."""
    segments, query = split_target(target)
    candidates = match(segments)
    if not candidates:
        raise ApiError(404, "no-route", "Not found", "no such route; see GET /openapi.json")
    return segments, query, candidates


def resolve(method: str, target: str, headers: Headers | None = None) -> tuple[Route, Request]:
    """Find the route for a request and decode its parameters, or raise the right ApiError."""
    segments, query, candidates = _routes_for(target)
    lookup = "GET" if method == "HEAD" else method
    chosen = [(route, params) for route, params in candidates if route.method == lookup]
    if not chosen:
        raise ApiError(
            405,
            "method-not-allowed",
            "Method not allowed",
            f"{method} is not allowed here",
            (("Allow", allowed_methods(candidates)),),
        )
    route, raw_params = chosen[0]
    params = {}
    for key, raw in raw_params.items():
        try:
            params[key] = validate_name(decode_segment(raw))
        except InvalidName as exc:
            raise bad_request("invalid-name", str(exc)) from None
    return route, Request(method, "/" + "/".join(segments), params, parse_query(query, route.query),
                          {} if headers is None else headers)


def dispatch(
    app: App, method: str, target: str, headers: Headers
) -> tuple[Response, str]:
    """Serve one request: returns the response and the route pattern (for logs and metrics)."""
    label = "unmatched"
    try:
        if method == "OPTIONS":
            return _options(app, target, headers), label
        route, req = resolve(method, target, headers)
        label = route.pattern
        refusal = check_access(app.access, method, req.path in PROBES, headers)
        if refusal is not None:
            return refusal.response(), label
        response = route.handler(app, req)
    except ApiError as exc:
        response = exc.response()
    except TartError as exc:
        response = api_error_for(exc).response()
    except Exception:  # noqa: BLE001 - a bug: log it for us, never show a traceback to the client
        traceback.print_exc(file=sys.stderr)
        response = problem(500, "internal-error", "Internal error", "the operator failed; see its log")
    return response.with_headers(*cors_headers(app.access, headers)), label


def _options(app: App, target: str, headers: Headers) -> Response:
    """OPTIONS (and CORS preflight): which methods a path takes."""
    allow = allowed_methods(_routes_for(target)[2])
    return Response(204, b"", "", (("Allow", allow),) + cors_headers(app.access, headers, allow))
