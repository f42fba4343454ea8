"""The route table and request resolution, without a socket, and routing's pure pieces at their
edges (edge/routing.py): the request target split, the 405's Allow, the strict query and path
decoding, word for word."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vm_operator.api import ROUTES
from vm_operator.edge.dispatch import resolve as resolve_in
from vm_operator.edge.errors import ApiError
from vm_operator.edge.params import Int, ParamType
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import (
    OptionalQuery,
    PathParam,
    Query,
    Request,
    Route,
    RouteTable,
    choose,
    decode_segment,
    parse_query,
    path_values,
    query_values,
    split_target,
)

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


@pytest.mark.parametrize(("target", "segments", "query"), [
    ("/", [""], ""),
    ("/vms", ["vms"], ""),
    ("/vms/a?x=1", ["vms", "a"], "x=1"),
    ("/vms/a?x=1?y", ["vms", "a"], "x=1?y"),
    ("/vms//a/", ["vms", "", "a", ""], ""),
])
def test_a_target_splits_into_segments_and_query(target: str, segments: list[str],
                                                 query: str) -> None:
    assert split_target(target) == (segments, query)


@pytest.mark.parametrize("target", ["vms", "*", "http://h/vms", "/vms#frag", ""])
def test_a_target_that_is_no_absolute_path_is_refused(target: str) -> None:
    with pytest.raises(ApiError) as caught:
        split_target(target)
    assert (caught.value.slug, caught.value.detail) == (
        "bad-target", "the request target must be an absolute path")


def handler(app: None, req: Request) -> Response:
    raise AssertionError("not called")


COUNT = Query("count", Int(1, 9), 3, "How many")
LIMIT = OptionalQuery("limit", Int(1, 9), "At most")
SLOT = PathParam("slot", Int(1, 9), "A slot")
ROUTE = Route("GET", "/slots/{slot}", handler, "A slot", "getSlot", path=(SLOT,),
              query=(COUNT, LIMIT))


def request(query: dict[str, str]) -> Request:
    return Request("GET", "/slots/2", {"slot": 2}, query, {})


@pytest.mark.parametrize(("query", "count", "limit"), [
    ({}, 3, None), ({"count": "7"}, 7, None), ({"limit": "1", "count": "9"}, 9, 1),
])
def test_query_values_are_typed_with_their_defaults(query: dict[str, str], count: int,
                                                    limit: int | None) -> None:
    req = replace(request(query), values=query_values(ROUTE, query))
    assert (req.get(COUNT), req.optional(LIMIT), req.get(SLOT)) == (count, limit, 2)
    assert req.values == ({"count": count} if limit is None else {"count": count, "limit": limit})


@pytest.mark.parametrize(("query", "detail"), [
    ({"count": "0"}, "count must be a whole number from 1 to 9"),
    ({"limit": "x"}, "limit must be a whole number from 1 to 9"),
])
def test_a_refused_query_value_names_its_parameter(query: dict[str, str], detail: str) -> None:
    with pytest.raises(ApiError) as caught:
        query_values(ROUTE, query)
    assert (caught.value.slug, caught.value.detail) == ("invalid-parameter", detail)


@pytest.mark.parametrize(("raw", "detail"), [
    ("0", "slot must be a whole number from 1 to 9"),
    ("%zz", "the path holds an invalid percent-encoding"),
    ("%FF", "the path does not decode as UTF-8"),
])
def test_a_refused_path_value_says_why(raw: str, detail: str) -> None:
    with pytest.raises(ApiError) as caught:
        path_values(ROUTE, {"slot": raw})
    assert (caught.value.slug, caught.value.detail) == ("invalid-parameter", detail)
    assert path_values(ROUTE, {"slot": "%37"}) == {"slot": 7}


@pytest.mark.parametrize(("raw", "text"), [("a%2Fb", "a/b"), ("%C3%A9", "é"), ("plain", "plain")])
def test_a_segment_decodes_strictly(raw: str, text: str) -> None:
    assert decode_segment(raw) == text


def test_a_table_keeps_its_routes() -> None:
    table = RouteTable((ROUTE,))
    assert table.routes == (ROUTE,)
    assert table.match(["slots", "4"]) == [(ROUTE, {"slot": "4"})]
    assert table.match(["slots"]) == []


NAMES = tuple(f"k{i}" for i in range(20))


@pytest.mark.parametrize(("query", "parsed"), [
    ("k1=%41", {"k1": "A"}),
    ("k1=a+b&k2=%2B", {"k1": "a b", "k2": "+"}),
    ("&".join(f"k{i}={i}" for i in range(16)), {f"k{i}": str(i) for i in range(16)}),
])
def test_a_good_query_is_decoded(query: str, parsed: dict[str, str]) -> None:
    assert parse_query(query, NAMES) == parsed


@pytest.mark.parametrize(("query", "detail"), [
    ("k1=%4", "the query holds an invalid percent-encoding"),
    ("k1=%zz", "the query holds an invalid percent-encoding"),
    ("&".join(f"k{i}={i}" for i in range(17)), "the query string cannot be parsed"),  # > 16
    ("k1=%FF", "the query string cannot be parsed"),
    ("k1", "the query string cannot be parsed"),
    ("x=1", ("unknown query parameter 'x' (known: k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, "
            "k11, k12, k13, k14, k15, k16, k17, k18, k19)")),
    ("k1=1&k1=2", "query parameter 'k1' is given twice"),
])
def test_a_bad_query_says_why(query: str, detail: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_query(query, NAMES)
    assert caught.value.detail == detail


def test_a_route_without_query_parameters_knows_none() -> None:
    with pytest.raises(ApiError) as caught:
        parse_query("a=1", ())
    assert caught.value.detail == "unknown query parameter 'a' (known: none)"


class Raw(ParamType[str]):
    """A path value its type reads undecoded (as an operation id is)."""

    decoded = False

    def from_text(self, key: str, text: str) -> str:
        return text


def test_a_type_that_reads_raw_text_gets_it_undecoded() -> None:
    raw = Route("GET", "/ops/{id}", handler, "An op", "getOp",
                path=(PathParam("id", Raw(), "Its id"),))
    assert path_values(raw, {"id": "a%41"}) == {"id": "a%41"}
    assert path_values(ROUTE, {"slot": "%33"}) == {"slot": 3}


POST_SLOT = Route("POST", "/slots/{slot}", handler, "Take a slot", "takeSlot", path=(SLOT,))


@pytest.mark.parametrize(("method", "detail"), [
    ("PATCH", "PATCH is not allowed here"),
    ("X" * 40, "X" * 32 + " is not allowed here"),  # a method is echoed 32 characters long
])
def test_a_method_no_route_takes_is_answered_405_with_allow(method: str, detail: str) -> None:
    candidates = [(ROUTE, {"slot": "1"}), (POST_SLOT, {"slot": "1"})]
    with pytest.raises(ApiError) as caught:
        choose(method, candidates)
    assert (caught.value.status, caught.value.detail, caught.value.headers) == (
        405, detail, (("Allow", "GET, HEAD, OPTIONS, POST"),))
    assert choose("HEAD", candidates) == (ROUTE, {"slot": "1"})
    assert choose("POST", candidates) == (POST_SLOT, {"slot": "1"})
