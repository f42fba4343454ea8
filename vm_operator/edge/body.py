"""JSON request bodies: a route that takes one declares ``Body(Spec)``, Spec a dataclass whose
fields are annotated with their parameter types, and its handler gets a ``Spec`` (pure)::

    @dataclass(frozen=True)
    class Shape:
        cpu: Annotated[int, Field(Int(1, 64), "Virtual CPUs")]
        suspendable: Annotated[bool, Field(Boolean(), "Suspendable")] = False


What is refused, before the handler runs: a body over the limit (64 KiB: 413; the server
does not even read it), a media type other than ``application/json`` (415), a body that is
not UTF-8 JSON, has a key twice (at any depth) or is not an object, and fields that are
unknown, missing or of the wrong value: each such field is named with a JSON pointer in the
400's ``errors`` (``[{"pointer": "/cpu", "detail": "cpu must be ..."}]``).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vm_operator.edge.errors import ApiError
from vm_operator.edge.params import ParamType, Schema
from vm_operator.edge.problems.client_errors import (
    BODY_TOO_LARGE,
    INVALID_BODY,
    UNSUPPORTED_MEDIA_TYPE,
)

D = TypeVar("D")

MAX_JSON_BODY = 64 * 1024
JSON_MEDIA = "application/json"
MERGE_PATCH_MEDIA = "application/merge-patch+json"  # RFC 7396: a PATCH body is a JSON object too


@dataclass(frozen=True)
class Field:
    """What a field of a body's dataclass is (``Annotated[int, Field(...)]``): the type that
    checks its value, and its description. A field with a default is optional. ``key`` is its
    name in the JSON when that cannot be the attribute's (``from``, a Python keyword: the
    attribute ``from_`` with ``key="from"``)."""

    type: ParamType[Any]
    doc: str
    key: str | None = None


@dataclass(frozen=True)
class _Member:
    name: str  # in the JSON
    field: Field
    default: object  # dataclasses.MISSING when the member is required
    attribute: str = ""  # of the dataclass

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING


def pointer(key: str) -> str:
    """The JSON pointer (RFC 6901) of a top-level member."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(f"the key {key!r} appears twice in an object")
        found[key] = value
    return found


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _media_type(content_type: str | None) -> str | None:
    return content_type.split(";", 1)[0].strip().lower() if content_type is not None else None


@dataclass(frozen=True)
class Body(Generic[D]):
    """The JSON body a route takes: an object with the fields of ``spec``."""

    spec: type[D]
    doc: str = ""
    limit: int = MAX_JSON_BODY
    media_types: tuple[str, ...] = (JSON_MEDIA,)  # the Content-Types it takes, all JSON objects
    min_fields: int = 0  # fields it must name at least (1: a patch, criteria of which one will do)

    def members(self) -> tuple[_Member, ...]:
        """The fields of ``spec``, each with its ``Field``."""
        hints = typing.get_type_hints(self.spec, include_extras=True)
        found = []
        for item in dataclasses.fields(self.spec):  # type: ignore[arg-type]
            declared = [extra for extra in getattr(hints[item.name], "__metadata__", ())
                        if isinstance(extra, Field)]
            if len(declared) != 1:
                raise TypeError(f"{self.spec.__name__}.{item.name} needs one Field annotation")
            found.append(_Member(declared[0].key or item.name, declared[0], item.default,
                                 item.name))
        return tuple(found)

    @property
    def media_advice(self) -> str:
        """What to send, from ``media_types`` (the one declaration): every 415 says it."""
        return f"send Content-Type: {' or '.join(self.media_types)}"

    def schema(self) -> Schema:
        properties: dict[str, object] = {}
        required = []
        for member in self.members():
            prop = {**member.field.type.schema(), "description": member.field.doc}
            if member.required:
                required.append(member.name)
            else:
                prop["default"] = member.default
            properties[member.name] = prop
        schema: dict[str, object] = {"type": "object", "additionalProperties": False,
                                     "required": required, "properties": properties}
        if self.min_fields:
            schema["minProperties"] = self.min_fields
        return schema

    def parse(self, data: bytes, content_type: str | None) -> D:
        """The typed body, or the ApiError that says what is wrong with it."""
        if _media_type(content_type) not in self.media_types:
            raise ApiError(UNSUPPORTED_MEDIA_TYPE,
                           f"this route takes a JSON body: {self.media_advice}")
        if len(data) > self.limit:
            raise ApiError(BODY_TOO_LARGE, f"the body is larger than {self.limit} bytes")
        sent = _object(data)
        members = self.members()
        known = [member.name for member in members]
        errors = [{"pointer": pointer(key),
                   "detail": f"unknown field {key!r} (known: {', '.join(known)})"}
                  for key in sent if key not in known]
        values: dict[str, object] = {}
        for member in members:
            error = _value(member, sent, values)
            if error is not None:
                errors.append({"pointer": pointer(member.name), "detail": error})
        if errors:
            wrong = ", ".join(error["pointer"] for error in errors)
            raise ApiError(INVALID_BODY, f"the body has wrong fields: {wrong}", errors=errors)
        if len(sent) < self.min_fields:  # "" points at the whole body (RFC 6901)
            few = (f"the body names no field: give at least one of {', '.join(known)}"
                   if self.min_fields == 1 else
                   f"give at least {self.min_fields} of the fields {', '.join(known)}")
            raise ApiError(INVALID_BODY, few, errors=[{"pointer": "", "detail": few}])
        return self.spec(**values)


def _value(member: _Member, sent: Mapping[str, object], values: dict[str, object]) -> str | None:
    """Put the member's value in ``values``; what is wrong with it, if anything."""
    if member.name not in sent:
        return f"{member.name} is required" if member.required else None
    try:
        values[member.attribute] = member.field.type.from_json(member.name, sent[member.name])
    except ValueError as exc:
        return str(exc)
    return None


def _object(data: bytes) -> dict[str, object]:
    """The body as a JSON object: UTF-8, JSON, no key twice, an object."""
    if not data:
        raise ApiError(INVALID_BODY, "this route takes a JSON object as its body; none was sent")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(INVALID_BODY, "the body is not UTF-8") from None
    try:
        parsed = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise ApiError(INVALID_BODY, str(exc)) from None
    except ValueError as exc:
        raise ApiError(INVALID_BODY, f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise ApiError(INVALID_BODY, "the body is nested too deeply") from None
    if not isinstance(parsed, dict):
        raise ApiError(INVALID_BODY, "the body must be a JSON object")
    return parsed
