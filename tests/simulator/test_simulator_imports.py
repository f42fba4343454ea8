"""A simulator call loads the modules its subcommand needs, not every command's: Tart is one
native binary that starts in milliseconds, and the operator runs ``tart list`` often."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO_ROOT

# the simulator's entry point, then the names of the simulator's modules it loaded
RUN_AND_TELL = """\
import sys
from vm_operator.simulator.cli import main
code = main(sys.argv[1:])
import json
sys.stderr.write(json.dumps(sorted(n for n in sys.modules if n.startswith("vm_operator."))))
"""


def loaded(tmp_path: Path, *argv: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TART")}
    env.update({"TART_HOME": str(tmp_path / "tart"), "TART_SIM_SEED": "demo",
                "PYTHONPATH": str(REPO_ROOT)})
    done = subprocess.run([sys.executable, "-c", RUN_AND_TELL, *argv], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    names: list[str] = json.loads(done.stderr.splitlines()[-1])
    return set(names)


@pytest.mark.parametrize(("argv", "needs", "never"), [
    (("list", "--format", "json"), "listing", {"lifecycle", "power"}),
    (("get", "ubuntu-runner", "--format", "json"), "listing", {"lifecycle", "power"}),
    (("clone", "ubuntu-runner", "copy"), "lifecycle", {"power"}),
])
def test_a_call_loads_the_module_of_its_subcommand_and_not_the_others(
        tmp_path: Path, argv: tuple[str, ...], needs: str, never: set[str]) -> None:
    modules = loaded(tmp_path, *argv)
    assert f"vm_operator.simulator.{needs}" in modules
    assert not modules & {f"vm_operator.simulator.{name}" for name in never}
