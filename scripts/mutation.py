#!/usr/bin/env python3
"""Mutation testing of the pure modules with mutmut (README "Tests", docs/mutation.md).

    .venv/bin/python -m pip install 'mutmut>=3.8,<4'     # once (pyproject's "mutation" extra)
    .venv/bin/python scripts/mutation.py                 # every module below, one at a time
    .venv/bin/python scripts/mutation.py body fleet      # some of them
    .venv/bin/python scripts/mutation.py --report        # the last results, nothing run
    .venv/bin/python scripts/mutation.py --survivors body  # only the last run's survivors again

mutmut (configured in pyproject's [tool.mutmut]) copies the package to ``mutants/``, plants one
small bug at a time in a module's functions (a changed operator, constant, string, argument)
and runs the unit tests that call that function (pyproject's test selection: the unit test
modules of these five modules; mutmut maps each function to the tests that reach it). A bug
no test notices is a *survivor*: a missing test, or an *equivalent* mutant (one that changes
no behaviour). Each survivor must be killed by a test or listed, with why it is equivalent,
in docs/mutation.md; the exit status is 1 while one is neither.

One module at a time with one test process (``--max-children 1``): a module takes a few
minutes on a loaded 2-core machine. Only the reconciler's pure rules are mutated
(``core/reconcile_rules.py``), not the threaded ``Reconciler`` class. mutmut leaves functions with
decorators alone (``host_allowed``'s ``lru_cache``, properties).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPLAINED = ROOT / "docs" / "mutation.md"


@dataclass(frozen=True)
class Target:
    path: str  # the source file, as pyproject's only_mutate names it
    mutants: str  # mutmut's glob over mutant names: the functions mutated

    @property
    def meta(self) -> Path:
        return ROOT / "mutants" / (self.path + ".meta")


TARGETS = {
    "body": Target("vm_operator/edge/body.py", "vm_operator.edge.body.*"),
    "security": Target("vm_operator/edge/security.py", "vm_operator.edge.security.*"),
    "fleet": Target("vm_operator/core/fleet.py", "vm_operator.core.fleet.*"),
    # x_NAME: a module-level function (a method is xǁClassǁNAME): the pure rules only
    "reconciler": Target("vm_operator/core/reconcile_rules.py",
                         "vm_operator.core.reconcile_rules.x_*"),
    "routing": Target("vm_operator/edge/routing.py", "vm_operator.edge.routing.*"),
}

KILLED = {1, 3}  # a test failed (3: pytest's internal error, a kill too)
TIMEOUT = {36, 24, -24, 152, 255}  # the tests hung or spun: noticed, counted as killed
STATUS = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 37: "type check",
          2: "interrupted"}


def status(code: int | None) -> str:
    if code is None:
        return "not checked"
    if code in KILLED:
        return "killed"
    if code in TIMEOUT:
        return "timeout"
    return STATUS.get(code, "suspicious")


def results(target: Target) -> dict[str, str]:
    """Each mutant of the target and its status, from mutmut's record of the last run."""
    try:
        meta = json.loads(target.meta.read_text())
    except FileNotFoundError:
        return {}
    codes: dict[str, int | None] = meta["exit_code_by_key"]
    return {name: status(code) for name, code in sorted(codes.items())
            if fnmatch.fnmatch(name, target.mutants)}


def explained() -> set[str]:
    """The mutant names docs/mutation.md lists as equivalent."""
    try:
        text = EXPLAINED.read_text()
    except FileNotFoundError:
        return set()
    return set(re.findall(r"`(vm_operator\.[^`\s]+__mutmut_\d+)`", text))


def run(name: str, target: Target, survivors: bool = False) -> int:
    """mutmut over the target's mutants (``survivors``: only those that survived last time or
    that no test reached, e.g. to check the tests written to kill them)."""
    log = ROOT / "mutants" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    mutants = [target.mutants]
    if survivors:
        mutants = [mutant for mutant, s in results(target).items()
                   if s in ("survived", "no tests")]
        if not mutants:
            return 0
    print(f"==> mutmut run {target.mutants}{' (survivors)' if survivors else ''} "
          f"(output: {log.relative_to(ROOT)})", flush=True)
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", "1",
                               *mutants], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    return done.returncode


def report(names: list[str]) -> int:
    equivalent = explained()
    unexplained: list[str] = []
    print(f"{'module':<11} {'killed':>6} {'timeout':>7} {'explained':>9} {'survived':>8} "
          f"{'other':>5} {'total':>5}  score")
    for name in names:
        found = results(TARGETS[name])
        counts = {kind: sum(1 for s in found.values() if s == kind)
                  for kind in ("killed", "timeout", "survived", "not checked")}
        survivors = [mutant for mutant, s in found.items() if s == "survived"]
        equiv = sum(1 for mutant in survivors if mutant in equivalent)
        other = len(found) - sum(counts.values())
        detected = counts["killed"] + counts["timeout"]
        score = f"{detected}/{len(found)} killed" if found else "not run"
        if found and equiv:
            score += f", {detected}/{len(found) - equiv} without the explained"
        if counts["not checked"]:
            score += f" ({counts['not checked']} not run yet)"
        print(f"{name:<11} {counts['killed']:>6} {counts['timeout']:>7} {equiv:>9} "
              f"{counts['survived'] - equiv:>8} {other:>5} {len(found):>5}  {score}")
        unexplained += [mutant for mutant in survivors if mutant not in equivalent]
        unexplained += [f"{mutant} ({s})" for mutant, s in found.items()
                        if s not in ("killed", "timeout", "survived", "not checked")]
    if unexplained:
        print("\nSurvivors neither killed nor explained in docs/mutation.md, and mutants no "
              "test reaches (see one with: .venv/bin/mutmut show NAME):")
        for mutant in unexplained:
            print(f"  {mutant}")
        return 1
    return 0


def markdown(names: list[str]) -> None:
    """The score table of docs/mutation.md, from the last run."""
    equivalent = explained()
    for name in names:
        target = TARGETS[name]
        found = results(target)
        detected = sum(1 for s in found.values() if s in ("killed", "timeout"))
        equiv = sum(1 for m, s in found.items() if s == "survived" and m in equivalent)
        other = len(found) - detected - equiv
        print(f"| `{target.path}` | {detected} | {equiv} | {other} | {len(found)} | "
              f"{detected}/{len(found)} ({detected}/{len(found) - equiv} without the explained) |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", choices=[*TARGETS, []], metavar="MODULE",
                        help=f"some of: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--report", action="store_true", help="report the last run only")
    parser.add_argument("--markdown", action="store_true",
                        help="print the last run's score as docs/mutation.md's table")
    parser.add_argument("--survivors", action="store_true",
                        help="run only the mutants that survived the last run")
    args = parser.parse_args(argv)
    names = args.modules or list(TARGETS)
    if args.markdown:
        markdown(names)
        return 0
    if not args.report:
        for name in names:
            if run(name, TARGETS[name], args.survivors) != 0:
                print(f"mutmut failed on {name}: see mutants/{name}.log", file=sys.stderr)
                return 2
    return report(names)


if __name__ == "__main__":
    sys.exit(main())
