"""The settings in words, made from their declarations: a flag's help (with its variable and
default), the help's lines of the token variables, and the README's tables."""

from __future__ import annotations

from vm_operator.settings.checks import bounds
from vm_operator.settings.declare import Declared, declared
from vm_operator.settings.table import SECTIONS, Config

README_HEADER = ("| flag | variable | default | what it sets |\n"
                 "| --- | --- | --- | --- |")


def settings() -> list[Declared]:
    """Every setting, section by section (in ``SECTIONS`` order), in field order within one."""
    found = declared(Config)
    return [item for section in SECTIONS for item in found if item.spec.section == section]


def flag_help(item: Declared) -> str:
    """A flag's help: what it sets, then its variable and its default."""
    kind = item.spec.kind
    if kind == "switch":
        return (f"{item.spec.help}; this flag or {item.variable}=off turns it off "
                f"(default: {item.shown})")
    if kind == "flag":
        return f"{item.spec.help} (a flag only; default: {item.shown})"
    return f"{item.spec.help} ({item.variable}, default: {item.shown}{_range(item)})"


def _range(item: Declared) -> str:
    words = bounds(item.spec.check)
    return f", {words}" if words else ""


def secret_lines() -> list[str]:
    """The help's lines of the variables that are not flags (the tokens), aligned."""
    rows = [(variable, help_text) for item in settings() if item.spec.kind == "secret"
            for variable, help_text in zip(item.variables, (item.spec.help, item.spec.file_help),
                                           strict=True)]
    width = max(len(variable) for variable, _ in rows) + 2
    return [f"  {variable.ljust(width)}{help_text}" for variable, help_text in rows]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def readme_row(item: Declared) -> str:
    kind = item.spec.kind
    flag = f"`{item.flag}`" if item.flag else ""
    if kind == "switch":
        variable = f"`{item.variable}=off`"
    else:
        variable = ", ".join(f"`{name}`" for name in item.variables)
    meaning = item.spec.help
    if bounds(item.spec.check):
        meaning = f"{meaning} ({bounds(item.spec.check)})"
    if kind == "secret":
        meaning = f"{meaning}; `{item.variables[1]}`: {item.spec.file_help}"
    return f"| {flag} | {variable} | {_cell(item.shown)} | {_cell(meaning)} |"


def readme_tables() -> dict[str, str]:
    """The README's tables of settings, by the heading of the README section each stands in."""
    tables: dict[str, list[str]] = {}
    for item in settings():
        tables.setdefault(item.spec.section.readme, [README_HEADER]).append(readme_row(item))
    return {heading: "\n".join(lines) for heading, lines in tables.items()}
