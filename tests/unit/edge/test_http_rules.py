"""The pure pieces of the HTTP contract, table-driven:
dispatch's CORS headers and metrics labels, 405 for any method, where a refused body's
parameters go, the Origin of a raw head, JSON's final newline."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from vm_operator.api import ROUTES as ROUTE_TABLE
from vm_operator.api.app import App
from vm_operator.edge import dispatch as edge
from vm_operator.edge.dispatch import Site, body_refusal, dispatch
from vm_operator.edge.errors import ApiError
from vm_operator.edge.http1 import Headers, origin_of, read_headers, serialize
from vm_operator.edge.metrics import Metrics
from vm_operator.edge.responses import json_response
from vm_operator.edge.routing import RouteTable
from vm_operator.edge.security import Access

ORIGIN = "https://dash.example"
TOKEN = "full-access-token-0123456789abcdef"
TABLE = RouteTable(ROUTE_TABLE)


def app(access: Access) -> Site[App]:
    """A site for requests that are answered before any VM is touched (refusals, documentation)."""
    return Site(TABLE, access, App(service=None, metrics=Metrics()))  # type: ignore[arg-type]


def resolve(method: str, target: str) -> Any:
    return edge.resolve(TABLE, method, target)


def route_label(target: str) -> str:
    return edge.route_label(TABLE, target)


def route(method: str, pattern: str) -> Any:
    return next(r for r in ROUTE_TABLE if (r.method, r.pattern) == (method, pattern))


# --- dispatch ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("access", "method", "target", "headers", "body", "status", "label"),
    [
        (Access(token=TOKEN, cors_origins=(ORIGIN,)), "GET", "/vms", {}, b"", 401, "/vms"),
        (Access(token=TOKEN, cors_origins=(ORIGIN,)), "POST", "/vms/a/start",
         {"Authorization": "Bearer nope-nope-nope-nope"}, b"", 401, "/vms/{name}/start"),
        (Access(cors_origins=(ORIGIN,)), "GET", "/vms", {"Host": "evil.example"}, b"", 403, "/vms"),
        (Access(cors_origins=(ORIGIN,)), "POST", "/vms/a/stop",
         {"Content-Type": "text/plain"}, b"x", 415, "/vms/{name}/stop"),
        (Access(cors_origins=(ORIGIN,)), "POST", "/vms/a/start", {}, b'{"suspendable":true}', 400,
         "/vms/{name}/start"),
        (Access(cors_origins=(ORIGIN,)), "GET", "/vms?state=bogus", {}, b"", 400, "/vms"),
        (Access(cors_origins=(ORIGIN,)), "GET", "/vms/-rf/logs", {}, b"", 400, "/vms/{name}/logs"),
        (Access(cors_origins=(ORIGIN,)), "TRACE", "/vms", {}, b"", 405, "/vms"),
        (Access(cors_origins=(ORIGIN,)), "GET", "/nope", {}, b"", 404, "unmatched"),
        (Access(cors_origins=(ORIGIN,)), "OPTIONS", "/vms/a/stop", {}, b"", 204, "/vms/{name}/stop"),
        (Access(token=TOKEN, cors_origins=(ORIGIN,)), "GET", "/problems/no-route", {}, b"", 200,
         "/problems/{slug}"),
        (Access(token=TOKEN, cors_origins=(ORIGIN,)), "GET", "/problems", {}, b"", 200, "/problems"),
        (Access(token=TOKEN, cors_origins=(ORIGIN,)), "GET", "/problems/nope", {}, b"", 404,
         "/problems/{slug}"),
    ],
)
def test_dispatch_answers_with_cors_headers_and_the_route_label(
    access: Access, method: str, target: str, headers: dict[str, str], body: bytes, status: int,
    label: str,
) -> None:
    response, got_label = dispatch(app(access), method, target, {**headers, "Origin": ORIGIN}, body)
    assert (response.status, got_label) == (status, label)
    sent = dict(response.headers)
    assert sent["Access-Control-Allow-Origin"] == ORIGIN and sent["Vary"] == "Origin"
    # Another origin: no CORS headers (and, for a write without tokens, a cross-site 403).
    response, _ = dispatch(app(access), method, target, {**headers, "Origin": "https://x.example"},
                           body)
    assert "Access-Control-Allow-Origin" not in dict(response.headers)


@pytest.mark.parametrize(
    ("target", "label"),
    [("/vms", "/vms"), ("/vms?x=1", "/vms"), ("/vms/%00", "/vms/{name}"),
     ("/vms/a/start", "/vms/{name}/start"), ("/problems/zz", "/problems/{slug}"),
     ("/nope", "unmatched"), ("*", "unmatched"), ("http://a/vms", "unmatched"), ("", "unmatched")],
)
def test_route_label_is_a_pattern_or_unmatched(target: str, label: str) -> None:
    assert route_label(target) == label


# --- any method ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [
        ("TRACE", "/vms", "GET, HEAD, OPTIONS, POST"),
        ("FOO", "/vms/a/start", "OPTIONS, POST"),
        ("CONNECT", "/vms/a", "DELETE, GET, HEAD, OPTIONS, PATCH"),
        ("DELETE", "/images/prune", "OPTIONS, POST"),  # a literal path is not also /images/{ref}
        ("GET", "/images/ghcr.io%2Fa%2Fb", "DELETE, OPTIONS"),
        ("PATCH", "/problems/no-route", "GET, HEAD, OPTIONS"),
        ("PUT", "/metrics", "GET, HEAD, OPTIONS"),
    ],
)
def test_any_method_a_path_does_not_take_is_405_with_allow(method: str, target: str,
                                                            allow: str) -> None:
    with pytest.raises(ApiError) as caught:
        resolve(method, target)
    assert caught.value.status == 405 and dict(caught.value.headers)["Allow"] == allow


# --- bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "pattern", "body", "detail"),
    [
        ("POST", "/vms/{name}/start", b'{"suspendable": true}',
         "this route takes no body; pass suspendable as a query parameter: ?suspendable=true"),
        ("POST", "/vms/{name}/start", b'{"suspendable": false, "colour": "red"}',
         "this route takes no body; pass suspendable as a query parameter: ?suspendable=false"),
        ("POST", "/vms/{name}/stop", b'{"timeout": 5}',
         "this route takes no body; pass timeout as a query parameter: ?timeout=5"),
        ("GET", "/vms", b'{"state": "running", "source": "oci"}',
         ("this route takes no body; pass state and source as query parameters: "
          "?state=running&source=oci")),
        ("GET", "/vms", b'{"state": "a b&c"}',
         "this route takes no body; pass state as a query parameter: ?state=a%20b%26c"),
        ("POST", "/vms/{name}/start", b"suspendable=true",
         ("this route takes no body; its parameters go in the query string: suspendable, wait, "
         "timeout")),
        ("POST", "/vms/{name}/start", b"\xff\xfe",
         ("this route takes no body; its parameters go in the query string: suspendable, wait, "
         "timeout")),
        ("POST", "/vms/{name}/suspend", b"{}",
         "this route takes no body and no parameters: send the request without a body"),
    ],
)
def test_a_refused_body_says_where_its_parameters_go(method: str, pattern: str, body: bytes,
                                                     detail: str) -> None:
    assert body_refusal(route(method, pattern), body) == detail


def test_only_writes_take_a_body() -> None:
    takes = {(r.method, r.pattern) for r in ROUTE_TABLE if r.body is not None}
    assert ("POST", "/vms") in takes
    assert all(method in ("POST", "PATCH", "PUT") for method, _ in takes)


# --- the server shell's pure helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "origin"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\nOrigin: https://dash.example\r\n\r\n", "https://dash.example"),
        (b"GET / HTTP/1.1\r\norigin:https://x.example\r\n", "https://x.example"),
        (b"GET / HTTP/1.1\r\nX-Origin: https://x.example\r\n\r\n", None),
        (b"GET /?Origin: https://x.example HTTP/1.1\r\n\r\n", None),
        (b"", None),
    ],
)
def test_origin_of_a_raw_head(head: bytes, origin: str | None) -> None:
    assert origin_of(head) == origin


def test_a_refused_head_keeps_what_came_before_the_fault() -> None:
    headers = Headers()
    head = b"Origin: https://dash.example\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150))
    assert read_headers(io.BytesIO(head), headers) == (431, "more than 100 header lines")
    assert headers.get("origin") == "https://dash.example"


# --- a final newline -------------------------------------------------------------------


@pytest.mark.parametrize("data", [{}, [], {"a": "é"}, [1, 2], "text", None])
def test_json_ends_with_a_newline(data: Any) -> None:
    response = json_response(200, data)
    assert response.body.endswith(b"\n") and json.loads(response.body) == data
    wire = serialize(response, close=False)
    assert wire.endswith(response.body) and f"Content-Length: {len(response.body)}\r\n".encode() in wire
