"""A client generated from /openapi.json works: openapi-python-client (a test-only dependency,
installed by scripts/test.sh) generates a Python client from the document a real operator
serves, offline, into the test's directory; the test imports it and, through it, lists VMs,
starts one, reads one and changes one (PATCH) on that operator, driving the Tart simulator.

What it checks of the document: the generator makes every operation (a body carried by two
media types is one model, a component both refer to) without a warning, and groups the
operations by resource (the document's tags), not in one ``default`` module.
"""

from __future__ import annotations
import __future__

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import LOCAL_VMS, Operator

SEQUOIA, SONOMA, _ = LOCAL_VMS
PACKAGE = "vm_operator_generated_client"


def generate(op: Operator, workdir: Path) -> tuple[str, dict[str, Any]]:
    """Generate the client package into ``workdir``; the generator's output and the document."""
    status, _, body = op.request("GET", "/openapi.json")
    assert status == 200, body[:300]
    (workdir / "openapi.json").write_bytes(body)
    (workdir / "config.yaml").write_text("post_hooks: []\n")  # no formatter run: offline, quick
    env = {key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")}
    proc = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", "openapi.json",
         "--meta", "none", "--output-path", PACKAGE, "--config", "config.yaml"],
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output, json.loads(body)


class DeferredAnnotations(importlib.machinery.SourceFileLoader):
    """Compiles as ``from __future__ import annotations`` would, i.e. annotations are not
    evaluated when a function is defined (as on Python 3.14, PEP 649). openapi-python-client
    0.29 annotates a body of several media types ``... | Unset`` without importing ``Unset``
    (its template's ``body_required`` is set inside a Jinja loop, so never seen outside it):
    evaluated at definition, on Python 3.11, that annotation fails the import."""

    def source_to_code(self, data: Any, path: Any, *, _optimize: int = -1) -> Any:
        return compile(data, path, "exec", flags=__future__.annotations.compiler_flag,
                       dont_inherit=True, optimize=_optimize)


class GeneratedPackage(importlib.abc.MetaPathFinder):
    """Finds the generated package's modules in ``root``, loaded by DeferredAnnotations."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.split(".")[0] != PACKAGE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path or [str(self.root)])
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            spec.loader = DeferredAnnotations(fullname, spec.origin)
        return spec


@pytest.fixture
def generated(operator: Operator, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any], Path]]:
    output, doc = generate(operator, tmp_path)
    finder = GeneratedPackage(tmp_path)
    sys.meta_path.insert(0, finder)
    try:
        yield output, doc, tmp_path / PACKAGE
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_lists_starts_reads_and_patches_vms(
        operator: Operator, generated: tuple[str, dict[str, Any], Path]) -> None:
    output, doc, package = generated
    assert "warning" not in output.lower(), output  # e.g. "duplicate models": PATCH skipped
    groups = {path.name for path in (package / "api").iterdir() if path.is_dir()}
    assert groups == {tag["name"] for tag in doc["tags"]} and "default" not in groups, groups
    operations = {operation["operationId"] for item in doc["paths"].values()
                  for operation in item.values()}
    made = {path.stem for path in (package / "api").rglob("*.py") if path.stem != "__init__"}
    assert len(made) == len(operations), sorted(made)  # every operation, each once

    client = module("client").Client(base_url=operator.url, raise_on_unexpected_status=True,
                                     timeout=60.0)
    vms = module("api.vms.list_vms").sync(client=client)
    assert set(LOCAL_VMS) <= {vm.name for vm in vms}, vms

    started = module("api.vms.start_vm").sync_detailed(name=SEQUOIA, client=client)
    assert started.status_code == 202, started.content
    assert started.parsed.state.value == "running", started.parsed

    detail = module("api.vms.get_vm").sync(name=SEQUOIA, client=client)
    assert type(detail).__name__ == "VMDetail", detail
    assert detail.name == SEQUOIA and detail.state.value == "running" and detail.running

    patch_body = module("models").PatchBody(cpu=6, memory_mb=8192)
    patched = module("api.vms.patch_vm").sync_detailed(name=SONOMA, client=client,
                                                       body=patch_body)
    assert patched.status_code == 200, patched.content
    assert (patched.parsed.cpu, patched.parsed.memory_mb) == (6, 8192), patched.parsed
    assert [call.argv for call in operator.calls("set")] == [
        ("set", SONOMA, "--cpu", "6", "--memory", "8192")]

    refused = module("api.vms.get_vm").sync_detailed(name="no-such-vm", client=client)
    assert refused.status_code == 404 and type(refused.parsed).__name__ == "Problem"
    assert refused.parsed.type_ == "/problems/vm-not-found", refused.parsed
