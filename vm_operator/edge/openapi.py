"""/openapi.json (OpenAPI 3.1), generated from the route declarations (pure).

Each operation comes from one ``Route``: its operationId and summary, its parameters with
the schemas of their types, its successes, and a response for every status its problems
can have. A route's problems are those it declares (its handler's) and those of the
mechanism that serves it: a parameter its type can refuse (400), the token and browser
checks of a route that is not public (401, 403, the 429 of too many invalid tokens), the
media type of a write (415).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vm_operator.edge.body import Body
from vm_operator.edge.guard import guard_problems
from vm_operator.edge.params import Schema
from vm_operator.edge.problems import ProblemType, problem_of
from vm_operator.edge.problems.client_errors import (
    BAD_QUERY,
    BODY_TOO_LARGE,
    CROSS_SITE,
    FORBIDDEN,
    HOST_NOT_ALLOWED,
    INVALID_BODY,
    LENGTH_REQUIRED,
    REPEATED_PARAMETER,
    UNAUTHORIZED,
    UNEXPECTED_BODY,
    UNKNOWN_PARAMETER,
    UNSUPPORTED_MEDIA_TYPE,
)
from vm_operator.edge.responses import PROBLEM_JSON
from vm_operator.edge.routing import OptionalQuery, PathParam, Query, Route, Success
from vm_operator.edge.security import READ_METHODS

PROBLEM_SCHEMA: Schema = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string", "format": "uri-reference",
                            "description": "/problems/{slug}, relative to the request URI: "
                            "GET it for the problem type's documentation"},
                   "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"}},
}
GUARDED = (UNAUTHORIZED, FORBIDDEN, HOST_NOT_ALLOWED, CROSS_SITE)
QUERY_PROBLEMS = (BAD_QUERY, UNKNOWN_PARAMETER, REPEATED_PARAMETER)
BODY_PROBLEMS = (INVALID_BODY, BODY_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, LENGTH_REQUIRED)


@dataclass(frozen=True)
class Info:
    title: str
    version: str
    description: str


@dataclass(frozen=True)
class Tag:
    """A group of operations (a resource): generated clients make one module of each."""

    name: str
    description: str


def openapi_document(routes: Sequence[Route[Any]], schemas: Mapping[str, Schema],
                     info: Info, tags: Sequence[Tag] = ()) -> dict[str, object]:
    """The document. Each body's schema is a component (named after its dataclass) that its
    media types refer to, so a generator makes one model of it; a route's ``tag`` is its
    operation's tag, and ``tags`` describes them."""
    paths: dict[str, dict[str, object]] = {}
    components: dict[str, Schema] = {"Problem": PROBLEM_SCHEMA, **schemas}
    for route in routes:
        paths.setdefault(route.pattern, {})[route.method.lower()] = _operation(route)
        if route.body is not None:
            name, schema = body_component(route.body)
            if components.setdefault(name, schema) != schema:
                raise ValueError(f"{route.method} {route.pattern}: another schema is named {name}")
    known = {tag.name for tag in tags}
    unknown = {route.tag for route in routes if route.tag is not None} - known
    if unknown:
        raise ValueError(f"routes are tagged {sorted(unknown)}, which tags does not describe")
    document: dict[str, object] = {
        "openapi": "3.1.0",
        "info": {"title": info.title, "version": info.version, "description": info.description},
    }
    if tags:
        document["tags"] = [{"name": tag.name, "description": tag.description} for tag in tags]
    document.update({
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": paths,
    })
    return document


def body_component(body: Body[Any]) -> tuple[str, Schema]:
    """The component a body's media types refer to: its dataclass's name and its schema."""
    return body.spec.__name__, body.schema()


def _operation(route: Route[Any]) -> dict[str, object]:
    operation: dict[str, object] = {"operationId": route.operation_id, "summary": route.summary}
    if route.tag is not None:
        operation["tags"] = [route.tag]
    if route.public:
        operation["security"] = [{}]
    else:
        operation["x-role"] = route.needs.value  # the role a named token needs (README)
    parameters = [_path_parameter(p) for p in route.path] + [_query_parameter(q)
                                                                for q in route.query]
    if route.upgrade:
        parameters += _HANDSHAKE
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        name, _ = body_component(route.body)
        operation["requestBody"] = {
            "required": True, "description": route.body.doc,
            "content": {media: {"schema": {"$ref": f"#/components/schemas/{name}"}}
                        for media in route.body.media_types},
        }
    operation["responses"] = _responses(route)
    return operation


