"""Routes: what each declares once, and how a request target finds one (pure).

A ``Route`` declares its method, path pattern, handler, summary, typed path and query
parameters, body, success answers and the problems it can answer; the route table is built
by the API layer and handed to ``dispatch``, and /openapi.json is generated from the same
declarations. Handlers get a typed request: ``req.get(NAME)`` is a value the parameter's
type has already decoded and validated, never raw text to parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar, cast
from urllib.parse import parse_qsl, unquote_to_bytes

from vm_operator.edge.audit import NO_AUDIT, Audit
from vm_operator.edge.authz import ANONYMOUS, Caller, Role, default_role
from vm_operator.edge.body import Body
from vm_operator.edge.errors import ApiError
from vm_operator.edge.params import ParamType, Schema
from vm_operator.edge.problems import ProblemType
from vm_operator.edge.problems.client_errors import (
    BAD_QUERY,
    BAD_TARGET,
    METHOD_NOT_ALLOWED,
    REPEATED_PARAMETER,
    UNKNOWN_PARAMETER,
)
from vm_operator.edge.records import quick_init
from vm_operator.edge.responses import Response
from vm_operator.edge.security import Headers

A = TypeVar("A")  # what handlers are given: the API's application object
T = TypeVar("T")


@dataclass(frozen=True)
class PathParam(Generic[T]):
    """``{name}`` in a pattern: always required."""

    name: str
    type: ParamType[T]
    doc: str


@dataclass(frozen=True)
class Query(Generic[T]):
    """A query parameter with a default (taken when it is not given)."""

    name: str
    type: ParamType[T]
    default: T
    doc: str


@dataclass(frozen=True)
class OptionalQuery(Generic[T]):
    """A query parameter without a default: ``req.optional(...)`` is None when not given;
    ``required``: a request without it is refused (400) before the handler."""

    name: str
    type: ParamType[T]
    doc: str
    required: bool = False


@dataclass(frozen=True)
class Success:
    """An answer of a route that is not a problem: its status and what it carries."""

    status: int
    description: str
    schema: Schema | None  # of its body; None: it has none (a 204)
    media_type: str = "application/json"
    headers: Mapping[str, Schema] = field(default_factory=dict)  # documented response headers


def switching_protocols(what: str) -> tuple[Success]:
    """The ``ok`` of a route declared ``upgrade=True``: its 101 hands the connection over."""
    return (Success(101, f"Switching Protocols: the connection is {what}'s WebSocket", None,
                    media_type=""),)


@quick_init
@dataclass(frozen=True)
class Request:
    """A request as a handler sees it. ``params`` holds the typed path values, ``query`` the
    query as sent (keys checked), ``values`` the typed query values, ``body`` the typed body.
    ``trusted``: the caller passed the checks a public route skips (``security.trusted``), so
    it may be told details; always true on the other routes, which refuse everyone else.
    ``caller``: who made it (its roles, its VM patterns: a list shows only its VMs).
    ``audit``: writes the request's audit line; a ``connect`` route calls it when its tunnel
    or exec ends (``req.audit(status, bytes_in=…, bytes_out=…, exit_code=…)``). On the other
    routes dispatch writes the line, and this is ``NO_AUDIT``."""

    method: str
    path: str
    params: Mapping[str, object]
    query: Mapping[str, str]
    headers: Headers
    values: Mapping[str, object] = field(default_factory=dict)
    body: object = None
    trusted: bool = True
    client: str = ""  # the client's address, as the socket has it (for audit events)
    caller: Caller = ANONYMOUS
    audit: Audit = NO_AUDIT

    def get(self, param: PathParam[T] | Query[T] | Body[T]) -> T:
        """The typed value of a path parameter, of a query parameter (or its default), or
        the typed body."""
        if isinstance(param, Body):
            return cast(T, self.body)
        found = self.params if isinstance(param, PathParam) else self.values
        return cast(T, found[param.name])

    def optional(self, param: OptionalQuery[T]) -> T | None:
        return cast("T | None", self.values.get(param.name))

    def required(self, param: OptionalQuery[T]) -> T:
        """A query parameter declared ``required=True``: the router refused a request without
        it, so it is there."""
        value = self.optional(param)
        assert value is not None
        return value


Problem = type[Exception] | ProblemType  # an exception of the core or the adapter, or an entry


@dataclass(frozen=True)
class Route(Generic[A]):
    method: str
    pattern: str
    handler: Callable[[A, Request], Response]
    summary: str
    operation_id: str
    path: tuple[PathParam[Any], ...] = ()
    query: tuple[Query[Any] | OptionalQuery[Any], ...] = ()
    ok: tuple[Success, ...] = ()
    problems: tuple[Problem, ...] = ()  # what the handler can answer besides its successes
    public: bool = False  # no token, Host or cross-site checks: the probes and the documentation
    body: Body[Any] | None = None  # None: a request with a body is refused (400)
    etag: bool = False  # its 200 carries an ETag, and If-None-Match gets a 304 (conditional.py)
    tag: str | None = None  # the resource it belongs to (/openapi.json's tags): api/__init__.py
    role: Role | None = None  # the role a token needs (authz.py); None: read for GET, else write
    owned: bool = False  # acts on an operation ({id}): without admin, only on one's own

    @cached_property
    def needs(self) -> Role:
        """The role a caller needs for this route: declared, or from its method."""
        return self.role if self.role is not None else default_role(self.method)
    upgrade: bool = False  # a WebSocket (RFC 6455): the handshake is checked before the handler

    @cached_property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.pattern.strip("/").split("/"))

    @cached_property
    def query_names(self) -> tuple[str, ...]:
        return tuple(param.name for param in self.query)


Candidates = list[tuple["Route[A]", dict[str, str]]]


class RouteTable(Generic[A]):
    """The routes, indexed: literal patterns by their exact segments (one dict lookup for
    /health, /vms, ...), and patterns with parameters grouped by segment count."""

    def __init__(self, routes: tuple[Route[A], ...]) -> None:
        self.routes = routes
        self._literal: dict[tuple[str, ...], list[Route[A]]] = {}
        self._patterned: dict[int, list[Route[A]]] = {}
        for route in routes:
            if any(part.startswith("{") for part in route.segments):
                self._patterned.setdefault(len(route.segments), []).append(route)
            else:
                self._literal.setdefault(route.segments, []).append(route)
        # the patterns a path may fit, by its length and first segment (in table order)
        self._headed: dict[tuple[int, str], list[Route[A]]] = {
            (count, head): [r for r in patterns
                            if r.segments[0] == head or r.segments[0].startswith("{")]
            for count, patterns in self._patterned.items()
            for head in {r.segments[0] for r in patterns}}
        self._resolved: dict[tuple[str, str], tuple[Route[A], Mapping[str, object]]] = {}

    def resolved(self, method: str, target: str
                 ) -> tuple[Route[A], Mapping[str, object], str, str] | None:
        """The route and typed path values of a request whose method and path were resolved
        before (``remember``), with its path and query; None: resolve it the long way."""
        path, _, query = target.partition("?")
        known = self._resolved.get((method, path))
        if known is None or "#" in query:  # a fragment is refused the long way
            return None
        return known[0], known[1], path, query

    def remember(self, method: str, path: str, route: Route[A],
                 values: Mapping[str, object]) -> None:
        """Keep what a method and path resolved to: matching is pure, and so is reading path
        values (``path_values``). Bounded like ``_READ``: short paths, emptied when full."""
        if len(path) > _READ_LENGTH:
            return
        if len(self._resolved) >= _READ_LIMIT:
            self._resolved.clear()
        self._resolved[(method, path)] = (route, values)

    def match(self, segments: list[str]) -> Candidates[A]:
        """All routes whose pattern fits the raw segments, with their raw parameters. A path
        that a literal pattern names is that resource alone: ``/images/prune`` is not also an
        ``/images/{ref}``."""
        found: Candidates[A] = [(route, {}) for route in self._literal.get(tuple(segments), ())]
        if found:
            return found
        count = len(segments)
        patterns = self._headed.get((count, segments[0]))
        if patterns is None:  # no pattern begins with this literal: those that begin with {…}
            patterns = [r for r in self._patterned.get(count, ())
                        if r.segments[0].startswith("{")]
        for route in patterns:
            params: dict[str, str] = {}
            for want, got in zip(route.segments, segments):
                if want.startswith("{"):
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                found.append((route, params))
        return found


def split_target(target: str) -> tuple[list[str], str]:
    """Split an origin-form request target into raw path segments and the query string."""
    if not target.startswith("/") or "#" in target:
        raise ApiError(BAD_TARGET, "the request target must be an absolute path")
    path, _, query = target.partition("?")
    return path[1:].split("/"), query


def allowed_methods(candidates: Candidates[A]) -> str:
    methods = {route.method for route, _ in candidates}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods | {"OPTIONS"}))


def choose(method: str, candidates: Candidates[A]) -> tuple[Route[A], dict[str, str]]:
    """The route of this method among those that fit the path; 405 with Allow when none is.

    Any method gets here, TRACE, CONNECT or one nobody registered: a path that exists
    answers 405 naming what it takes (RFC 9110, section 15.5.6).
    """
    lookup = "GET" if method == "HEAD" else method
    for route, params in candidates:
        if route.method == lookup:
            return route, params
    raise ApiError(METHOD_NOT_ALLOWED, f"{method[:32]} is not allowed here",
                   (("Allow", allowed_methods(candidates)),))


_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def parse_query(query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """Strict query parsing: unknown keys, repeats and bad encodings are all errors."""
    if not query:
        return {}
    if "%" in query and _BAD_PERCENT.search(query):
        raise ApiError(BAD_QUERY, "the query holds an invalid percent-encoding")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True,
                          errors="strict", max_num_fields=16)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(BAD_QUERY, "the query string cannot be parsed") from None
    result: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ApiError(UNKNOWN_PARAMETER,
                           f"unknown query parameter {key!r} (known: {known})")
        if key in result:
            raise ApiError(REPEATED_PARAMETER, f"query parameter {key!r} is given twice")
        result[key] = value
    return result


def decode_segment(raw: str) -> str:
    """Percent-decode one path segment strictly: malformed escapes and non-UTF-8 are errors
    (ValueError).

    ``urllib.parse.unquote`` silently keeps ``%zz`` and replaces bad UTF-8; a strict
    decoder means two different byte strings can never decode to the same name.
    """
    if _BAD_PERCENT.search(raw):
        raise ValueError("the path holds an invalid percent-encoding")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the path does not decode as UTF-8") from None


def _parsed(key: str, kind: ParamType[T], text: str) -> T:
    try:
        return kind.from_text(key, text)
    except ValueError as exc:
        raise ApiError(kind.problem, str(exc)) from None


# Path values already read, by their type and raw text: ``from_text`` is pure, so a VM's name
# read by every poll of its detail is decoded and checked once. Bounded: only short values of
# types that check them (a name, an id), at most _READ_LIMIT, emptied when full.
_READ: dict[tuple[int, str], object] = {}  # by the id of the type (alive with its routes)
_READ_LIMIT = 4096
_READ_LENGTH = 256  # longer raw text is read every time: the kept texts stay within 1 MiB


def path_values(route: Route[A], raw_params: Mapping[str, str]) -> dict[str, object]:
    """The typed path parameters: each decoded and validated by its type, exactly once."""
    values: dict[str, object] = {}
    for param in route.path:
        raw = raw_params[param.name]
        key = (id(param.type), raw)
        known = _READ.get(key, _READ)
        if known is not _READ:
            values[param.name] = known
            continue
        try:
            text = decode_segment(raw) if param.type.decoded else raw
        except ValueError as exc:
            raise ApiError(param.type.problem, str(exc)) from None
        value = values[param.name] = _parsed(param.name, param.type, text)
        if not param.type.refuses or len(raw) > _READ_LENGTH:
            continue
        if len(_READ) >= _READ_LIMIT:
            _READ.clear()
        _READ[key] = value
    return values


def query_values(route: Route[A], query: Mapping[str, str]) -> dict[str, object]:
    """The typed query values (defaults for those not given)."""
    values: dict[str, object] = {}
    for param in route.query:
        text = query.get(param.name)
        if text is not None:
            values[param.name] = _parsed(param.name, param.type, text)
        elif isinstance(param, Query):
            values[param.name] = param.default
        elif param.required:
            raise ApiError(param.type.problem, f"query parameter {param.name!r} is required")
    return values
