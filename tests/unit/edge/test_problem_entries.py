"""An entry of the problem catalogue is the whole declaration of a problem type: its slug,
status and words, the exceptions it answers, and what each adds to the document (members,
headers). Nothing else names a problem: no list of slugs, no isinstance chain in errors.py.
"""

from __future__ import annotations

import ast
import inspect
import itertools
from pathlib import Path
from typing import Any

import pytest
from support import REPO_ROOT

from vm_operator.core import errors as core_errors
from vm_operator.core.errors import OperatorError
from vm_operator.edge.errors import problem_for
from vm_operator.edge.problems import (
    CATALOGUE,
    Catalogue,
    ProblemType,
    Raised,
    client_errors,
    server_errors,
)
from vm_operator.edge.problems.entry import retry_after
from vm_operator.tart import errors as tart_errors
from vm_operator.tart.errors import TartError

PACKAGE = REPO_ROOT / "vm_operator"
ENTRY_MODULES = {client_errors: range(400, 500), server_errors: range(500, 600)}


def subclasses(base: type[Exception]) -> set[type[Exception]]:
    found: set[type[Exception]] = set()
    for sub in base.__subclasses__():
        found |= {sub} | subclasses(sub)
    return found


RAISABLE = sorted(subclasses(OperatorError) | subclasses(TartError) | {TartError},
                  key=lambda kind: kind.__name__)
_numbers = itertools.count(101)


def sample(kind: type[Exception]) -> tuple[Exception, dict[str, object]]:
    """An instance of ``kind``, each argument of its constructor a distinct value; and the
    arguments after the first (the detail or Tart's message): its typed extras."""
    params = list(inspect.signature(kind.__init__).parameters.values())[1:]
    args: dict[str, object] = {}
    for param in params:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        text = str(param.annotation)
        args[param.name] = next(_numbers) if text.startswith("int") else f"<{param.name}>"
    exc = kind(*args.values())
    first = next(iter(args), None)
    return exc, {name: value for name, value in args.items() if name != first}


# --- one entry is enough -------------------------------------------------------------------------


class Throttled(Exception):
    """An exception no entry of the real catalogue knows: a problem type to add (not an
    OperatorError, which every entry must answer)."""

    def __init__(self, detail: str, tenant: str, retry_after: int) -> None:
        super().__init__(detail)
        self.detail = detail
        self.tenant = tenant
        self.retry_after = retry_after


class ThrottledHard(Throttled):
    """A subclass: answered by its ancestor's entry, with what that entry declares."""


THROTTLED = ProblemType(
    "throttled", 429, "Throttled", "Too many requests of one tenant.", "Wait.",
    raised_by=(Raised(Throttled, members=lambda e: {"tenant": e.tenant}, headers=retry_after),),
)


@pytest.mark.parametrize("kind", [Throttled, ThrottledHard])
def test_a_new_entry_alone_declares_its_members_and_headers(kind: type[Throttled]) -> None:
    catalogue = Catalogue([*CATALOGUE, THROTTLED])
    exc: Any = kind("slow down", "acme", 30)  # problem_for takes anything with a detail
    error = problem_for(exc, catalogue)
    assert (error.slug, error.status, error.title) == ("throttled", 429, "Throttled")
    assert error.document() == {"type": "/problems/throttled", "title": "Throttled",
                                "status": 429, "detail": "slow down", "tenant": "acme"}
    assert error.headers == (("Retry-After", "30"),)
    assert problem_for(exc).slug == "internal-error"  # the real catalogue has no such entry


def test_a_class_is_raised_by_one_entry_and_a_slug_is_one_entry() -> None:
    other = ProblemType("throttled-again", 429, "t", "m", "r", raised_by=(Throttled,))
    with pytest.raises(ValueError, match="Throttled is raised by two entries"):
        Catalogue([THROTTLED, other])
    with pytest.raises(ValueError, match="two entries are 'throttled'"):
        Catalogue([THROTTLED, ProblemType("throttled", 503, "t", "m", "r")])


