"""Start, stop and suspend a VM."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.params import bool_param, int_param
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route


def start_vm(app: App, req: Request) -> Response:
    vm = app.service.start(req.params["name"], bool_param(req, "suspendable"))
    return json_response(202 if vm["changed"] else 200, vm)


def stop_vm(app: App, req: Request) -> Response:
    timeout = int_param(req, "timeout", 30, 0, 300)
    return json_response(200, app.service.stop(req.params["name"], timeout))


def suspend_vm(app: App, req: Request) -> Response:
    return json_response(200, app.service.suspend(req.params["name"]))


ROUTES: tuple[Route[App], ...] = (
    Route("POST", "/vms/{name}/start", start_vm, ("suspendable",)),
    Route("POST", "/vms/{name}/stop", stop_vm, ("timeout",)),
    Route("POST", "/vms/{name}/suspend", suspend_vm),
)
