"""The operator itself: health and readiness probes, metrics, and its documentation."""

from __future__ import annotations

import html
from typing import TypedDict

from vm_operator import __version__
from vm_operator.api.app import App
from vm_operator.api.params import SLUG
from vm_operator.api.schemas import OBJECT, TEXT, ref
from vm_operator.core.clock import utc_now
from vm_operator.core.errors import NotReady
from vm_operator.core.records import TartStatus
from vm_operator.edge.errors import ApiError
from vm_operator.edge.metrics import EventFigures
from vm_operator.edge.problems import CATALOGUE, ProblemType
from vm_operator.edge.problems.client_errors import UNKNOWN_PROBLEM
from vm_operator.edge.responses import HTML, Response, json_response, with_first_field
from vm_operator.edge.routing import Request, Route, Success
from vm_operator.tart.errors import unavailable_advice


class HealthSummary(TypedDict):
    """What a caller that is not trusted (a foreign Host, no token) is told: DNS rebinding
    would let a web page read the rest."""

    status: str  # "healthy", or "degraded" when Tart cannot be run


class HealthFacts(HealthSummary):
    """What a trusted caller is told, but the time of the answer (``timestamp``, put first)."""

    message: str
    version: str
    tart: TartStatus


class Health(HealthFacts):
    """The answer to a trusted caller (``schemas.Health``): the facts, and the time of the
    answer put first."""

    timestamp: str


class ReadyStatus(TypedDict):
    status: str


class Ready(ReadyStatus):
    vms: int


def health(app: App, req: Request) -> Response:
    tart = app.service.tart_status()
    healthy = tart["available"]
    status = "healthy" if healthy else "degraded"
    if not req.trusted:
        terse: HealthSummary = {"status": status}
        return Response(200, app.rendered.json("/health?terse", terse).body)
    facts: HealthFacts = {
        "status": status,
        "message": "vm-operator is serving"
        if healthy
        else f"vm-operator is serving, but Tart cannot be run ({tart['path']}). "
        f"{unavailable_advice(tart['path'])}",
        "version": __version__,
        "tart": tart,
    }
    # the facts are encoded once per change (probes poll them), the time on every answer
    body = with_first_field(app.rendered.json("/health", facts).body, "timestamp", utc_now())
    return Response(200, body)


def ready(app: App, req: Request) -> Response:
    try:
        vms = app.service.ready()
    except NotReady:
        if req.trusted:
            raise
        raise NotReady(UNTRUSTED) from None
    if not req.trusted:
        terse: ReadyStatus = {"status": "ready"}
        return json_response(200, terse)
    answer: Ready = {"status": "ready", "vms": vms}
    return json_response(200, answer)


UNTRUSTED = ("Tart cannot list the VMs; why is told to a request whose Host is the operator's "
             "address (an IP address, localhost or VM_OPERATOR_ALLOWED_HOSTS) or that carries a "
             "token")
TRUSTED_ONLY = (" A request whose Host is neither an IP address, localhost nor in "
                "VM_OPERATOR_ALLOWED_HOSTS, and that carries no valid token, gets the status only "
                "(DNS rebinding must not let a web page read more).")


def openapi(app: App, req: Request) -> Response:
    return json_response(200, app.openapi())


def metrics(app: App, req: Request) -> Response:
    service = app.service
    queue = service.operations.stats()
    published, dropped = service.events.counts()
    figures = EventFigures(published, dropped, service.events.watchers(), service.poller.looks)
    text = app.metrics.render(vms=service.cached_vms(), tart_runs=service.running_runs(),
                              operations=(queue.running, queue.queued), events=figures)
    return Response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")


# --- the documentation of the problem types (pure) --------------------------------------------


def _page(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title></head>\n<body>\n{body}</body>\n</html>\n"
    ).encode()


def problem_page(problem: ProblemType) -> bytes:
    """The documentation of one problem type: what its title, status, meaning and remedy are."""
    e = html.escape
    return _page(
        problem.title,
        f"<h1>{e(problem.title)}</h1>\n"
        f"<p>Problem type <code>{e(problem.slug)}</code>, HTTP status {problem.status}.</p>\n"
        f"<h2>What it means</h2>\n<p>{e(problem.meaning)}</p>\n"
        f"<h2>What to do</h2>\n<p>{e(problem.remedy)}</p>\n"
        "<p><a href=\"/problems\">All problem types</a></p>\n",
    )


def index_page() -> bytes:
    """Every problem type, with its status and a link to its page."""
    e = html.escape
    rows = "".join(
        f"<li><a href=\"{e(p.uri)}\"><code>{e(p.slug)}</code></a> ({p.status}): {e(p.title)}</li>\n"
        for p in CATALOGUE
    )
    return _page(
        "vm-operator problem types",
        "<h1>vm-operator problem types</h1>\n"
        "<p>Every error of the API is an RFC 9457 problem document whose <code>type</code> "
        "is one of these.</p>\n"
        f"<ul>\n{rows}</ul>\n",
    )


# The pages are fixed text: built once. They load nothing, so they may forbid everything.
_PAGE_HEADERS = (("Content-Security-Policy", "default-src 'none'"),)
_PROBLEM_INDEX = index_page()
_PROBLEM_PAGES: dict[str, bytes] = {problem.slug: problem_page(problem) for problem in CATALOGUE}


def problem_index(app: App, req: Request) -> Response:
    return Response(200, _PROBLEM_INDEX, HTML, _PAGE_HEADERS)


def problem_doc(app: App, req: Request) -> Response:
    """The documentation of a problem type: what a problem document's ``type`` resolves to."""
    slug = req.get(SLUG)
    page = _PROBLEM_PAGES.get(slug)
    if page is None:
        raise ApiError(UNKNOWN_PROBLEM, f"there is no problem type {slug[:80]!r}; see GET /problems")
    return Response(200, page, HTML, _PAGE_HEADERS)


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/health", health, "Liveness: 200 while the process serves", "getHealth",
          ok=(Success(200, "Serving." + TRUSTED_ONLY,
                      {"oneOf": [ref("Health"), ref("HealthSummary")]}),), public=True),
    Route("GET", "/ready", ready, "Readiness: whether tart list works", "getReady",
          ok=(Success(200, "Ready: status and the number of VMs." + TRUSTED_ONLY, OBJECT),),
          problems=(NotReady,), public=True),
    Route("GET", "/openapi.json", openapi, "This document", "getOpenApi",
          ok=(Success(200, "OpenAPI", OBJECT),)),
    Route("GET", "/metrics", metrics, "Prometheus metrics (text format 0.0.4)", "getMetrics",
          ok=(Success(200, "Metrics", TEXT, "text/plain"),)),
    Route("GET", "/problems", problem_index, "Every problem type, with its status and title",
          "listProblems", ok=(Success(200, "The index of problem types", TEXT, "text/html"),),
          public=True),
    Route("GET", "/problems/{slug}", problem_doc,
          "The documentation of one problem type (a problem's type URI)", "getProblem",
          path=(SLUG,),
          ok=(Success(200, "What the problem means and what to do", TEXT, "text/html"),),
          problems=(UNKNOWN_PROBLEM,), public=True),
)
