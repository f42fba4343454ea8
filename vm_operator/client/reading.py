"""Reading the API's JSON into the client's typed records (records.py): strict about the
fields a record has (a missing or mistyped one is a ``BadAnswer``), blind to the others."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from types import NoneType, UnionType
from typing import Any, ClassVar, Protocol, Self, TypeVar, get_args, get_origin, get_type_hints


class BadAnswer(ValueError):
    """A 2xx answer whose JSON is not what vm-operator sends."""


def field(data: dict[str, Any], key: str, kind: type | tuple[type, ...],
          optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return None
    # bool is an int in Python: a count or a size must not be true/false
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise BadAnswer(f"field {key!r} is missing or not a {_kind_name(kind)}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def json_object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadAnswer(f"{what} is not a JSON object")
    return data


class Flat(Protocol):
    """A record read by ``read``: ``what`` names it in a ``BadAnswer``."""

    what: ClassVar[str]


R = TypeVar("R", bound=Flat)


def read(cls: type[R], data: Any) -> R:
    """A record from its JSON object, each field from the member of its name, as its annotation
    says: ``str``, ``int``, ``bool`` (or that ``| None``: null or absent), a record (its own
    ``from_json``), ``dict[str, Any]`` (an object, absent: empty)."""
    obj = json_object(data, cls.what)
    assert is_dataclass(cls)
    hints = get_type_hints(cls)
    return cls(**{member.name: _member(obj, member.name, hints[member.name], cls.what)
                  for member in fields(cls)})


def read_list(cls: type[R], data: Any, what: str) -> list[R]:
    """A JSON array of records (``what`` names the array in a ``BadAnswer``)."""
    if not isinstance(data, list):
        raise BadAnswer(f"{what} is not a JSON array")
    return [read(cls, item) for item in data]


class Record:
    """The base of a record read field by field as its annotations say (``read``)."""

    what: ClassVar[str]

    @classmethod
    def from_json(cls, data: Any) -> Self:
        return read(cls, data)


def _member(obj: dict[str, Any], key: str, hint: Any, what: str) -> Any:
    kinds = get_args(hint) if isinstance(hint, UnionType) else (hint,)
    optional = NoneType in kinds
    kind = next(k for k in kinds if k is not NoneType)
    if get_origin(kind) is dict:
        return json_object(obj.get(key, {}), f"{what}'s {key}")
    nested = getattr(kind, "from_json", None)  # a record of its own
    if nested is not None:
        value = obj.get(key)
        return None if value is None and optional else nested(value)
    return field(obj, key, kind, optional=optional)
