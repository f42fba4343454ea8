"""The VMs: the list, and one VM in detail."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.params import choice_param
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route
from vm_operator.tart.parse import SOURCES, STATES


def list_vms(app: App, req: Request) -> Response:
    state = choice_param(req, "state", STATES)
    source = choice_param(req, "source", SOURCES)
    vms = [
        vm
        for vm in app.service.list_vms()
        if (state is None or vm["state"] == state) and (source is None or vm["source"] == source)
    ]
    return json_response(200, vms)


def get_vm(app: App, req: Request) -> Response:
    return json_response(200, app.service.describe(req.params["name"]))


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/vms", list_vms, ("state", "source")),
    Route("GET", "/vms/{name}", get_vm),
)
