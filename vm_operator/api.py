"""The API: one route table, handlers that return ``Response`` values, and ``dispatch``.

``dispatch`` takes a request as plain data (method, target, headers) and returns a
response; it never touches a socket, which is what lets the server shell stay thin.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from vm_operator import __version__
from vm_operator.errors import ApiError, api_error_for, bad_request
from vm_operator.names import InvalidName, decode_segment, validate_name
from vm_operator.problems import CATALOGUE, index_page, problem_page
from vm_operator.responses import HTML, Response, json_response, problem, text_response
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
    public: bool = False  # no token, Host or cross-site checks: the probes and the documentation
    takes_body: bool = False  # a route that takes none refuses a request with a body (400)

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
    status, vm = app.service.suspend(req.params["name"])
    return json_response(status, vm)


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


# The pages are fixed text: built once. They load nothing, so they may forbid everything.
_PAGE_HEADERS = (("Content-Security-Policy", "default-src 'none'"),)
_PROBLEM_INDEX = index_page()
_PROBLEM_PAGES = {problem.slug: problem_page(problem) for problem in CATALOGUE}


def problem_index(app: App, req: Request) -> Response:
    return Response(200, _PROBLEM_INDEX, HTML, _PAGE_HEADERS)


def problem_doc(app: App, req: Request) -> Response:
    """The documentation of a problem type: what a problem document's ``type`` resolves to."""
    slug = req.params["slug"]
    page = _PROBLEM_PAGES.get(slug)
    if page is None:
        raise ApiError(404, "unknown-problem", "No such problem type",
                       f"there is no problem type {slug[:80]!r}; see GET /problems")
    return Response(200, page, HTML, _PAGE_HEADERS)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", health, public=True),
    Route("GET", "/ready", ready, public=True),
    Route("GET", "/vms", list_vms, ("state", "source")),
    Route("GET", "/vms/{name}", get_vm),
    Route("POST", "/vms/{name}/start", start_vm, ("suspendable",)),
    Route("POST", "/vms/{name}/stop", stop_vm, ("timeout",)),
    Route("POST", "/vms/{name}/suspend", suspend_vm),
    Route("GET", "/vms/{name}/ip", vm_ip, ("wait",)),
    Route("GET", "/vms/{name}/logs", vm_logs, ("tail",)),
    Route("GET", "/openapi.json", openapi),
    Route("GET", "/metrics", metrics),
    Route("GET", "/problems", problem_index, public=True),
    Route("GET", "/problems/{slug}", problem_doc, public=True),
)
UNMATCHED = "unmatched"  # the metrics label of a request no route's path fits


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
        raise ApiError(404, "no-route", "No such route", "no such route; see GET /openapi.json")
    return segments, query, candidates


def _choose(
    method: str, candidates: list[tuple[Route, dict[str, str]]]
) -> tuple[Route, dict[str, str]]:
    """The route of this method among those that fit the path; 405 with Allow when none is.

    Any method gets here, TRACE, CONNECT or one nobody registered: a path that exists
    answers 405 naming what it takes (RFC 9110, section 15.5.6).
    """
    lookup = "GET" if method == "HEAD" else method
    for route, params in candidates:
        if route.method == lookup:
            return route, params
    raise ApiError(
        405,
        "method-not-allowed",
        "Method not allowed",
        f"{method[:32]} is not allowed here",
        (("Allow", allowed_methods(candidates)),),
    )


def _decode_params(raw_params: dict[str, str]) -> dict[str, str]:
    """A VM name is decoded strictly and validated; any other parameter (a problem slug) is
    looked up as sent and never reaches Tart."""
    params = {}
    for key, raw in raw_params.items():
        if key != "name":
            params[key] = raw
            continue
        try:
            params[key] = validate_name(decode_segment(raw))
        except InvalidName as exc:
            raise bad_request("invalid-name", str(exc)) from None
    return params


def resolve(method: str, target: str, headers: Headers | None = None) -> tuple[Route, Request]:
    """Find the route for a request and decode its parameters, or raise the right ApiError."""
    segments, query, candidates = _routes_for(target)
    route, raw_params = _choose(method, candidates)
    return route, _request(route, method, segments, raw_params, query, headers)


def _request(
    route: Route, method: str, segments: list[str], raw_params: dict[str, str], query: str,
    headers: Headers | None,
) -> Request:
    return Request(method, "/" + "/".join(segments), _decode_params(raw_params),
                   parse_query(query, route.query), {} if headers is None else headers)


def route_label(target: str) -> str:
    """The pattern of the route a target's path names, or ``unmatched``: a bounded label."""
    try:
        return _routes_for(target)[2][0][0].pattern
    except ApiError:
        return UNMATCHED


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return quote(str(value), safe="")
    return quote(json.dumps(value, separators=(",", ":")), safe="")


def body_refusal(route: Route, body: bytes) -> str:
    """Why a body is refused on ``route``, and where what it tried to say goes instead."""
    try:
        sent = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        sent = None
    fields: dict[str, Any] = sent if isinstance(sent, dict) else {}
    moved = [key for key in fields if key in route.query]
    if moved:
        names = " and ".join(moved)
        where = "as a query parameter" if len(moved) == 1 else "as query parameters"
        example = "&".join(f"{key}={_query_value(fields[key])}" for key in moved)
        return f"this route takes no body; pass {names} {where}: ?{example}"
    if route.query:
        return ("this route takes no body; its parameters go in the query string: "
                + ", ".join(route.query))
    return "this route takes no body and no parameters: send the request without a body"


def dispatch(
    app: App, method: str, target: str, headers: Headers, body: bytes = b""
) -> tuple[Response, str]:
    """Serve one request: returns the response and the route pattern (for logs and metrics).

    Every response carries the CORS headers of an allowed origin, refusals included; the
    label is the pattern of the route the path names even when the request is refused
    (a bad name or query, a wrong method, a missing token), ``unmatched`` only for a path
    that no route has.
    """
    label = UNMATCHED
    try:
        segments, query, candidates = _routes_for(target)
        label = candidates[0][0].pattern
        if method == "OPTIONS":
            return _options(app, candidates, headers), label
        route, raw_params = _choose(method, candidates)
        label = route.pattern
        req = _request(route, method, segments, raw_params, query, headers)
        refusal = check_access(app.access, method, route.public, headers)
        if refusal is not None:
            raise refusal
        if body and not route.takes_body:
            raise bad_request("unexpected-body", body_refusal(route, body))
        response = route.handler(app, req)
    except ApiError as exc:
        response = exc.response()
    except TartError as exc:
        response = api_error_for(exc).response()
    except Exception:  # noqa: BLE001 - a bug: log it for us, never show a traceback to the client
        traceback.print_exc(file=sys.stderr)
        response = problem(500, "internal-error", "Internal error", "the operator failed; see its log")
    return response.with_headers(*cors_headers(app.access, headers)), label


def _options(app: App, candidates: list[tuple[Route, dict[str, str]]], headers: Headers) -> Response:
    """OPTIONS (and CORS preflight): which methods a path takes."""
    allow = allowed_methods(candidates)
    return Response(204, b"", "", (("Allow", allow),) + cors_headers(app.access, headers, allow))
