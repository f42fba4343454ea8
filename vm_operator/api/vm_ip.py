"""A VM's IP address."""

from __future__ import annotations

from typing import TypedDict

from vm_operator.api.app import App
from vm_operator.api.params import NAME, WAIT
from vm_operator.api.problems import TART_FAILURES
from vm_operator.core.errors import IpWaitersFull, NotRunning, OciImage, VmNotFound
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route, Success
from vm_operator.tart.errors import TartNoIp, TartNotRunning

ADDRESS = {"type": "object", "required": ["name", "ip"],
           "properties": {"name": {"type": "string"}, "ip": {"type": "string"}}}


class Address(TypedDict):
    name: str
    ip: str


def vm_ip(app: App, req: Request) -> Response:
    name = req.get(NAME)
    answer: Address = {"name": name, "ip": app.service.ip(name, req.get(WAIT))}
    return json_response(200, answer)


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/vms/{name}/ip", vm_ip,
          "The VM's IP address (tart ip --wait W, only while it runs; concurrent requests for "
          "one VM share one tart ip, and few run at once)", "getVmIp",
          path=(NAME,), query=(WAIT,), ok=(Success(200, "Its address", ADDRESS),),
          problems=(VmNotFound, OciImage, NotRunning, TartNotRunning, TartNoIp, IpWaitersFull,
                    *TART_FAILURES)),
)
