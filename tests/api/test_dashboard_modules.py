"""The dashboard's JavaScript modules: every module the page loads is served, each keeps its state.

The page is plain JavaScript modules with no build step, so nothing but these tests reads the
whole module graph before a browser does. The graph is followed from index.html's module script
through every static `import … from "./x.js"`; dynamic `import()` is refused so that it is the
whole graph. Each module keeps its state private: it exports functions, classes and constants
bound to literals, never a mutable binding or a shared object, and it keeps no module-wide
record of fields (one `state` object read everywhere is what the split of the page ended).
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest
from conftest import Operator

from vm_operator.api.dashboard import ASSETS

UI = Path(str(files("vm_operator") / "ui"))
MAX_LINES = 300

ENTRY = re.compile(r'<script\s+type="module"\s+src="/ui/([\w.-]+\.js)"></script>')
IMPORT = re.compile(r'^import\s+(?P<what>[^;]*?)\s+from\s+"\./(?P<file>[\w.-]+\.js)";', re.MULTILINE | re.DOTALL)
BARE_IMPORT = re.compile(r'^import\s+"', re.MULTILINE)
DYNAMIC_IMPORT = re.compile(r"\bimport\s*\(")
EXPORT = re.compile(r"^export\b.*$", re.MULTILINE)
EXPORTED_FUNCTION = re.compile(r"^export\s+(?:async\s+)?function\s*\*?\s*(\w+)\s*\(")
EXPORTED_CLASS = re.compile(r"^export\s+class\s+(\w+)\b")
EXPORTED_CONSTANT = re.compile(r"^export\s+const\s+([A-Z][A-Z0-9_]*)\s*=\s*(.+)$")
# a string, or a number written with digits and arithmetic: nothing another module could change
LITERAL = re.compile(r'^(?:"[^"\\]*(?:\\.[^"\\]*)*"|[\d\s*+/._-]+);$')
TOP_LEVEL_RECORD = re.compile(r"^(?:const|let|var)\s+(\w+)\s*=\s*\{", re.MULTILINE)
COMMENT = re.compile(r"(?<![:\\])//.*$", re.MULTILINE)  # not a URL's "://"


def source(file: str) -> str:
    return (UI / file).read_text(encoding="utf-8")


def imports(file: str) -> list[tuple[str, str]]:
    """(what, file) for each static import of a module: `{ a, b as c }` or `* as x`."""
    return [(match["what"], match["file"]) for match in IMPORT.finditer(source(file))]


def page_modules() -> set[str]:
    """The file names of every module the page loads, from index.html's entry on."""
    entries = ENTRY.findall(source("index.html"))
    assert entries, "index.html loads no module script"
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        text = source(file)
        assert not DYNAMIC_IMPORT.search(text), f"{file}: a dynamic import() hides a module"
        assert not BARE_IMPORT.search(text), f"{file}: an import without a name"
        todo.extend(imported for _, imported in imports(file))
    return seen


def exports(file: str) -> dict[str, str]:
    """The names a module exports -> what each is ("function", "class", "constant")."""
    names: dict[str, str] = {}
    for line in EXPORT.findall(source(file)):
        if match := EXPORTED_FUNCTION.match(line):
            names[match[1]] = "function"
        elif match := EXPORTED_CLASS.match(line):
            names[match[1]] = "class"
        elif (match := EXPORTED_CONSTANT.match(line)) and LITERAL.match(match[2].strip()):
            names[match[1]] = "constant"
        else:
            pytest.fail(f"{file} exports what another module could change or read as state: {line}")
    return names


def test_every_module_the_page_loads_is_served_as_javascript(operator: Operator) -> None:
    modules = page_modules()
    assert "app.js" in modules
    for file in sorted(modules):
        status, headers, body = operator.request("GET", f"/ui/{file}")
        assert status == 200, (file, body[:200])
        assert headers["Content-Type"] == "text/javascript; charset=utf-8", file
        assert body == (UI / file).read_bytes(), file


def test_the_served_scripts_are_the_modules_the_page_loads() -> None:
    served = {asset.file for asset in ASSETS if asset.file.endswith(".js")}
    shipped = {path.name for path in UI.glob("*.js")}
    assert served == page_modules() == shipped


def test_modules_export_functions_and_constants_never_state() -> None:
    for file in sorted(page_modules()):
        exports(file)  # fails on an exported let, object, array, Map or Set


def test_no_module_keeps_a_record_of_fields_for_others() -> None:
    records = {file: TOP_LEVEL_RECORD.findall(source(file)) for file in sorted(page_modules())}
    assert {file: names for file, names in records.items() if names} == {}


def test_modules_are_small() -> None:
    lengths = {file: source(file).count("\n") for file in sorted(page_modules())}
    assert {file: n for file, n in lengths.items() if n > MAX_LINES} == {}


def test_a_module_uses_only_what_the_modules_it_imports_export() -> None:
    for file in sorted(page_modules()):
        code = COMMENT.sub("", source(file))
        for what, imported in imports(file):
            offered = exports(imported)
            namespace = re.fullmatch(r"\*\s+as\s+(\w+)", what)
            if namespace:
                used = set(re.findall(rf"(?<![\w.$/]){namespace[1]}\.(\w+)", code))
            else:
                names = re.fullmatch(r"\{([^}]*)\}", what.strip())
                assert names, f"{file}: import {what} from ./{imported}"
                used = {part.split(" as ")[0].strip() for part in names[1].split(",") if part.strip()}
            assert used <= offered.keys(), (file, imported, sorted(used - offered.keys()))
