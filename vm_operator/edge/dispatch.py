"""``dispatch``: one request, as plain data (method, target, headers, body), to a response.

It never touches a socket, which is what lets the server shell stay thin. The order of the
checks is part of the contract: the route (404, 405), the path parameters (400), the query's
keys (400), who may call it (429 past too many invalid tokens, 401, 403 for the route's role,
415), the body (400), the VM it touches or the operation's owner (403, ``guard.py``), the
query's values (400), then the handler. Every request that may change something, and a refused
``connect`` route, gets its audit line here. A read whose very head passed the checks before
is admitted again at once (``admitted.py``: they depend on nothing else), but for the throttle.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic
from urllib.parse import quote

from vm_operator.core.errors import OperatorError
from vm_operator.edge.admitted import Admissions, keepable, tokens_in_force
from vm_operator.edge.audit import NO_AUDIT, Audit, AuditSink, no_audit
from vm_operator.edge.authz import ANONYMOUS, Caller, Role
from vm_operator.edge.body import Body
from vm_operator.edge.conditional import conditional
from vm_operator.edge.errors import ApiError, problem_for
from vm_operator.edge.guard import (
    Owners,
    audited,
    check_role,
    check_target,
    check_throttle,
    named_vm,
)
from vm_operator.edge.problems.client_errors import FORBIDDEN, NO_ROUTE, UNEXPECTED_BODY
from vm_operator.edge.problems.server_errors import INTERNAL_ERROR
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import (
    A,
    Candidates,
    Request,
    Route,
    RouteTable,
    allowed_methods,
    choose,
    parse_query,
    path_values,
    query_values,
    split_target,
)
from vm_operator.edge.security import (
    Access,
    Headers,
    check_access,
    cors_headers,
    identify,
    trusted,
)
from vm_operator.edge.throttle import Throttle
from vm_operator.edge.tunnels import handshake_check, handshake_headers
from vm_operator.tart.errors import TartError

UNMATCHED = "unmatched"  # the metrics label of a request no route's path fits


@dataclass(frozen=True)
class Site(Generic[A]):
    """What dispatch serves: the routes, who may call them, and what their handlers are given;
    where the audit lines go, the throttle of failed tokens, the owners of operations."""

    routes: RouteTable[A]
    access: Access
    app: A
    audit: AuditSink = no_audit
    throttle: Throttle = field(default_factory=Throttle)
    owners: Owners = field(default_factory=Owners)
    admitted: Admissions[A] = field(default_factory=Admissions)  # reads that passed the checks


def _routes_for(routes: RouteTable[A], target: str) -> tuple[list[str], str, Candidates[A]]:
    """Segments, query and the routes whose path fits the target; 404 when none does."""
    segments, query = split_target(target)
    candidates = routes.match(segments)
    if not candidates:
        raise ApiError(NO_ROUTE, "no such route; see GET /openapi.json")
    return segments, query, candidates


def resolve(routes: RouteTable[A], method: str, target: str,
            headers: Headers | None = None) -> tuple[Route[A], Request]:
    """Find the route for a request and decode its parameters, or raise the right ApiError."""
    segments, query, candidates = _routes_for(routes, target)
    route, raw_params = choose(method, candidates)
    return route, _request(route, method, segments, raw_params, query, headers)


def _request(
    route: Route[A], method: str, segments: list[str], raw_params: dict[str, str], query: str,
    headers: Headers | None,
) -> Request:
    return Request(method, "/" + "/".join(segments), path_values(route, raw_params),
                   parse_query(query, route.query_names), {} if headers is None else headers)


def route_body(routes: RouteTable[A], method: str, target: str) -> Body[Any] | None:
    """The body the route of a request takes (None: none, or no such route): the server reads
    a body only up to its bound."""
    try:
        _, _, candidates = _routes_for(routes, target)
        return choose(method, candidates)[0].body
    except ApiError:
        return None


def route_label(routes: RouteTable[A], target: str) -> str:
    """The pattern of the route a target's path names, or ``unmatched``: a bounded label."""
    try:
        return _routes_for(routes, target)[2][0][0].pattern
    except ApiError:
        return UNMATCHED


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return quote(str(value), safe="")
    return quote(json.dumps(value, separators=(",", ":")), safe="")


def body_refusal(route: Route[A], body: bytes) -> str:
    """Why a body is refused on ``route``, and where what it tried to say goes instead."""
    try:
        sent = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        sent = None
    fields: dict[str, Any] = sent if isinstance(sent, dict) else {}
    moved = [key for key in fields if key in route.query_names]
    if moved:
        names = " and ".join(moved)
        where = "as a query parameter" if len(moved) == 1 else "as query parameters"
        example = "&".join(f"{key}={_query_value(fields[key])}" for key in moved)
        return f"this route takes no body; pass {names} {where}: ?{example}"
    if route.query:
        return ("this route takes no body; its parameters go in the query string: "
                + ", ".join(route.query_names))
    return "this route takes no body and no parameters: send the request without a body"


