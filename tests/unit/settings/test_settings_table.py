"""Every setting is declared once (vm_operator/settings/table.py): its flag, the help, the
loader, the README's tables and the known variables are all made from that declaration."""

from __future__ import annotations

import dataclasses
import re

import pytest
from support import REPO_ROOT, startup_refusal

from vm_operator.config import build_parser, known_variables, load_config, unknown_variables
from vm_operator.core import service
from vm_operator.settings import table
from vm_operator.settings.checks import Bounded, bounds
from vm_operator.settings.declare import Declared, declared, variable_for
from vm_operator.settings.docs import README_HEADER, readme_tables, settings

README = REPO_ROOT / "README.md"
SETTINGS = settings()
IDS = [item.name for item in SETTINGS]
WITH_FLAG = [item for item in SETTINGS if item.flag]
RESOLVED_AT_START_UP = {"tart", "state_dir"}  # "" means: found at start-up (the shown words)


def test_the_table_is_not_empty_and_names_are_unique() -> None:
    assert len(SETTINGS) >= 30
    assert len(set(IDS)) == len(IDS)
    flags = [item.flag for item in WITH_FLAG]
    assert len(set(flags)) == len(flags)


def _actions() -> dict[str, str]:
    """Each flag of the parser and its help."""
    return {option: action.help or "" for action in build_parser()._actions
            for option in action.option_strings}


@pytest.mark.parametrize("item", WITH_FLAG, ids=[item.name for item in WITH_FLAG])
def test_each_flag_shows_its_variable_and_its_declared_default(item: Declared) -> None:
    assert item.flag is not None
    help_text = _actions()[item.flag]
    assert help_text.startswith(item.spec.help)
    assert f"default: {item.shown}" in help_text
    for variable in item.variables:
        assert variable in help_text
    if item.spec.shown is None:  # the words are the declared value's own
        value = item.default
        words = ({True: "on", False: "off"}[value] if isinstance(value, bool)
                 else f"{value:g}" if isinstance(value, float) else str(value))
        assert f"default: {words}" in help_text


def test_the_help_lists_every_flag_under_its_section() -> None:
    chunks = build_parser().format_help().split("\n\n")
    blocks = {chunk.split(":\n")[0]: chunk for chunk in chunks if ":\n  " in chunk}
    for item in WITH_FLAG:
        block = blocks[item.spec.section.title]
        assert re.search(rf"^  {item.flag}[ \n]", block, re.MULTILINE), item.name


def test_the_help_names_every_secret_variable_with_its_meaning() -> None:
    text = build_parser().format_help()
    secrets = [item for item in SETTINGS if item.spec.kind == "secret"]
    assert {item.name for item in secrets} == {"token", "read_token"}
    for item in secrets:
        variable, file_variable = item.variables
        assert re.search(rf"\n  {variable} +{re.escape(item.spec.help)}\n", text), variable
        assert re.search(rf"\n  {file_variable} +{re.escape(item.spec.file_help)}\n", text)


def _readme_table_after(heading: str, text: str) -> str:
    start = text.index(f"\n## {heading}\n")
    lines = text[start:].split("\n")
    first = next(n for n, line in enumerate(lines) if line.startswith("| flag | variable |"))
    found = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        found.append(line)
    return "\n".join(found)


def test_the_readme_tables_are_the_ones_made_from_the_table() -> None:
    text = README.read_text(encoding="utf-8")
    tables = readme_tables()
    assert set(tables) == {"Configuration", "Container on a Mac: Tart over SSH"}
    for heading, expected in tables.items():
        assert _readme_table_after(heading, text) == expected, (
            f"README's table under '## {heading}' differs from vm_operator/settings/table.py; "
            f"`python -m vm_operator.settings` prints it:\n{expected}")
    assert text.count(README_HEADER.split("\n")[0]) == len(tables)  # no other table of settings


def test_a_setting_missing_from_the_readme_would_be_found() -> None:
    """Not vacuous: a table without one row, or with another default, differs."""
    expected = readme_tables()["Configuration"]
    rows = expected.split("\n")
    assert "\n".join(rows[:3] + rows[4:]) != expected
    assert expected.replace("| 1 s |", "| 2 s |", 1) != expected


@pytest.mark.parametrize("item", SETTINGS, ids=IDS)
def test_every_declared_variable_is_known(item: Declared) -> None:
    for variable in item.variables:
        assert variable.startswith("VM_OPERATOR_")
        assert variable in known_variables()
        assert unknown_variables({variable: "1"}) == []


@pytest.mark.parametrize("item", [item for item in SETTINGS if item.variables],
                         ids=[item.name for item in SETTINGS if item.variables])
def test_a_misspelled_declared_variable_is_reported_with_its_name(item: Declared) -> None:
    variable = item.variables[-1]
    typo = variable[:-1] + "X" + variable[-1]  # a letter too many
    assert unknown_variables({typo: "1", variable: "1"}) == [(typo, variable)]


@pytest.mark.parametrize(("env", "expected"), [
    ({"VM_OPERATOR_DEMO": "1"}, [("VM_OPERATOR_DEMO", None)]),  # a flag alone: no variable
    ({"VM_OPERATOR_NO_ACCESS_LOG": "1"}, [("VM_OPERATOR_NO_ACCESS_LOG", "VM_OPERATOR_ACCESS_LOG")]),
    ({"VM_OPERATOR_POLL_INTERVAL": "1"}, [("VM_OPERATOR_POLL_INTERVAL", None)]),  # not a setting
    ({"VM_OPERATOR_URL": "u", "VM_OPERATOR_BIND": "b", "VM_OPERATOR_IMAGE": "i",
      "VM_OPERATOR_VERSION": "v", "VM_OPERATOR_UID": "1", "VM_OPERATOR_GID": "1"}, []),
    ({"OTHER_THING": "1", "vm_operator_port": "1"}, []),
])
def test_variables_nothing_declares_are_handled_as_before(
        env: dict[str, str], expected: list[tuple[str, str | None]]) -> None:
    assert unknown_variables(env) == expected


@pytest.mark.parametrize("item", [item for item in SETTINGS if item.name not in
                                  RESOLVED_AT_START_UP],
                         ids=[name for name in IDS if name not in RESOLVED_AT_START_UP])
def test_without_flag_or_variable_a_setting_is_its_declared_default(item: Declared) -> None:
    assert getattr(load_config([], {"HOME": "/home/u"}), item.name) == item.default


def test_the_core_is_tuned_by_the_table_itself() -> None:
    assert service.Settings is table.Settings
    assert issubclass(table.Config, table.Settings)  # wiring hands the core its Config
    tunables = {field.name for field in dataclasses.fields(table.Settings)}
    assert tunables - {item.name for item in declared(table.Settings)} == {"poll_interval"}
    assert service.DEFAULTS == table.Settings()


NUMBERS = [item for item in SETTINGS if bounds(item.spec.check)]


@pytest.mark.parametrize("item", NUMBERS, ids=[item.name for item in NUMBERS])
def test_a_number_is_refused_outside_the_range_its_help_shows(item: Declared) -> None:
    assert item.flag is not None
    words = bounds(item.spec.check)
    assert f", {words})" in _actions()[item.flag]
    check = item.spec.check
    assert isinstance(check, Bounded)
    beyond = check.low - 1 if check.high is None else check.high + 1
    env = {item.variable: f"{beyond:g}"}
    if item.spec.only_with:
        env[variable_for(item.spec.only_with)] = "me@mac.example"
    assert startup_refusal(env) == f"vm-operator: {item.variable}: must be {words}, not {beyond:g}"
