"""Problem documents (RFC 9457): the edge's own refusals, and every other failure mapped to
its entry in the catalogue (problems/). Every problem document is built by ``ApiError.response``.
"""

from __future__ import annotations

from vm_operator.core.errors import OperatorError
from vm_operator.edge.problems import CATALOGUE, Catalogue, ProblemType
from vm_operator.edge.problems.server_errors import INTERNAL_ERROR
from vm_operator.edge.responses import PROBLEM_JSON, Response, encode_json
from vm_operator.tart.errors import TartError


class ApiError(Exception):
    """A request that cannot be served: a problem type of the catalogue, what happened
    (``detail``), the response headers it needs and any extra members of the document.

    The status and the title are the catalogue's, so one type always has one of each.
    """

    def __init__(self, problem: ProblemType, detail: str,
                 headers: tuple[tuple[str, str], ...] = (), **extra: object) -> None:
        super().__init__(detail)
        self.problem = problem
        self.slug = problem.slug
        self.status = problem.status
        self.title = problem.title
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


def problem_for(exc: OperatorError | TartError, catalogue: Catalogue = CATALOGUE) -> ApiError:
    """The problem a failure of the core or of the Tart adapter answers: the catalogue entry
    of its most specific class, with the detail, and the members and headers its entry
    declares for it."""
    answer = catalogue.answer(exc)
    if answer is None:  # a class the catalogue lacks: a bug, which a unit test rules out
        return ApiError(INTERNAL_ERROR, "the operator failed; see its log")
    return ApiError(answer.problem, exc.detail, answer.headers, **answer.members)
