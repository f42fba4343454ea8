"""The layers of the package and the imports between them.

edge -> api -> core -> tart / store: nothing below imports above. The edge knows HTTP, never
Tart: of the layers below it, it imports only the exception types its catalogue maps and the
clock. The API imports the edge's vocabulary (routes, parameter types, responses, problems) to
declare its routes, the edge never the API (the route table is handed to it). Only wiring.py
builds the parts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "vm_operator"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def absolute(path: Path, node: ast.ImportFrom) -> str:
    """The module an import names, a relative one (``from .cli import …``) resolved."""
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path) -> set[str]:
    """The modules of the package that ``path`` imports (at any level of the file)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and absolute(path, node):
            node = ast.ImportFrom(absolute(path, node), node.names, 0)
            assert node.module is not None
            if node.module == "vm_operator":
                found |= {f"vm_operator.{alias.name}" for alias in node.names}
            elif node.module.startswith("vm_operator."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("vm_operator")}
    return found - {"vm_operator.__version__"}


MODULES = {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}

# (modules, the package's modules they may import): a name ending in "." is a package prefix.
RULES = [
    ("vm_operator.vocabulary", set()),  # the contract's words and bounds, read by all
    ("vm_operator.store.", {"vm_operator.store.", "vm_operator.vocabulary"}),
    # the Mac's commands: the PEM cutting (shared with the edge), launchd the settings' flags
    ("vm_operator.platform.", {"vm_operator.pem", "vm_operator.settings.table",
                               "vm_operator.settings.declare"}),
    ("vm_operator.pem", set()),
    ("vm_operator.simulator.", {"vm_operator.simulator."}),  # a program of its own
    ("vm_operator.tart.", {"vm_operator.tart.", "vm_operator.store.state",
                           "vm_operator.vocabulary", "vm_operator.sockets"}),
    ("vm_operator.core.", {"vm_operator.core.", "vm_operator.store.", "vm_operator.tart.",
                           "vm_operator.vocabulary", "vm_operator.settings.table"}),
    ("vm_operator.edge.", {"vm_operator.edge.", "vm_operator.core.errors",
                           "vm_operator.core.clock", "vm_operator.tart.errors",
                           "vm_operator.vocabulary", "vm_operator.websocket",
                           "vm_operator.pem"}),
    ("vm_operator.api", {"vm_operator.api", "vm_operator.api.", "vm_operator.edge.",
                         "vm_operator.core.", "vm_operator.tart.", "vm_operator.store.",
                         "vm_operator.vocabulary"}),
    ("vm_operator.config", {"vm_operator.tart.errors", "vm_operator.tart.ssh_settings",
                            "vm_operator.tart.home", "vm_operator.tokens",
                            "vm_operator.settings", "vm_operator.settings."}),
    ("vm_operator.settings.", {"vm_operator.settings", "vm_operator.settings.",
                               "vm_operator.vocabulary", "vm_operator.tart.commands",
                               "vm_operator.tart.errors", "vm_operator.tart.ssh_settings",
                               "vm_operator.tokens"}),
    ("vm_operator.tokens", set()),
    # the client talks HTTP only: nothing of the server, the contract's vocabulary, the
    # WebSocket framing, the closing of a socket and the command line's words aside
    ("vm_operator.client", {"vm_operator.client", "vm_operator.client.",
                            "vm_operator.vocabulary", "vm_operator.websocket",
                            "vm_operator.sockets", "vm_operator.command_line"}),
    # the command line's words, read by cli.py without the client (serve never imports it)
    ("vm_operator.command_line", set()),
    ("vm_operator.websocket", set()),  # the framing, shared by the edge and the client
    ("vm_operator.sockets", set()),  # closing a connection, shared by tart and the client
]


def allowed(imported: str, may: set[str]) -> bool:
    return any(imported == rule or (rule.endswith(".") and imported.startswith(rule))
               for rule in may)


@pytest.mark.parametrize(("layer", "may"), RULES, ids=[layer for layer, _ in RULES])
def test_a_layer_imports_only_what_is_below_it(layer: str, may: set[str]) -> None:
    members = {name: found for name, found in MODULES.items()
               if name == layer.rstrip(".") or name.startswith(layer)}
    assert members, f"no module in {layer}"
    wrong = [f"{name} imports {imported}" for name, found in members.items()
             for imported in sorted(found) if not allowed(imported, may)]
    assert not wrong, "\n".join(wrong)


def test_only_the_composition_root_builds_the_transports() -> None:
    users = {name for name, found in MODULES.items()
             if found & {"vm_operator.tart.local", "vm_operator.tart.ssh"}
             and not name.startswith("vm_operator.tart.")}
    assert users == {"vm_operator.wiring"}


def test_the_scan_sees_the_imports() -> None:
    """Not vacuous: known imports are found."""
    assert "vm_operator.tart.errors" in MODULES["vm_operator.edge.problems.client_errors"]
    assert "vm_operator.edge.routing" in MODULES["vm_operator.api.vms"]
    assert "vm_operator.api" in MODULES["vm_operator.wiring"]
    assert "vm_operator.simulator.knobs" in MODULES["vm_operator.simulator.cli"]  # relative