def dispatch(
    site: Site[A], method: str, target: str, headers: Headers, body: bytes = b"",
    client: str = "",
) -> tuple[Response, str]:
    """Serve one request: returns the response and the route pattern (for logs and metrics).

    Every response carries the CORS headers of an allowed origin, refusals included; the
    label is the pattern of the route the path names even when the request is refused
    (a bad name or query, a wrong method, a missing token), ``unmatched`` only for a path
    that no route has. ``client`` is the peer's address: failed tokens are throttled per
    address, and the audit log records it.
    """
    label = UNMATCHED
    started = time.perf_counter()
    route: Route[A] | None = None
    caller: Caller | None = None
    vm: str | None = None
    handled = False
    try:
        admitted = None if body else site.admitted.get(method, target, headers, client,
                                                        site.access)
        if admitted is not None:  # this head passed the checks before: only the throttle's left
            route, req, vm = admitted.route, admitted.request, admitted.vm
            label, caller = route.pattern, None if route.public else req.caller
            if site.access.authenticated and not route.public:
                check_throttle(site.throttle, client, time.monotonic())
        else:
            tokens = tokens_in_force(site.access)  # before the checks: a reload may overtake them
            known = site.routes.resolved(method, target)
            if known is None:
                segments, query, candidates = _routes_for(site.routes, target)
                label = candidates[0][0].pattern
                if method == "OPTIONS":
                    return _options(site, candidates, headers), label
                route, raw_params = choose(method, candidates)
                label = route.pattern
                params: Mapping[str, object] = path_values(route, raw_params)
                path = "/" + "/".join(segments)
                site.routes.remember(method, path, route, params)
            else:
                route, params, path, query = known
                label = route.pattern
            sent = parse_query(query, route.query_names)
            vm = named_vm(params, None)
            caller = _caller(site, route, headers)
            _authorize(site, route, method, headers, client, caller)
            body_value: object = None
            if route.body is not None:
                body_value = route.body.parse(body, headers.get("Content-Type"))
            elif body:
                raise ApiError(UNEXPECTED_BODY, body_refusal(route, body))
            vm = named_vm(params, body_value)
            values, bad_value = _query_values(route, sent)
            req = Request(method, path, params, sent, headers, values, body_value,
                          trusted(site.access, method, headers) if route.public else True, client,
                          caller or ANONYMOUS,
                          Audit(site.audit, _name(caller), client, method, path, vm, started)
                          if route.needs is Role.CONNECT else NO_AUDIT)  # writes its own line
            if not route.public:
                check_target(route, req, site.owners)
            if route.upgrade:
                handshake_check(method, headers)
            if bad_value is not None:
                raise bad_value
            if keepable(route, method, body):
                site.admitted.keep(method, target, headers, client, tokens, route, req, vm)
        response = route.handler(site.app, req)
        handled = True
        if route.upgrade and response.tunnel is not None:
            response = response.with_headers(*handshake_headers(headers))
        site.owners.answered(response, req.caller)
        if route.etag:
            response = conditional(response, headers)
    except ApiError as exc:
        response = exc.response()
    except (OperatorError, TartError) as exc:
        response = problem_for(exc).response()
    except Exception:  # noqa: BLE001 - a bug: log it for us, never show a traceback to the client
        traceback.print_exc(file=sys.stderr)
        response = ApiError(INTERNAL_ERROR, "the operator failed; see its log").response()
    connect = route is not None and route.needs is Role.CONNECT
    if (audited(method) and not (connect and handled)) or (connect and not handled):
        # a connect route that answered writes its own line when its tunnel or exec ends
        Audit(site.audit, _name(caller), client, method, target.partition("?")[0], vm,
              started)(response.status)
    return response.with_headers(*cors_headers(site.access, headers)), label


def _query_values(route: Route[A], sent: dict[str, str]
                  ) -> tuple[dict[str, object], ApiError | None]:
    """The typed query values, or the refusal of one: raised after the checks of who may call
    and what it touches, which come first."""
    if not route.query:
        return {}, None
    try:
        return query_values(route, sent), None
    except ApiError as exc:
        return {}, exc


def _name(caller: Caller | None) -> str:
    """The audit log's name of a caller; ``-`` for a request refused before it was known."""
    return caller.name if caller is not None else "-"


def _caller(site: Site[A], route: Route[A], headers: Headers) -> Caller | None:
    """Who calls a route that is not public (None: a public route, or no valid token)."""
    if route.public:
        return None
    found = identify(site.access, headers.get("Authorization"))
    return None if isinstance(found, ApiError) else found


def _authorize(site: Site[A], route: Route[A], method: str, headers: Headers, client: str,
               caller: Caller | None) -> None:
    """The checks of who may call the route (throttle, token, Host, cross-site, media type,
    role); raises the refusal."""
    if site.access.authenticated and not route.public:
        check_throttle(site.throttle, client, time.monotonic())
    refusal = check_access(site.access, method, route.public, headers, route.body,
                           writes=route.upgrade)
    if refusal is not None:
        if refusal.status == 401 and headers.get("Authorization"):
            site.throttle.failed(client, time.monotonic())  # a token presented, and wrong
        raise refusal
    if route.needs is Role.CONNECT and not site.access.authenticated and site.access.exposed:
        raise ApiError(FORBIDDEN, "running commands in guests and tunnels to their ports need a "
                       "token when the API listens beyond loopback: set VM_OPERATOR_TOKEN (or "
                       "a tokens file)")
    if caller is not None:
        check_role(route, caller)


def _options(site: Site[A], candidates: Candidates[A], headers: Headers) -> Response:
    """OPTIONS (and CORS preflight): which methods a path takes."""
    allow = allowed_methods(candidates)
    return Response(204, b"", "", (("Allow", allow),) + cors_headers(site.access, headers, allow))