# --- the real catalogue --------------------------------------------------------------------------


def test_every_raised_class_maps_to_exactly_one_entry() -> None:
    kinds = [kind for problem in CATALOGUE for kind in problem.kinds]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) <= set(RAISABLE)
    unanswered = [kind.__name__ for kind in RAISABLE if CATALOGUE.problem_of(kind) is None]
    assert not unanswered


@pytest.mark.parametrize("kind", RAISABLE, ids=lambda kind: kind.__name__)
def test_every_typed_extra_of_an_exception_reaches_its_document(kind: type[Exception]) -> None:
    """What an exception carries besides its detail is a member of its document or a header,
    as its entry declares: an extra no entry declares fails here."""
    exc, extras = sample(kind)
    assert isinstance(exc, OperatorError | TartError)
    error = problem_for(exc)
    assert error.slug != "internal-error"
    shown = [*error.extra.values(), *(value for _, value in error.headers)]
    extras.pop("binary", None)  # TartUnavailable's binary only shapes the detail's advice
    missing = {name: value for name, value in extras.items()
               if value not in shown and str(value) not in shown}
    assert not missing, f"{kind.__name__}: {missing} are in no member and no header"


@pytest.mark.parametrize("kind", [kind for kind in RAISABLE
                                  if "retry_after" in inspect.signature(kind.__init__).parameters],
                         ids=lambda kind: kind.__name__)
def test_an_exception_with_a_retry_after_answers_with_retry_after(kind: type[Exception]) -> None:
    exc, extras = sample(kind)
    assert isinstance(exc, OperatorError | TartError)
    assert dict(problem_for(exc).headers) == {"Retry-After": str(extras["retry_after"])}


def test_the_exceptions_that_wait_are_the_three_queues() -> None:
    """Not vacuous: the retry test above sees the exceptions that carry a retry_after."""
    waiting = {kind for kind in RAISABLE
               if "retry_after" in inspect.signature(kind.__init__).parameters}
    assert {core_errors.VmBusy, core_errors.IpWaitersFull} <= waiting and len(waiting) == 3


def test_every_tart_refusal_carries_its_exit_code() -> None:
    refusals = [kind for kind in RAISABLE if issubclass(kind, tart_errors.TartCommandError)]
    assert len(refusals) > 5
    for kind in refusals:
        error = problem_for(kind("refused", 3))
        assert error.extra == {"tart_exit_code": 3}, kind.__name__


# --- where entries are declared ------------------------------------------------------------------


@pytest.mark.parametrize("module", ENTRY_MODULES, ids=lambda module: module.__name__)
def test_each_entry_is_bound_to_its_slug_in_capitals(module: object) -> None:
    entries = {name: value for name, value in vars(module).items()
               if isinstance(value, ProblemType)}
    assert entries
    wrong = [name for name, entry in entries.items()
             if name != entry.slug.upper().replace("-", "_")]
    assert not wrong


def test_the_catalogue_is_the_client_errors_then_the_server_errors_by_status() -> None:
    """The order of GET /problems and of /openapi.json's enum of slugs."""
    for module, statuses in ENTRY_MODULES.items():
        found = [value.status for value in vars(module).values() if isinstance(value, ProblemType)]
        assert all(status in statuses for status in found), module.__name__
    statuses = [problem.status for problem in CATALOGUE]
    assert statuses == sorted(statuses) and len(CATALOGUE) == len(set(CATALOGUE))


def test_problem_types_are_built_only_in_the_entry_modules() -> None:
    """So every ProblemType the code can pass to ApiError is an entry of the catalogue."""
    allowed = {Path(module.__file__ or "") for module in ENTRY_MODULES}
    builders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "ProblemType" and path not in allowed):
                builders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not builders
    assert sum(1 for module in ENTRY_MODULES
               for value in vars(module).values() if isinstance(value, ProblemType)) == len(CATALOGUE)
