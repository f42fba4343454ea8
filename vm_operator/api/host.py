"""The host: what a scheduler checks before it creates a VM."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.problems import TART_FAILURES
from vm_operator.api.schemas import ref
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route, Success


def host(app: App, req: Request) -> Response:
    return json_response(200, app.service.host.describe())


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/host", host,
          "Tart's version and home, its disk's free space, macOS guests running against the "
          "limit, operations running and queued", "getHost",
          ok=(Success(200, "The host", ref("Host")),), problems=TART_FAILURES),
)
