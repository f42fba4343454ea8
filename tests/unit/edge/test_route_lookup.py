"""What makes a route's lookup cheap changes no answer: patterns indexed by their first
segment keep the table's order and those that begin with a parameter, and a path value read
once is the value read again, while a refused one is refused every time."""

from __future__ import annotations

import pytest

from vm_operator.api import ROUTES
from vm_operator.api.params import NAME
from vm_operator.edge.errors import ApiError
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request, Route, RouteTable, path_values
from vm_operator.tart.names import VmName


def handler(app: object, req: Request) -> Response:
    return Response(204)


def route(pattern: str) -> Route[object]:
    return Route("GET", pattern, handler, pattern, pattern.replace("/", "_"))


def test_every_pattern_a_path_fits_is_found_in_table_order() -> None:
    table = RouteTable((route("/{any}/x"), route("/vms/{name}"), route("/images/{ref}"),
                        route("/{any}/{more}")))
    assert [r.pattern for r, _ in table.match(["vms", "a"])] == ["/vms/{name}", "/{any}/{more}"]
    assert [r.pattern for r, _ in table.match(["vms", "x"])] == [
        "/{any}/x", "/vms/{name}", "/{any}/{more}"]
    assert [r.pattern for r, _ in table.match(["other", "x"])] == ["/{any}/x", "/{any}/{more}"]
    assert table.match(["vms"]) == []


@pytest.mark.parametrize("segments", [
    ["vms", "a"], ["vms", "a", "start"], ["operations", "x"], ["images", "prune"],
    ["vms", "a", "logs"], ["nope", "a"], ["images", "ghcr.io%2Fa"],
])
def test_the_api_table_finds_what_a_scan_of_every_route_finds(segments: list[str]) -> None:
    table = RouteTable(ROUTES)
    literal = [r for r in ROUTES if tuple(segments) == r.segments]
    scanned = literal or [r for r in ROUTES if len(r.segments) == len(segments) and all(
        want.startswith("{") or want == got for want, got in zip(r.segments, segments))]
    assert [r for r, _ in table.match(segments)] == scanned


def test_a_path_value_read_again_is_the_value_read_first() -> None:
    by_name = Route("GET", "/vms/{name}", handler, "", "", path=(NAME,))
    first = path_values(by_name, {"name": "runner-1"})["name"]
    again = path_values(by_name, {"name": "runner-1"})["name"]
    assert isinstance(first, VmName) and again is first


def test_a_refused_path_value_is_refused_every_time() -> None:
    by_name = Route("GET", "/vms/{name}", handler, "", "", path=(NAME,))
    for _ in range(2):
        with pytest.raises(ApiError) as refused:
            path_values(by_name, {"name": "-rf"})
        assert refused.value.problem.status == 400


def test_only_short_checked_path_values_are_kept() -> None:
    from vm_operator.api.params import SLUG
    from vm_operator.edge import routing

    by_slug = Route("GET", "/problems/{slug}", handler, "", "", path=(SLUG,))
    long_name = Route("GET", "/vms/{name}", handler, "", "", path=(NAME,))
    routing._READ.clear()
    path_values(by_slug, {"slug": "x" * 50})  # never refused: nothing to spare
    assert path_values(long_name, {"name": "%61" * 100})["name"] == "a" * 100  # 300 raw
    path_values(long_name, {"name": "kept"})
    assert [raw for _, raw in routing._READ] == ["kept"]
