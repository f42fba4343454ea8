"""The operator itself: health and readiness probes, metrics, and its documentation."""

from __future__ import annotations

from vm_operator import __version__
from vm_operator.api.app import App
from vm_operator.core.clock import utc_now
from vm_operator.edge.errors import ApiError, api_error_for
from vm_operator.edge.problems import CATALOGUE, index_page, problem_page
from vm_operator.edge.responses import HTML, Response, json_response, problem
from vm_operator.edge.routing import Request, Route
from vm_operator.tart.errors import TartError


def health(app: App, req: Request) -> Response:
    tart = app.service.tart_status()
    healthy = tart["available"]
    return json_response(
        200,
        {
            "status": "healthy" if healthy else "degraded",
            "message": "vm-operator is serving"
            if healthy
            else f"vm-operator is serving, but Tart cannot be run ({tart['path']})",
            "timestamp": utc_now(),
            "version": __version__,
            "tart": tart,
        },
    )


def ready(app: App, req: Request) -> Response:
    try:
        vms = app.service.list_vms()
    except TartError as exc:
        error = api_error_for(exc)
        return problem(503, "not-ready", "Not ready", f"tart list fails: {error.detail}")
    return json_response(200, {"status": "ready", "vms": len(vms)})


def openapi(app: App, req: Request) -> Response:
    return json_response(200, app.openapi())


def metrics(app: App, req: Request) -> Response:
    service = app.service
    text = app.metrics.render(vms=service.cached_vms(), tart_runs=service.running_runs())
    return Response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")


# The pages are fixed text: built once. They load nothing, so they may forbid everything.
_PAGE_HEADERS = (("Content-Security-Policy", "default-src 'none'"),)
_PROBLEM_INDEX = index_page()
_PROBLEM_PAGES = {problem.slug: problem_page(problem) for problem in CATALOGUE}


def problem_index(app: App, req: Request) -> Response:
    return Response(200, _PROBLEM_INDEX, HTML, _PAGE_HEADERS)


def problem_doc(app: App, req: Request) -> Response:
    """The documentation of a problem type: what a problem document's ``type`` resolves to."""
    slug = req.params["slug"]
    page = _PROBLEM_PAGES.get(slug)
    if page is None:
        raise ApiError(404, "unknown-problem", "No such problem type",
                       f"there is no problem type {slug[:80]!r}; see GET /problems")
    return Response(200, page, HTML, _PAGE_HEADERS)


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/health", health, public=True),
    Route("GET", "/ready", ready, public=True),
    Route("GET", "/openapi.json", openapi),
    Route("GET", "/metrics", metrics),
    Route("GET", "/problems", problem_index, public=True),
    Route("GET", "/problems/{slug}", problem_doc, public=True),
)
