"""The route table and request resolution, without a socket."""

import pytest

from vm_operator.api import ROUTES
from vm_operator.edge.dispatch import resolve as resolve_in
from vm_operator.edge.errors import ApiError
from vm_operator.edge.routing import RouteTable, parse_query

TABLE = RouteTable(ROUTES)


def resolve(method: str, target: str):  # type: ignore[no-untyped-def]
    return resolve_in(TABLE, method, target)


@pytest.mark.parametrize(
    ("method", "target", "pattern", "params", "query"),
    [
        ("GET", "/health", "/health", {}, {}),
        ("HEAD", "/health", "/health", {}, {}),
        ("GET", "/vms?state=running", "/vms", {}, {"state": "running"}),
        ("GET", "/vms/macos-ci", "/vms/{name}", {"name": "macos-ci"}, {}),
        ("GET", "/vms/ghcr.io%2Forg%2Fimg%3Atag", "/vms/{name}", {"name": "ghcr.io/org/img:tag"}, {}),
        ("POST", "/vms/a/start?suspendable=true", "/vms/{name}/start", {"name": "a"},
         {"suspendable": "true"}),
        ("POST", "/vms/a/stop?timeout=0", "/vms/{name}/stop", {"name": "a"}, {"timeout": "0"}),
        ("GET", "/vms/a/ip?wait=5", "/vms/{name}/ip", {"name": "a"}, {"wait": "5"}),
    ],
)
def test_resolve(method: str, target: str, pattern: str, params: dict, query: dict) -> None:
    route, request = resolve(method, target)
    assert route.pattern == pattern
    assert dict(request.params) == params
    assert dict(request.query) == query


@pytest.mark.parametrize(
    ("method", "target", "status", "slug"),
    [
        ("GET", "/nope", 404, "no-route"),
        ("GET", "/vms/a/b/c", 404, "no-route"),
        ("GET", "", 400, "bad-target"),
        ("GET", "http://evil/vms", 400, "bad-target"),
        ("GET", "/vms#frag", 400, "bad-target"),
        ("DELETE", "/vms", 405, "method-not-allowed"),
        ("GET", "/vms/a/start", 405, "method-not-allowed"),
        ("GET", "/vms/", 400, "invalid-name"),
        ("GET", "/vms/-rf", 400, "invalid-name"),
        ("GET", "/vms/%2e%2e", 400, "invalid-name"),
        ("GET", "/vms/a%00", 400, "invalid-name"),
        ("GET", "/vms/a%zz", 400, "invalid-name"),
        ("GET", "/vms?state=exploded&state=running", 400, "repeated-parameter"),
        ("GET", "/vms?colour=red", 400, "unknown-parameter"),
        ("GET", "/vms?state=%zz", 400, "bad-query"),
        ("GET", "/vms?state=%FF", 400, "bad-query"),
        ("GET", "/vms?&&", 400, "bad-query"),
    ],
)
def test_resolve_refusals(method: str, target: str, status: int, slug: str) -> None:
    with pytest.raises(ApiError) as caught:
        resolve(method, target)
    assert (caught.value.status, caught.value.slug) == (status, slug)


def test_405_names_the_allowed_methods() -> None:
    with pytest.raises(ApiError) as caught:
        resolve("PUT", "/vms/a/stop")
    assert dict(caught.value.headers)["Allow"] == "OPTIONS, POST"
    with pytest.raises(ApiError) as caught:
        resolve("PUT", "/operations")
    assert dict(caught.value.headers)["Allow"] == "GET, HEAD, OPTIONS"


def test_parse_query_blank_value_is_kept() -> None:
    assert parse_query("state=", ("state",)) == {"state": ""}


def test_route_table_has_unique_method_and_pattern() -> None:
    keys = [(route.method, route.pattern) for route in ROUTES]
    assert len(keys) == len(set(keys))
