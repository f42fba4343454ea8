"""The VMs: the list, and one VM in detail."""

from __future__ import annotations

from collections.abc import Sequence

from vm_operator.api.app import App
from vm_operator.api.params import NAME, SOURCE, STATE
from vm_operator.api.problems import TART_FAILURES
from vm_operator.api.schemas import VM, ref
from vm_operator.core.errors import StateDirUnwritable, VmNotFound
from vm_operator.core.records import CreatingVm
from vm_operator.edge.authz import Caller
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request, Route, Success
from vm_operator.tart.errors import TartVmMissing
from vm_operator.tart.records import Vm


def list_vms(app: App, req: Request) -> Response:
    state, source = req.optional(STATE), req.optional(SOURCE)
    key = f"{req.path}?{state}&{source}&{req.caller.name}"
    vms = app.shown.get(key, shown, app.service.list_vms(), state, source, req.caller)
    return app.rendered.json(key, vms)


def shown(vms: Sequence[Vm | CreatingVm], state: str | None, source: str | None,
          caller: Caller) -> list[Vm | CreatingVm]:
    """The VMs a list shows: those its filters and the caller's VM patterns let through (a
    token limited to VM patterns sees only those)."""
    return [vm for vm in vms
            if (state is None or vm["state"] == state) and (source is None or vm["source"] == source)
            and caller.may_touch(vm["name"])]


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
