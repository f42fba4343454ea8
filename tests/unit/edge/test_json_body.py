"""JSON request bodies (edge/body.py): through dispatch with a test-only route that takes one,
the size bound, application/json only, no key twice, no unknown field, every wrong field named
with a JSON pointer, a typed result, and the routes of the API still refusing any body; then,
with ``Body.parse`` and ``Body.schema`` called directly, what a refused body is told, word for
word, and the schema a body declares, exactly (the problem documents are the client's only
explanation, so each refusal's detail and pointers are pinned)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Annotated, Any

import pytest

from vm_operator.api import ROUTES
from vm_operator.api.params import VM_NAME
from vm_operator.edge.body import MAX_JSON_BODY, Body, Field, pointer
from vm_operator.edge.dispatch import Site, dispatch, route_body
from vm_operator.edge.errors import ApiError
from vm_operator.edge.openapi import Info, openapi_document
from vm_operator.edge.params import Boolean, Int
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route, RouteTable, Success
from vm_operator.edge.security import Access
from vm_operator.tart.names import VmName


@dataclass(frozen=True)
class Shape:
    cpu: Annotated[int, Field(Int(1, 64), "Virtual CPUs")]
    name: Annotated[VmName | None, Field(VM_NAME, "A VM to copy")] = None
    suspendable: Annotated[bool, Field(Boolean(), "Suspendable")] = False


SHAPE = Body(Shape)
seen: list[Shape] = []


def make_shape(app: None, req: Request) -> Response:
    shape = req.get(SHAPE)
    seen.append(shape)
    return json_response(200, dataclasses.asdict(shape))


TEST_ROUTE = Route("POST", "/shapes", make_shape, "Make a shape", "makeShape", body=SHAPE,
                   ok=(Success(200, "The shape", SHAPE.schema()),))
SITE = Site(RouteTable((TEST_ROUTE,)), Access(), None)
JSON = {"Content-Type": "application/json"}


def post(body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    response, label = dispatch(SITE, "POST", "/shapes", JSON if headers is None else headers,
                               body)
    assert label == "/shapes"
    return response.status, json.loads(response.body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"cpu": 4}', {"cpu": 4, "name": None, "suspendable": False}),
        (b'{"cpu": 64, "name": "ghcr.io/org/img:tag", "suspendable": true}',
         {"cpu": 64, "name": "ghcr.io/org/img:tag", "suspendable": True}),
        (b' {"suspendable": false, "cpu": 1} ', {"cpu": 1, "name": None, "suspendable": False}),
        # JSON Schema's integer is a number without a fraction: 4.0 is one (schemathesis sends it)
        (b'{"cpu": 4.0}', {"cpu": 4, "name": None, "suspendable": False}),
        (b'{"cpu": 0.32e2}', {"cpu": 32, "name": None, "suspendable": False}),
    ],
)
def test_a_good_body_reaches_the_handler_typed(body: bytes, expected: dict[str, Any]) -> None:
    seen.clear()
    assert post(body) == (200, expected)
    assert seen == [Shape(**expected)]
    assert seen[0].name is None or isinstance(seen[0].name, VmName)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (b'{"cpu": 0}', [("/cpu", "cpu must be a whole number from 1 to 64")]),
        (b'{"cpu": 65}', [("/cpu", "cpu must be a whole number from 1 to 64")]),
        (b'{"cpu": "4"}', [("/cpu", "cpu must be a whole number from 1 to 64")]),
        (b'{"cpu": true}', [("/cpu", "cpu must be a whole number from 1 to 64")]),
        (b'{"cpu": 4.5}', [("/cpu", "cpu must be a whole number from 1 to 64")]),
        (b'{"cpu": 64.0e1}', [("/cpu", "cpu must be a whole number from 1 to 64")]),
        (b'{"cpu": 1e300}', [("/cpu", "cpu must be a whole number from 1 to 64")]),
        (b"{}", [("/cpu", "cpu is required")]),
        (b'{"cpu": 2, "suspendable": "yes"}', [("/suspendable", "suspendable must be true or false")]),
        (b'{"cpu": 2, "name": "-rf"}', [("/name", "a VM name may not start with '-'")]),
        (b'{"cpu": 2, "name": 7}', [("/name", "name must be a VM name (a string)")]),
        (b'{"cpu": 2, "colour": "red"}',
         [("/colour", "unknown field 'colour' (known: cpu, name, suspendable)")]),
        (b'{"a/b~": 1, "cpu": 2}',
         [("/a~1b~0", "unknown field 'a/b~' (known: cpu, name, suspendable)")]),
        (b'{"cpu": 99, "name": "a b", "x": 1}',
         [("/x", "unknown field 'x' (known: cpu, name, suspendable)"),
          ("/cpu", "cpu must be a whole number from 1 to 64"),
          ("/name", ("the VM name holds a character outside printable ASCII (U+0020); names "
                     "use the characters U+0021 to U+007E: no spaces, controls or non-ASCII"))]),
    ],
)
def test_each_wrong_field_is_named_with_a_pointer(body: bytes,
                                                  errors: list[tuple[str, str]]) -> None:
    seen.clear()
    status, doc = post(body)
    assert (status, doc["type"]) == (400, "/problems/invalid-body")
    assert [(e["pointer"], e["detail"]) for e in doc["errors"]] == errors
    for where, _ in errors:
        assert where in doc["detail"]
    assert seen == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"cpu": 4, "cpu": 5}', "the key 'cpu' appears twice in an object"),
        (b'{"cpu": 4, "cpu": 4}', "the key 'cpu' appears twice in an object"),  # same value too
        (b'{"cpu": 4, "name": {"a": 1, "a": 2}}', "the key 'a' appears twice in an object"),
        (b"[4]", "the body must be a JSON object"),
        (b'"cpu"', "the body must be a JSON object"),
        (b"cpu=4", "the body is not JSON"),
        (b'{"cpu": NaN}', "the body is not JSON: NaN is not a JSON number"),
        (b'{"cpu": 4}{"cpu": 5}', "the body is not JSON"),
        (b'{"cpu": "\xff"}', "the body is not UTF-8"),
        (b"", "this route takes a JSON object as its body; none was sent"),
        (b"[" * 30000 + b"]" * 30000, "the body is nested too deeply"),
    ],
)
def test_a_body_that_is_not_one_json_object_is_refused(body: bytes, detail: str) -> None:
    seen.clear()
    status, doc = post(body)
    assert (status, doc["type"]) == (400, "/problems/invalid-body")
    assert doc["detail"].startswith(detail), doc
    assert "errors" not in doc and seen == []


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 415),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "application/jsonx"}, 415),
        ({"Content-Type": "application/json; charset=utf-8"}, 200),
        ({"Content-Type": "Application/JSON"}, 200),
    ],
)
def test_only_application_json(headers: dict[str, str], status: int) -> None:
    got, doc = post(b'{"cpu": 2}', headers)
    assert got == status, doc
    if status == 415:
        assert doc["type"] == "/problems/unsupported-media-type"


def test_the_size_bound() -> None:
    padding = b" " * (MAX_JSON_BODY - len(b'{"cpu": 2}'))
    assert post(b'{"cpu": 2}' + padding)[0] == 200  # exactly 64 KiB
    status, doc = post(b'{"cpu": 2}' + padding + b" ")
    assert (status, doc["type"]) == (413, "/problems/body-too-large")
    # the server reads no more than the route's bound (a larger body is refused unread)
    spec = route_body(SITE.routes, "POST", "/shapes")
    assert spec is not None and spec.limit == MAX_JSON_BODY == 65536


@pytest.mark.parametrize(("key", "expected"), [("cpu", "/cpu"), ("a/b", "/a~1b"),
                                               ("~x", "/~0x"), ("", "/")])
def test_pointer(key: str, expected: str) -> None:
    assert pointer(key) == expected


def test_the_server_reads_the_body_a_route_declares_and_none_else() -> None:
    table = RouteTable(ROUTES)
    for route in ROUTES:
        target = (route.pattern.replace("{name}", "vm").replace("{slug}", "no-route")
                  .replace("{id}", "op").replace("{ref}", "ghcr.io%2Fa%2Fb"))
        assert route_body(table, route.method, target) is route.body


def test_the_schema_of_a_body() -> None:
    schema = SHAPE.schema()
    assert schema["required"] == ["cpu"] and schema["additionalProperties"] is False
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert properties["cpu"] == {"type": "integer", "minimum": 1, "maximum": 64,
                                 "description": "Virtual CPUs"}
    assert properties["suspendable"]["default"] is False


def test_the_openapi_operation_of_a_body_route() -> None:
    doc = openapi_document((TEST_ROUTE,), {}, Info("t", "0", "d"))
    operation = doc["paths"]["/shapes"]["post"]  # type: ignore[index]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = ref.removeprefix("#/components/schemas/")
    assert doc["components"]["schemas"][name] == SHAPE.schema()  # type: ignore[index]
    responses = operation["responses"]
    assert {"400", "413", "415"} <= set(responses)
    assert "(invalid-body)" in responses["400"]["description"]


@dataclass(frozen=True)
class Small:
    """A body with one required field and one optional one, called directly."""

    cpu: Annotated[int, Field(Int(1, 64), "Virtual CPUs")]
    suspendable: Annotated[bool, Field(Boolean(), "Suspendable")] = False


@dataclass(frozen=True)
class Patch:
    """All optional: a body that must name some of them (``min_fields``)."""

    cpu: Annotated[int | None, Field(Int(1, 64), "Virtual CPUs")] = None
    memory: Annotated[int | None, Field(Int(1, 8), "Memory")] = None
    from_: Annotated[int | None, Field(Int(1, 8), "Source", key="from")] = None


JSON_TYPE = "application/json"
MERGE = "application/merge-patch+json"


def refusal(body: Body[object], data: bytes, content_type: str | None = JSON_TYPE) -> ApiError:
    with pytest.raises(ApiError) as caught:
        body.parse(data, content_type)
    return caught.value


@pytest.mark.parametrize(("body", "detail"), [
    (Body(Small), "this route takes a JSON body: send Content-Type: application/json"),
    (Body(Patch, media_types=(MERGE, JSON_TYPE)), ("this route takes a JSON body: send "
     "Content-Type: application/merge-patch+json or application/json")),
])
def test_a_body_of_another_media_type_is_told_which_to_send(body: Body[object],
                                                            detail: str) -> None:
    error = refusal(body, b'{"cpu": 2}', "text/plain")
    assert (error.status, error.slug, error.detail) == (415, "unsupported-media-type", detail)


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8",
    "application/json; charset=utf-8; profile=x", " Application/JSON ;x=1",
])
def test_parameters_of_the_media_type_are_ignored(content_type: str) -> None:
    assert Body(Small).parse(b'{"cpu": 2}', content_type) == Small(2)


@pytest.mark.parametrize("content_type", [None, "", "application/jsonx", "text/json"])
def test_a_missing_or_other_media_type_is_refused(content_type: str | None) -> None:
    assert refusal(Body(Small), b'{"cpu": 2}', content_type).status == 415


def test_a_body_over_the_limit_says_the_limit() -> None:
    error = refusal(Body(Small, limit=12), b'{"cpu": 2}   ')
    assert (error.status, error.detail) == (413, "the body is larger than 12 bytes")
    assert Body(Small, limit=12).parse(b'{"cpu": 2}  ', JSON_TYPE) == Small(2)


def test_the_wrong_fields_are_listed_in_the_detail_in_order() -> None:
    error = refusal(Body(Small), b'{"x": 1, "cpu": 0, "suspendable": 3}')
    assert error.detail == "the body has wrong fields: /x, /cpu, /suspendable"
    assert error.extra == {"errors": [
        {"pointer": "/x", "detail": "unknown field 'x' (known: cpu, suspendable)"},
        {"pointer": "/cpu", "detail": "cpu must be a whole number from 1 to 64"},
        {"pointer": "/suspendable", "detail": "suspendable must be true or false"}]}


@pytest.mark.parametrize(("min_fields", "data", "detail"), [
    (1, b"{}", "the body names no field: give at least one of cpu, memory, from"),
    (2, b'{"cpu": 2}', "give at least 2 of the fields cpu, memory, from"),
    (3, b'{"cpu": 2, "from": 1}', "give at least 3 of the fields cpu, memory, from"),
])
def test_a_body_naming_too_few_fields_says_how_many(min_fields: int, data: bytes,
                                                    detail: str) -> None:
    error = refusal(Body(Patch, min_fields=min_fields), data)
    assert (error.status, error.slug, error.detail) == (400, "invalid-body", detail)
    assert error.extra == {"errors": [{"pointer": "", "detail": detail}]}


@pytest.mark.parametrize(("min_fields", "data", "expected"), [
    (0, b"{}", Patch()),
    (1, b'{"from": 3}', Patch(from_=3)),
    (2, b'{"cpu": 2, "memory": 1}', Patch(2, 1)),
])
def test_a_body_naming_enough_fields_is_taken(min_fields: int, data: bytes,
                                              expected: Patch) -> None:
    assert Body(Patch, min_fields=min_fields).parse(data, JSON_TYPE) == expected


def test_the_schema_of_a_body_exactly() -> None:
    assert Body(Small).schema() == {
        "type": "object", "additionalProperties": False, "required": ["cpu"],
        "properties": {
            "cpu": {"type": "integer", "minimum": 1, "maximum": 64,
                    "description": "Virtual CPUs"},
            "suspendable": {"type": "boolean", "description": "Suspendable", "default": False}}}
    schema = Body(Patch, min_fields=1).schema()
    assert (schema["required"], schema["minProperties"]) == ([], 1)
    assert list(schema["properties"]) == ["cpu", "memory", "from"]  # type: ignore[call-overload]


@dataclass(frozen=True)
class Plain:
    cpu: int


@dataclass(frozen=True)
class Twice:
    cpu: Annotated[int, Field(Int(1, 2), "a"), Field(Int(1, 2), "b")]


@dataclass(frozen=True)
class Unmarked:
    cpu: Annotated[int, "Virtual CPUs"]


@pytest.mark.parametrize("spec", [Plain, Twice, Unmarked])
def test_a_field_without_exactly_one_field_annotation_is_a_declaration_error(
        spec: type) -> None:
    with pytest.raises(TypeError) as caught:
        Body(spec).members()
    assert str(caught.value) == f"{spec.__name__}.cpu needs one Field annotation"
