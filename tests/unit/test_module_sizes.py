"""A module is one job a reader can hold in mind: no module of the package is over 400 lines.

Packages are listed here as they are brought under the bound; the edge (the HTTP server, the
router and the problem catalogue) is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "vm_operator"
MAX_LINES = 400
BOUNDED = ["edge"]


@pytest.mark.parametrize("package", BOUNDED)
def test_no_module_is_over_400_lines(package: str) -> None:
    modules = sorted((PACKAGE / package).rglob("*.py"))
    assert modules
    long = {str(path.relative_to(PACKAGE)): lines for path in modules
            if (lines := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long
