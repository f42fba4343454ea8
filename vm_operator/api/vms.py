"""The VMs: the list, and one VM in detail."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.params import NAME, SOURCE, STATE
from vm_operator.api.problems import TART_FAILURES
from vm_operator.api.schemas import VM, ref
from vm_operator.core.errors import StateDirUnwritable, VmNotFound
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request, Route, Success
from vm_operator.tart.errors import TartVmMissing


def list_vms(app: App, req: Request) -> Response:
    state, source = req.optional(STATE), req.optional(SOURCE)
    vms = [
        vm
        for vm in app.service.list_vms()
        if (state is None or vm["state"] == state) and (source is None or vm["source"] == source)
        and req.caller.may_touch(vm["name"])  # a token limited to VM patterns sees only those
    ]
    return app.rendered.json(f"{req.path}?{state}&{source}&{req.caller.name}", vms)


def get_vm(app: App, req: Request) -> Response:
    name = req.get(NAME)
    return app.rendered.json(f"/vms/{name}", app.service.describe(name))


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/vms", list_vms, "List VMs", "listVms", query=(STATE, SOURCE),
          ok=(Success(200, "The VMs", {"type": "array", "items": VM}),),
          problems=TART_FAILURES, etag=True),
    Route("GET", "/vms/{name}", get_vm, "One VM, with tart get's fields and its last run",
          "getVm", path=(NAME,), ok=(Success(200, "The VM", ref("VMDetail")),),
          problems=(VmNotFound, TartVmMissing, StateDirUnwritable, *TART_FAILURES), etag=True),
)
