"""What a refused JSON body is told, word for word, and the schema a body declares, exactly
(edge/body.py, ``Body.parse`` and ``Body.schema`` called directly): the problem documents are
the client's only explanation, so each refusal's detail and pointers are pinned here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytest

from vm_operator.edge.body import Body, Field
from vm_operator.edge.errors import ApiError
from vm_operator.edge.params import Boolean, Int


@dataclass(frozen=True)
class Shape:
    cpu: Annotated[int, Field(Int(1, 64), "Virtual CPUs")]
    suspendable: Annotated[bool, Field(Boolean(), "Suspendable")] = False


@dataclass(frozen=True)
class Patch:
    """All optional: a body that must name some of them (``min_fields``)."""

    cpu: Annotated[int | None, Field(Int(1, 64), "Virtual CPUs")] = None
    memory: Annotated[int | None, Field(Int(1, 8), "Memory")] = None
    from_: Annotated[int | None, Field(Int(1, 8), "Source", key="from")] = None


JSON = "application/json"
MERGE = "application/merge-patch+json"


def refusal(body: Body[object], data: bytes, content_type: str | None = JSON) -> ApiError:
    with pytest.raises(ApiError) as caught:
        body.parse(data, content_type)
    return caught.value


@pytest.mark.parametrize(("body", "detail"), [
    (Body(Shape), "this route takes a JSON body: send Content-Type: application/json"),
    (Body(Patch, media_types=(MERGE, JSON)), ("this route takes a JSON body: send "
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
    assert Body(Shape).parse(b'{"cpu": 2}', content_type) == Shape(2)


@pytest.mark.parametrize("content_type", [None, "", "application/jsonx", "text/json"])
def test_a_missing_or_other_media_type_is_refused(content_type: str | None) -> None:
    assert refusal(Body(Shape), b'{"cpu": 2}', content_type).status == 415


def test_a_body_over_the_limit_says_the_limit() -> None:
    error = refusal(Body(Shape, limit=12), b'{"cpu": 2}   ')
    assert (error.status, error.detail) == (413, "the body is larger than 12 bytes")
    assert Body(Shape, limit=12).parse(b'{"cpu": 2}  ', JSON) == Shape(2)


def test_the_wrong_fields_are_listed_in_the_detail_in_order() -> None:
    error = refusal(Body(Shape), b'{"x": 1, "cpu": 0, "suspendable": 3}')
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
    assert Body(Patch, min_fields=min_fields).parse(data, JSON) == expected


def test_the_schema_of_a_body_exactly() -> None:
    assert Body(Shape).schema() == {
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
