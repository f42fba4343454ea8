"""A module is one job a reader can hold in mind: no Python module of the package or of
scripts/ is over 400 lines; a longer one does more than one job, and is split by job."""

from __future__ import annotations

from support import REPO_ROOT

ROOT = REPO_ROOT
MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    modules = sorted([*(ROOT / "vm_operator").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")])
    assert modules
    long = {str(path.relative_to(ROOT)): lines for path in modules
            if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split by job: {long}"
