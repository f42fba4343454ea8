"""The output of a VM's ``tart run``."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.params import NAME, TAIL
from vm_operator.api.schemas import TEXT
from vm_operator.core.errors import NoLogs, OciImage, StateDirUnwritable
from vm_operator.edge.responses import Response, text_response
from vm_operator.edge.routing import Request, Route, Success

LOG_HEADERS = "Vm-Operator-Log-Truncated, Vm-Operator-Log-Omitted-Bytes"
THE_LOG = Success(200, "The log", TEXT, "text/plain", headers={
    "Vm-Operator-Log-Truncated": {
        "description": "true when the 4 MiB limit cut what was asked for (the whole log, or N "
                       "lines)",
        "schema": {"enum": ["true", "false"]}},
    "Vm-Operator-Log-Omitted-Bytes": {
        "description": "Bytes of the log before the answer",
        "schema": {"type": "integer", "minimum": 0}},
})


def vm_logs(app: App, req: Request) -> Response:
    """The end of the run log (at most state.LOG_TAIL_BYTES, from a line boundary), or its
    last ``?tail=N`` lines; the headers say whether that limit cut the answer."""
    tail = app.service.logs(req.get(NAME), req.optional(TAIL))
    return text_response(200, tail.data).with_headers(
        ("Vm-Operator-Log-Truncated", "true" if tail.truncated else "false"),
        ("Vm-Operator-Log-Omitted-Bytes", str(tail.omitted)),
        ("Access-Control-Expose-Headers", LOG_HEADERS),  # for a browser app (CORS)
    )


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/vms/{name}/logs", vm_logs,
          "Output of the last tart run the operator started (its last 4 MiB at most, from a "
          "line boundary)", "getVmLogs", path=(NAME,), query=(TAIL,), ok=(THE_LOG,),
          problems=(NoLogs, OciImage, StateDirUnwritable)),
)
