"""The output of a VM's ``tart run``."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.params import int_param
from vm_operator.edge.responses import Response, text_response
from vm_operator.edge.routing import Request, Route
from vm_operator.store.state import LOG_TAIL_LINES_MAX

LOG_HEADERS = "Vm-Operator-Log-Truncated, Vm-Operator-Log-Omitted-Bytes"


def vm_logs(app: App, req: Request) -> Response:
    """The end of the run log (at most state.LOG_TAIL_BYTES, from a line boundary), or its
    last ``?tail=N`` lines; the headers say whether that limit cut the answer."""
    lines = int_param(req, "tail", 0, 1, LOG_TAIL_LINES_MAX) if "tail" in req.query else None
    tail = app.service.logs(req.params["name"], lines)
    return text_response(200, tail.data).with_headers(
        ("Vm-Operator-Log-Truncated", "true" if tail.truncated else "false"),
        ("Vm-Operator-Log-Omitted-Bytes", str(tail.omitted)),
        ("Access-Control-Expose-Headers", LOG_HEADERS),  # for a browser app (CORS)
    )


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/vms/{name}/logs", vm_logs, ("tail",)),
)
