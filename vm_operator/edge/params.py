"""Parameter types: how a parameter's text (path, query) or JSON value (body) becomes a typed
value, what a refusal says, and how /openapi.json describes it (pure).

A type raises ``ValueError`` with the whole detail a client reads; the router turns it into
the type's problem (``invalid-parameter`` unless the type says otherwise).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Generic, TypeVar

from vm_operator.edge.problems import ProblemType
from vm_operator.edge.problems.client_errors import INVALID_PARAMETER

T = TypeVar("T")

Schema = Mapping[str, object]

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit (and int) also take '²' or '٣'


def whole_number(text: str, digits: int) -> int | None:
    """``text`` as a whole number when it is 1 to ``digits`` ASCII digits, else None.

    The one way a number is read from a request (a header, the request line, a query): never
    ``str.isdigit`` or ``int`` alone, which take superscripts and other scripts' digits, signs,
    spaces and underscores, and any length.
    """
    return int(text) if len(text) <= digits and _DIGITS.fullmatch(text) else None


class ParamType(Generic[T]):
    """A parameter's type. Subclasses give ``schema``, ``from_text`` and ``from_json``."""

    problem: ProblemType = INVALID_PARAMETER  # what a refused value is
    decoded: bool = True  # a path value is percent-decoded (strictly) before ``from_text``
    refuses: bool = True  # whether any value can be refused (/openapi.json then lists a 400)
    media_type: str | None = None  # a query value written in this media type (its ``content``)

    def schema(self) -> Schema:
        raise NotImplementedError

    def from_text(self, key: str, text: str) -> T:
        """The value of a path or query parameter; ValueError(detail) when it is refused."""
        raise NotImplementedError

    def from_json(self, key: str, value: object) -> T:
        """The value of a field of a JSON body; ValueError(detail) when it is refused."""
        raise NotImplementedError


class TextParam(ParamType[T]):
    """A parameter whose JSON value is a string read as its text would be (``from_text``);
    any other JSON value is refused with ``expected``."""

    def expected(self, key: str) -> str:
        """The detail of a refusal: what the value must be."""
        raise NotImplementedError

    def from_json(self, key: str, value: object) -> T:
        if isinstance(value, str):
            return self.from_text(key, value)
        raise ValueError(self.expected(key))


class Int(ParamType[int]):
    """A whole number from ``low`` to ``high``, as text: ASCII digits, at most as many as
    ``high`` has (and at least 6, for leading zeros), so no text costs more to read than that."""

    def __init__(self, low: int, high: int) -> None:
        if low < 0:
            raise ValueError("Int takes whole numbers from 0 up")
        self.low = low
        self.high = high
        self._digits = max(6, len(str(high)))

    def schema(self) -> Schema:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}

    def _refusal(self, key: str) -> ValueError:
        return ValueError(f"{key} must be a whole number from {self.low} to {self.high}")

    def from_text(self, key: str, text: str) -> int:
        value = whole_number(text, self._digits)
        if value is None or not self.low <= value <= self.high:
            raise self._refusal(key)
        return value

    def from_json(self, key: str, value: object) -> int:
        # JSON Schema counts 416.0 as an integer (a number without a fraction): so do we.
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._refusal(key)
        if not self.low <= value <= self.high:
            raise self._refusal(key)
        return value


class Boolean(ParamType[bool]):
    """true or false: in a query exactly the words of ``WORDS``, in a JSON body JSON's booleans.
    The refusal names the same words, so a client is never told one thing and held to another."""

    WORDS: Mapping[str, bool] = {"true": True, "false": False}

    def schema(self) -> Schema:
        return {"type": "boolean"}

    def _refusal(self, key: str) -> ValueError:
        return ValueError(f"{key} must be {' or '.join(self.WORDS)}")

    def from_text(self, key: str, text: str) -> bool:
        if text not in self.WORDS:
            raise self._refusal(key)
        return self.WORDS[text]

    def from_json(self, key: str, value: object) -> bool:
        if isinstance(value, bool):
            return value
        raise self._refusal(key)


class OneOf(TextParam[str]):
    """One of a fixed set of words."""

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def schema(self) -> Schema:
        return {"enum": list(self.choices)}

    def expected(self, key: str) -> str:
        return f"{key} must be one of: {', '.join(self.choices)}"

    def from_text(self, key: str, text: str) -> str:
        if text not in self.choices:
            raise ValueError(self.expected(key))
        return text


class Verbatim(ParamType[str]):
    """Any text, taken as sent (not even percent-decoded) and never refused: a key to look up
    (a problem type's slug), which never reaches Tart."""

    decoded = False
    refuses = False

    def __init__(self, schema: Schema) -> None:
        self._schema = schema

    def schema(self) -> Schema:
        return self._schema

    def from_text(self, key: str, text: str) -> str:
        return text

    def from_json(self, key: str, value: object) -> str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{key} must be a string")
