"""Problem documents (RFC 9457): the edge's own refusals, and every other failure mapped to
its entry in the catalogue (problems.py). Every problem document is built by ``ApiError.response``.
"""

from __future__ import annotations

from vm_operator.core.errors import (
    ConfigRefused,
    IpWaitersFull,
    OperationsFull,
    OperatorError,
    ReadyTimeout,
    StateDirUnwritable,
    VmBusy,
    VmHeldByOperation,
    VmLimit,
)
from vm_operator.edge.problems import PROBLEMS, ProblemType, Slug, problem_of
from vm_operator.edge.responses import PROBLEM_JSON, Response, encode_json
from vm_operator.tart.errors import TartCommandError, TartError


class ApiError(Exception):
    """A request that cannot be served: a problem type of the catalogue, what happened
    (``detail``), the response headers it needs and any extra members of the document.

    The status and the title are the catalogue's, so one type always has one of each.
    """

    def __init__(self, slug: Slug, detail: str, headers: tuple[tuple[str, str], ...] = (),
                 **extra: object) -> None:
        super().__init__(detail)
        self.problem: ProblemType = PROBLEMS[slug]
        self.slug = slug
        self.status = self.problem.status
        self.title = self.problem.title
        self.detail = detail
        self.headers = headers
        self.extra = extra

    def document(self) -> dict[str, object]:
        """The problem document (RFC 9457) as JSON-ready data."""
        return {"type": self.problem.uri, "title": self.title, "status": self.status,
                "detail": self.detail, **self.extra}

    def response(self) -> Response:
        """The problem document, as ``application/problem+json``."""
        return Response(self.status, encode_json(self.document()), PROBLEM_JSON, self.headers)


def problem_for(exc: OperatorError | TartError) -> ApiError:
    """The problem a failure of the core or of the Tart adapter answers: the catalogue entry
    of its most specific class, with the detail, headers and extras the exception carries."""
    problem = problem_of(type(exc))
    if problem is None:  # a class the catalogue lacks: a bug, which a unit test rules out
        return ApiError("internal-error", "the operator failed; see its log")
    return ApiError(problem.slug, exc.detail, _headers(exc), **_extra(exc))


def _headers(exc: Exception) -> tuple[tuple[str, str], ...]:
    if isinstance(exc, VmBusy | OperationsFull | IpWaitersFull):
        return (("Retry-After", str(exc.retry_after)),)
    return ()


def _extra(exc: Exception) -> dict[str, object]:
    """Typed extras of an exception, as members of its problem document."""
    if isinstance(exc, TartCommandError):
        return {"tart_exit_code": exc.exit_code}
    if isinstance(exc, VmLimit):
        return {"limit": exc.limit}
    if isinstance(exc, StateDirUnwritable):
        return {"state_dir": exc.path}
    if isinstance(exc, VmHeldByOperation):
        return {"operation": exc.operation}
    if isinstance(exc, ReadyTimeout):
        return {"waiting_for": exc.waiting_for, "ip": exc.ip, "port": exc.port}
    if isinstance(exc, ConfigRefused):
        return {"line": exc.line, "key": exc.key}
    return {}
