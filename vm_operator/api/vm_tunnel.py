"""A tunnel to a guest's TCP port: ``GET /vms/{name}/port-forward?port=N``, a WebSocket."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.params import NAME
from vm_operator.api.problems import TART_FAILURES
from vm_operator.core.errors import IpWaitersFull, NotRunning, OciImage, TunnelsFull, VmNotFound
from vm_operator.core.tunnels import MAX_TUNNELS
from vm_operator.edge.authz import Role
from vm_operator.edge.params import Int
from vm_operator.edge.problems.client_errors import UPGRADE_REQUIRED
from vm_operator.edge.responses import Response, upgraded
from vm_operator.edge.routing import OptionalQuery, Request, Route, switching_protocols
from vm_operator.tart.errors import GuestRefused, TartNoIp, TartNotRunning

PORT = OptionalQuery("port", Int(1, 65535), "The guest's TCP port", required=True)


def port_forward(app: App, req: Request) -> Response:
    tunnel = app.service.tunnels.open(  # its end writes the audit line, with the bytes
        req.get(NAME), req.required(PORT), lambda to_guest, from_guest: req.audit(
            101, bytes_in=to_guest, bytes_out=from_guest))
    return upgraded(tunnel)


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/vms/{name}/port-forward", port_forward,
          "A WebSocket (RFC 6455) carrying a TCP connection to the running VM's port N, made "
          "to the VM's own address (tart ip) from where Tart runs; binary messages carry the "
          "stream both ways. Needs the connect role. Refused before the upgrade: 404, 409 (not "
          "running, an OCI image), 400 (the port), 502 (the guest refused), 503 (past "
          f"{MAX_TUNNELS} open tunnels)", "portForwardVm",
          path=(NAME,), query=(PORT,), upgrade=True, role=Role.CONNECT,
          ok=switching_protocols("the tunnel"),
          problems=(VmNotFound, OciImage, NotRunning, TartNotRunning, TartNoIp, IpWaitersFull,
                    GuestRefused, TunnelsFull, UPGRADE_REQUIRED,
                    *TART_FAILURES)),
)
