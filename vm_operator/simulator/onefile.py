"""The simulator packed as one executable file (a zip application of this package), for a host
that has no vm_operator: the SSH tests' host runs it as its `tart`.

``build(target)`` writes it; run it as ``python3 [-S] TARGET ARGS`` (stdlib only). The package
inside is renamed ``tart_simulator``, which its relative imports do not notice.
"""

from __future__ import annotations

import shutil
import tempfile
import zipapp
from pathlib import Path

_MAIN = "import sys\n\nfrom tart_simulator.cli import main\n\nsys.exit(main())\n"


def build(target: Path) -> Path:
    """Write the simulator as one file at ``target`` (made executable) and return it."""
    package = Path(__file__).resolve().parent
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tart-simulator-") as staging:
        root = Path(staging)
        shutil.copytree(package, root / "tart_simulator",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "onefile.py",
                                                      "__main__.py"))
        (root / "__main__.py").write_text(_MAIN)
        zipapp.create_archive(root, target, interpreter="/usr/bin/env python3")
    target.chmod(0o755)
    return target
