"""The test suite's own rules: where a test module lives, what it is named, and one home per
shared helper (README "Tests": the layout).

- pytest imports every test module by its basename (rootdir-relative packages are not used
  here): two test files of one name in different folders stop the whole collection.
- Test modules mirror the package: ``tests/unit/<part>/`` (in process, over fakes) and
  ``tests/<part>/`` (real processes over loopback), where a part is a subpackage of
  ``vm_operator`` or a folder of the repository (deploy, docker, scripts). At a tier's root
  stand only the tests of ``vm_operator``'s top-level modules (``test_config*.py`` for
  config.py, ...) and the few listed in ``WHOLE_PACKAGE``.
- A module is named by the behaviour it tests, never by a tracker's issue or item number, nor
  by when it was written (``_more``, ``_details``, ``_new``); no text of the code or the tests
  names a tracker's issue or item (a reference to another project's, like tart#1106, is fine).
- The helpers the suites share are defined once: in tests/support.py, or as a method of
  conftest's ``Operator`` where they act on one operator.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
PACKAGE = REPO / "vm_operator"

# folders of the repository that tests mirror besides the package's subpackages
REPOSITORY_PARTS = {"deploy", "docker", "scripts"}
# tests of the whole package or process, at a tier's root
WHOLE_PACKAGE = {"tests/test_startup.py", "tests/unit/test_layers.py",
                 "tests/unit/test_module_sizes.py", "tests/unit/test_test_names.py"}

HISTORY_NAME = re.compile(
    r"(^|_)((issue|item|bug|ticket)s?_?\d*|more|details|extra|new|again|\d+)(_|$)", re.IGNORECASE)
TRACKER_REFERENCE = re.compile(r"\b(issue|item)s?\s*#?\d+", re.IGNORECASE)

# helper -> its one home: (file relative to tests/, class or None)
SUPPORT = ("wait_for", "free_port", "kill_tart_processes", "assert_utc_timestamp", "children_of",
           "client_env", "run_client", "cli", "succeeded", "columns_of", "guest_processes",
           "reaped", "interrupted", "read_until", "round_trip", "startup_refusal")
OPERATOR_METHODS = ("problem", "ok", "detail", "tart_state", "start_vm", "stop_vm", "guest_exits",
                    "running_again")
HELPERS: dict[str, tuple[str, str | None]] = {
    **{name: ("support.py", None) for name in SUPPORT},
    **{name: ("conftest.py", "Operator") for name in OPERATOR_METHODS},
}
# names the same helpers went by in their copies
ALIASES = {"closed_port": "free_port", "kill_leftovers": "kill_tart_processes",
           "expect_problem": "problem", "problem_of": "problem", "expect_json": "ok",
           "children": "children_of", "direct_states": "tart_state"}


def all_test_modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def python_files() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


def test_no_two_test_modules_share_a_name() -> None:
    names = Counter(path.name for path in all_test_modules())
    assert [name for name, count in names.items() if count > 1] == []


def misplaced(paths: list[Path]) -> list[str]:
    parts = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()} | REPOSITORY_PARTS
    top_level = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("_")}
    found = []
    for path in paths:
        where = path.relative_to(TESTS).parts[:-1]
        if where[:1] == ("unit",):
            where = where[1:]
        if len(where) == 1 and where[0] in parts:
            continue
        name = path.relative_to(TESTS.parent).as_posix()
        topic = path.stem.removeprefix("test_").split("_")[0]
        if not where and (name in WHOLE_PACKAGE or topic in top_level):
            continue
        found.append(name)
    return found


def test_test_modules_mirror_the_package() -> None:
    assert misplaced(all_test_modules()) == []


def test_the_layout_rule_tells_a_misplaced_module() -> None:
    unit = TESTS / "unit"
    assert misplaced([unit / "core" / "test_x.py", TESTS / "api" / "test_x.py",
                      TESTS / "docker" / "test_x.py", unit / "test_config_table.py",
                      TESTS / "test_startup.py"]) == []
    assert misplaced([unit / "test_settings_table.py", TESTS / "test_vm_power.py",
                      TESTS / "misc" / "test_x.py", unit / "core" / "deeper" / "test_x.py"]) == [
        "tests/unit/test_settings_table.py", "tests/test_vm_power.py", "tests/misc/test_x.py",
        "tests/unit/core/deeper/test_x.py"]


def test_modules_are_named_by_behaviour_not_by_history() -> None:
    assert [path.name for path in all_test_modules() if HISTORY_NAME.search(path.stem)] == []
    for history in ("test_issue_9.py", "test_item12.py", "test_client_more.py",
                    "test_routing_details.py", "test_api_2.py"):
        assert HISTORY_NAME.search(Path(history).stem), history


def test_no_text_names_a_trackers_issue_or_item() -> None:
    found = []
    for folder in (TESTS, PACKAGE, REPO / "scripts"):
        for path in sorted(folder.rglob("*")):
            if path.suffix not in (".py", ".sh", ".js", ".html", ".md") or path == Path(__file__):
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if TRACKER_REFERENCE.search(line):
                    found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []
    assert TRACKER_REFERENCE.search("# --- item 7: CORS") and TRACKER_REFERENCE.search("(issue 12)")
    assert not TRACKER_REFERENCE.search("tart#1106, cirrus-cli#714, items[0], 30 issues")


def definitions(path: Path) -> list[tuple[str, str | None, int]]:
    """(function name, enclosing class or None, line) of every function defined in a file."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, str | None, int]] = []

    def visit(node: ast.AST, owner: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((child.name, owner, child.lineno))
                visit(child, owner)
            elif isinstance(child, ast.ClassDef):
                visit(child, child.name)
            else:
                visit(child, owner)
    visit(tree, None)
    return found


def kill_loops(path: Path) -> list[int]:
    """Lines of loops that SIGKILL the processes of a Tart home: the kill loop's copies."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.For, ast.While)):
            calls = {ast.unparse(call.func) for call in ast.walk(node) if isinstance(call, ast.Call)}
            if "processes_with_tart_home" in calls and calls & {"os.kill", "os.killpg"}:
                lines.append(node.lineno)
    return lines


def test_each_shared_helper_has_one_home() -> None:
    seen: dict[str, list[str]] = {}
    for path in python_files():
        where = path.relative_to(TESTS).as_posix()
        for name, owner, line in definitions(path):
            helper = ALIASES.get(name.lstrip("_"), name.lstrip("_"))
            if helper in HELPERS:
                seen.setdefault(helper, []).append(f"{where}:{owner or ''}:{line}")
        if where != "support.py":
            assert kill_loops(path) == [], f"{where}: use support.kill_tart_processes"
    for helper, (home, owner) in HELPERS.items():
        places = seen.get(helper, [])
        assert len(places) == 1 and places[0].startswith(f"{home}:{owner or ''}:"), (helper, places)
