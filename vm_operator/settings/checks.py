"""The checks of one value: each turns a flag's or a variable's text into its value, or raises
``argparse.ArgumentTypeError`` with what is wrong. argparse runs them on flags (as their
``type``) and the loader on variables, so that both are checked alike."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

N = TypeVar("N", int, float)

from vm_operator.tokens import let_the_operator_read

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


@dataclass(frozen=True)
class Bounded:
    """A number within [low, high] (no high: at least low)."""

    low: float
    high: float | None

    @property
    def bounds(self) -> str:
        """The range in words, as the help says it and an error names it."""
        if self.high is None:
            return f"at least {self.low:g}"
        return f"from {self.low:g} to {self.high:g}"

    def _parsed(self, text: str, pattern: re.Pattern[str], kind: str,
                convert: Callable[[str], N]) -> N:
        """``text`` (spaces around it ignored) as a number of ``pattern``, within the bounds."""
        text = text.strip()
        if not pattern.fullmatch(text):
            raise argparse.ArgumentTypeError(f"must be {kind}, not {text!r}")
        value = convert(text)
        if not (self.low <= value and (self.high is None or value <= self.high)):
            raise argparse.ArgumentTypeError(f"must be {self.bounds}, not {text}")
        return value


@dataclass(frozen=True)
class Whole(Bounded):
    def __call__(self, text: str) -> int:
        return self._parsed(text, _INTEGER, "a whole number", int)


@dataclass(frozen=True)
class Decimal(Bounded):
    def __call__(self, text: str) -> float:
        return self._parsed(text, _DECIMAL, "a number", float)


def integer(low: int, high: int | None = None) -> Whole:
    """A whole number within [low, high]."""
    return Whole(low, high)


def decimal(low: float, high: float) -> Decimal:
    """A number of seconds (decimals allowed) within [low, high]."""
    return Decimal(low, high)


def bounds(check: object) -> str:
    """The range a number setting's check allows, in words ("" for other checks)."""
    return check.bounds if isinstance(check, Bounded) else ""


def yes_no(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(
        f"must be one of {', '.join(TRUE_WORDS)} (on) or {', '.join(FALSE_WORDS)} (off), "
        f"not {text!r}"
    )


def text(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def readable_file(value: str) -> str:
    """A file this process can read (the declarative file): its absolute path."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    try:
        with open(value, "rb"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {value}: {exc.strerror or exc}"
                                         + let_the_operator_read(exc, "Security")) from None
    return os.path.abspath(value)


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return len(value) <= 253 and _HOST_NAME.fullmatch(value) is not None


def host(value: str) -> str:
    name = value.strip()
    if not _is_host(name):
        raise argparse.ArgumentTypeError(f"must be an IP address or a host name, not {value!r}")
    return name


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def host_list(value: str) -> tuple[str, ...]:
    for name in _csv(value):
        if not _is_host(name):
            raise argparse.ArgumentTypeError(
                f"must be host names separated by commas (no scheme, no port); {name!r} is not one"
            )
    return tuple(name.lower() for name in _csv(value))


def origin_list(value: str) -> tuple[str, ...]:
    for origin in _csv(value):
        if not _ORIGIN.fullmatch(origin):
            raise argparse.ArgumentTypeError(
                "must be origins (scheme://host[:port], no path, never *) separated by commas; "
                f"{origin!r} is not one"
            )
    return tuple(origin.lower() for origin in _csv(value))
