"""The catalogue of problem types: every ``type`` a problem document can carry, in one place.

A problem's ``type`` is the relative URI ``/problems/{slug}``; the operator serves a page
for each (``GET /problems/{slug}``, and an index at ``GET /problems``), so the type
resolves against the request URI to its documentation (RFC 9457, section 3.1.1).
The ``title`` and ``status`` of every problem document come from here too: one title per
type, the same on every occurrence, as RFC 9457 asks.

This is the one table of errors. Its entries are the ``ProblemType`` constants of
``client_errors.py`` (4xx) and ``server_errors.py`` (5xx), collected here in that order; each
names the exceptions of the core and of the Tart adapter it answers (``raised_by``; the most
specific class wins) and what an instance adds to its document (``Raised``: members, headers).
The entries without are the edge's own refusals: ``errors.ApiError`` takes an entry, never a
string, so every problem the code builds is one of these (mypy checks each ``ApiError``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from vm_operator.edge.problems import client_errors, server_errors
from vm_operator.edge.problems.entry import PROBLEM_BASE, Headers, Members, ProblemType, Raised

__all__ = ["CATALOGUE", "PROBLEMS", "PROBLEM_BASE", "RAISED", "Answer", "Catalogue",
           "ProblemType", "Raised", "entries_of", "problem_of"]


@dataclass(frozen=True)
class Answer:
    """What answers one exception: its entry, and the members and headers it adds."""

    problem: ProblemType
    members: Members
    headers: Headers


class Catalogue(Collection[ProblemType]):
    """Entries, found by slug and by exception class; iterating gives them in order."""

    def __init__(self, entries: Iterable[ProblemType]) -> None:
        self.entries = tuple(entries)
        self.by_slug: dict[str, ProblemType] = {}
        self.raised: dict[type[Exception], tuple[ProblemType, Raised[Any]]] = {}
        for problem in self.entries:
            if self.by_slug.setdefault(problem.slug, problem) is not problem:
                raise ValueError(f"two entries are {problem.slug!r}")
            for raised in problem.answers:
                if self.raised.setdefault(raised.kind, (problem, raised))[0] is not problem:
                    raise ValueError(f"{raised.kind.__name__} is raised by two entries")

    def __iter__(self) -> Iterator[ProblemType]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, problem: object) -> bool:
        return problem in self.entries

    def problem_of(self, kind: type[Exception]) -> ProblemType | None:
        """The entry that answers an exception class: that of its most specific catalogued
        class."""
        return next((self.raised[cls][0] for cls in kind.__mro__ if cls in self.raised), None)

    def answer(self, exc: Exception) -> Answer | None:
        """The entry that answers ``exc``, with the members and headers that its class and its
        catalogued ancestors declare (the ancestors' first); None when no entry does."""
        found = [self.raised[cls] for cls in type(exc).__mro__ if cls in self.raised]
        if not found:
            return None
        members: Members = {}
        headers: Headers = ()
        for _, raised in reversed(found):
            members.update(raised.members(exc))
            headers += raised.headers(exc)
        return Answer(found[0][0], members, headers)


def entries_of(*modules: ModuleType) -> list[ProblemType]:
    """The ``ProblemType`` constants of the modules, in the order they are defined."""
    return [value for module in modules for value in vars(module).values()
            if isinstance(value, ProblemType)]


CATALOGUE = Catalogue(entries_of(client_errors, server_errors))
PROBLEMS: dict[str, ProblemType] = CATALOGUE.by_slug
RAISED: dict[type[Exception], ProblemType] = {
    kind: problem for kind, (problem, _) in CATALOGUE.raised.items()
}


def problem_of(kind: type[Exception]) -> ProblemType | None:
    """The entry that answers an exception class: that of its most specific catalogued class."""
    return CATALOGUE.problem_of(kind)
