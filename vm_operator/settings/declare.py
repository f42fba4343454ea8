"""How a setting is declared: one call as the default of a field of the settings record
(``table.py``), e.g. ``cache_ttl: float = setting(1.0, decimal(0, 60), VMS, unit="s", help="…")``.

The field's name is the setting's name; its flag (``--cache-ttl``) and its environment variable
(``VM_OPERATOR_CACHE_TTL``) are derived from it. The parser, the help (each flag with its
variable and default), the loader, the README's tables and the list of known variables are all
made from these declarations, so a default is written once: in its call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

T = TypeVar("T")

PREFIX = "VM_OPERATOR_"
_KEY = "vm_operator.setting"

# value: a flag and its variable; switch: on by default, ``--no-NAME`` or ``VAR=off`` turns it
# off; flag: a flag alone, off by default; secret: variables alone (VAR, or VAR_FILE naming a
# file), so that tokens never show in ``ps``.
Kind = Literal["value", "switch", "flag", "secret"]


@dataclass(frozen=True)
class Section:
    """A group of settings: one group of the help, rows of one README table."""

    title: str
    readme: str  # which README table lists it: "Configuration" or "Container on a Mac"


@dataclass(frozen=True)
class Spec:
    """What a setting's call declares, besides its default."""

    check: Callable[[str], object] | None  # a flag's or variable's text -> the value
    help: str  # what it sets, without its variable or default (they are added)
    section: Section
    kind: Kind = "value"
    shown: str | None = None  # the default in words, when its value does not say it
    unit: str = ""  # "s" for seconds: shown after the default
    metavar: str | None = None
    only_with: str | None = None  # read only when this other setting is set (the SSH ones)
    file_help: str = ""  # a secret's VAR_FILE variable


@dataclass(frozen=True)
class Declared:
    """One setting of the record: its name, its default and its declaration."""

    name: str
    default: object
    spec: Spec

    @property
    def variable(self) -> str:
        return variable_for(self.name)

    @property
    def variables(self) -> tuple[str, ...]:
        """Every variable it reads."""
        if self.spec.kind == "flag":
            return ()
        if self.spec.kind == "secret":
            return (self.variable, f"{self.variable}_FILE")
        return (self.variable,)

    @property
    def flag(self) -> str | None:
        if self.spec.kind == "secret":
            return None
        prefix = "--no-" if self.spec.kind == "switch" else "--"
        return prefix + self.name.replace("_", "-")

    @property
    def shown(self) -> str:
        """The default as the help and the README say it."""
        if self.spec.shown is not None:
            return self.spec.shown
        value = self.default
        if isinstance(value, bool):
            words = "on" if value else "off"
        elif isinstance(value, float):
            words = f"{value:g}"
        else:
            words = str(value)
        return f"{words} {self.spec.unit}" if self.spec.unit else words


def variable_for(name: str) -> str:
    """The environment variable of a setting: ``tart_timeout`` -> VM_OPERATOR_TART_TIMEOUT."""
    return f"{PREFIX}{name.upper()}"


def setting(default: T, check: Callable[[str], T], section: Section, *, help: str,
            shown: str | None = None, unit: str = "", metavar: str | None = None,
            only_with: str | None = None) -> T:
    """A flag and its variable (the flag wins), checked by ``check``, else ``default``."""
    return dataclasses.field(default=default, metadata={_KEY: Spec(
        check, help, section, "value", shown, unit, metavar, only_with)})


def switch(section: Section, *, help: str) -> bool:
    """On unless ``--no-NAME`` is given or its variable says off (a yes/no word)."""
    return dataclasses.field(default=True, metadata={_KEY: Spec(None, help, section, "switch")})


def flag(section: Section, *, help: str) -> bool:
    """A flag alone (no variable), off unless given."""
    return dataclasses.field(default=False, metadata={_KEY: Spec(None, help, section, "flag")})


def secret(section: Section, *, help: str, file_help: str) -> str | None:
    """A token from its variable, or from the file its ``_FILE`` variable names (tokens.py)."""
    return dataclasses.field(default=None, metadata={_KEY: Spec(
        None, help, section, "secret", shown="none", file_help=file_help)})


def declared(record: type) -> list[Declared]:
    """The settings of a record (its fields declared by the calls above), in field order."""
    return [Declared(item.name, item.default, item.metadata[_KEY])
            for item in dataclasses.fields(record) if _KEY in item.metadata]
