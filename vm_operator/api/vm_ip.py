"""A VM's IP address."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.params import int_param
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route


def vm_ip(app: App, req: Request) -> Response:
    wait = int_param(req, "wait", 0, 0, 120)
    name = req.params["name"]
    return json_response(200, {"name": name, "ip": app.service.ip(name, wait)})


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/vms/{name}/ip", vm_ip, ("wait",)),
)