def _path_parameter(param: PathParam[Any]) -> dict[str, object]:
    return {"name": param.name, "in": "path", "required": True, "description": param.doc,
            "schema": dict(param.type.schema())}


def _query_parameter(param: Query[Any] | OptionalQuery[Any]) -> dict[str, object]:
    schema = dict(param.type.schema())
    if isinstance(param, Query):
        schema["default"] = param.default
    required = isinstance(param, OptionalQuery) and param.required
    if param.type.media_type is not None:  # e.g. JSON text: its schema is the decoded value's
        return {"name": param.name, "in": "query", "required": required,
                "content": {param.type.media_type: {"schema": schema}},
                "description": param.doc}
    return {"name": param.name, "in": "query", "required": required, "schema": schema,
            "description": param.doc}


# An upgrade route's opening handshake (RFC 6455, section 4.1), and its 101's answer.
_HANDSHAKE = [
    {"name": "Upgrade", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^websocket$"}},
    {"name": "Connection", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^Upgrade$"}},
    {"name": "Sec-WebSocket-Version", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^13$"}},
    {"name": "Sec-WebSocket-Key", "in": "header", "required": True,
     "description": "16 random bytes, base64-encoded",
     "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"}},
]
_ACCEPT_HEADERS = {
    "Upgrade": {"schema": {"type": "string", "pattern": "^websocket$"}},
    "Sec-WebSocket-Accept": {"description": "base64(SHA-1(key + the RFC's GUID))",
                             "schema": {"type": "string"}},
}


def route_problems(route: Route[Any]) -> list[ProblemType]:
    """Every problem a route can answer, each once: its mechanism's, then its handler's."""
    problems: list[ProblemType] = []
    refusable = [param.type.problem for param in (*route.path, *route.query)
                 if param.type.refuses]
    if refusable:
        problems += refusable
        problems += QUERY_PROBLEMS if route.query else ()
    if route.body is not None:
        problems += BODY_PROBLEMS
    elif refusable:
        problems.append(UNEXPECTED_BODY)
    if not route.public:
        problems += GUARDED
        problems += guard_problems(route)
    if route.method not in READ_METHODS:
        problems.append(UNSUPPORTED_MEDIA_TYPE)
    for declared in route.problems:
        found = declared if isinstance(declared, ProblemType) else problem_of(declared)
        if found is None:
            raise ValueError(f"{route.method} {route.pattern}: {declared!r} is not catalogued")
        problems.append(found)
    return list(dict.fromkeys(problems))


_ETAG_HEADER = {"ETag": {"description": "a hash of the body: send it back in If-None-Match",
                         "schema": {"type": "string"}}}


def _responses(route: Route[Any]) -> dict[str, object]:
    responses: dict[int, object] = {ok.status: _success(ok) for ok in route.ok}
    if route.upgrade and isinstance(responses.get(101), dict):
        responses[101] = {**responses[101], "headers": _ACCEPT_HEADERS}  # type: ignore[dict-item]
    if route.etag:  # edge/conditional.py: the 200 is tagged, and If-None-Match may get a 304
        ok = responses.get(200)
        if isinstance(ok, dict):
            ok["headers"] = {**ok.get("headers", {}), **_ETAG_HEADER}
        responses[304] = {"description": "Not modified: If-None-Match names the current ETag "
                          "(no body)", "headers": _ETAG_HEADER}
    by_status: dict[int, list[ProblemType]] = {}
    for problem in route_problems(route):
        by_status.setdefault(problem.status, []).append(problem)
    for status, problems in by_status.items():
        responses[status] = {
            "description": "; ".join(f"{p.title} ({p.slug})" for p in problems),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return {str(status): responses[status] for status in sorted(responses)}


def _success(ok: Success) -> dict[str, object]:
    answer: dict[str, object] = {"description": ok.description}
    if ok.schema is not None:
        answer["content"] = {ok.media_type: {"schema": ok.schema}}
    if ok.headers:
        answer["headers"] = dict(ok.headers)
    return answer
