"""What one entry of the catalogue is: a problem type, and the exceptions it answers with what
each adds to its documents (pure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

PROBLEM_BASE = "/problems/"  # a problem's type is PROBLEM_BASE + slug: a page the operator serves

E = TypeVar("E", bound=Exception)
Members = dict[str, object]  # extra members of a problem document (RFC 9457, section 3.2)
Headers = tuple[tuple[str, str], ...]  # response headers that go with a problem document


def no_members(exc: Exception) -> Members:
    return {}


def no_headers(exc: Exception) -> Headers:
    return ()


@dataclass(frozen=True)
class Raised(Generic[E]):
    """An exception class an entry answers, and what an instance adds to the problem document:
    ``members`` (its typed extras, as members) and ``headers``. A subclass adds what its
    catalogued ancestors add too (every Tart refusal carries ``tart_exit_code``)."""

    kind: type[E]
    members: Callable[[E], Members] = no_members
    headers: Callable[[E], Headers] = no_headers


@dataclass(frozen=True)
class ProblemType:
    """One problem type: its slug (the last segment of its ``type``), its one status and title,
    its page (what it means, what to do), and the exceptions of the core and of the Tart
    adapter it answers (a bare class adds nothing to the document)."""

    slug: str
    status: int
    title: str
    meaning: str  # what happened
    remedy: str  # what to do about it
    raised_by: tuple[type[Exception] | Raised[Any], ...] = ()

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug

    @property
    def answers(self) -> tuple[Raised[Any], ...]:
        """``raised_by``, each class as a ``Raised``."""
        return tuple(kind if isinstance(kind, Raised) else Raised(kind)
                     for kind in self.raised_by)

    @property
    def kinds(self) -> tuple[type[Exception], ...]:
        """The exception classes it answers."""
        return tuple(answer.kind for answer in self.answers)


class Retrying(Protocol):
    @property
    def retry_after(self) -> int: ...  # seconds


def retry_after(exc: Retrying) -> Headers:
    """``Retry-After``: the seconds the exception says to wait before asking again."""
    return (("Retry-After", str(exc.retry_after)),)
