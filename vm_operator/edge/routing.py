"""Routes and how a request target finds one: matching, path and query decoding (pure).

A ``Route`` declares a method, a path pattern (``/vms/{name}/start``) and its handler; the
route table is handed to ``dispatch`` (the API layer declares it), so nothing here knows
any route in particular.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, unquote_to_bytes

from vm_operator.edge.errors import ApiError
from vm_operator.edge.responses import Response
from vm_operator.edge.security import Headers
from vm_operator.tart.names import InvalidName, validate_name

A = TypeVar("A")  # what handlers are given: the API's application object


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: Mapping[str, str]
    query: Mapping[str, str]
    headers: Headers


@dataclass(frozen=True)
class Route(Generic[A]):
    method: str
    pattern: str
    handler: Callable[[A, Request], Response]
    query: tuple[str, ...] = ()
    public: bool = False  # no token, Host or cross-site checks: the probes and the documentation
    takes_body: bool = False  # a route that takes none refuses a request with a body (400)

    @cached_property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.pattern.strip("/").split("/"))


Candidates = list[tuple[Route[A], dict[str, str]]]


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

    def match(self, segments: list[str]) -> Candidates[A]:
        """All routes whose pattern fits the raw segments, with their raw parameters."""
        found: Candidates[A] = [(route, {}) for route in self._literal.get(tuple(segments), ())]
        for route in self._patterned.get(len(segments), ()):
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
        raise ApiError("bad-target", "the request target must be an absolute path")
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
    raise ApiError("method-not-allowed", f"{method[:32]} is not allowed here",
        (("Allow", allowed_methods(candidates)),),
    )


def parse_query(query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """Strict query parsing: unknown keys, repeats and bad encodings are all errors."""
    if not query:
        return {}
    if "%" in query and re.search(r"%(?![0-9A-Fa-f]{2})", query):
        raise ApiError("bad-query", "the query holds an invalid percent-encoding")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True,
                          errors="strict", max_num_fields=16)
    except (ValueError, UnicodeDecodeError):
        raise ApiError("bad-query", "the query string cannot be parsed") from None
    result: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise ApiError("unknown-parameter", f"unknown query parameter {key!r} (known: {known})")
        if key in result:
            raise ApiError("repeated-parameter", f"query parameter {key!r} is given twice")
        result[key] = value
    return result


_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def decode_segment(raw: str) -> str:
    """Percent-decode one path segment strictly: malformed escapes and non-UTF-8 are errors.

    ``urllib.parse.unquote`` silently keeps ``%zz`` and replaces bad UTF-8; a strict
    decoder means two different byte strings can never decode to the same name.
    """
    if _BAD_PERCENT.search(raw):
        raise InvalidName("the path holds an invalid percent-encoding")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidName("the path does not decode as UTF-8") from None


def decode_params(raw_params: dict[str, str]) -> dict[str, str]:
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
            raise ApiError("invalid-name", str(exc)) from None
    return params
