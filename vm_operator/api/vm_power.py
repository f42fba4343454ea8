"""Start, stop and suspend a VM."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.params import (
    NAME,
    READY_TIMEOUT,
    READY_TIMEOUT_DEFAULT,
    SUSPENDABLE,
    TIMEOUT,
    WAIT_FOR,
)
from vm_operator.api.problems import TART_FAILURES
from vm_operator.api.schemas import VM, ref
from vm_operator.core.errors import (
    AlreadyRunning,
    NotRunning,
    NotSuspendable,
    OciImage,
    ReadyTimeout,
    RunEnded,
    StartTimeout,
    StateDirUnwritable,
    VmBusy,
    VmHeldByOperation,
    VmLimit,
    VmNotFound,
    VmStarting,
)
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route, Success
from vm_operator.tart.errors import (
    TartAlreadyRunning,
    TartNotRunning,
    TartNotSuspendable,
    TartSuspendUnsupported,
    TartVmLimit,
)


def start_vm(app: App, req: Request) -> Response:
    if req.optional(WAIT_FOR) == "ready":  # a timeout without it is checked, bounds nothing
        timeout: int | None = req.optional(READY_TIMEOUT)
        ready = app.service.start_ready(req.get(NAME), req.get(SUSPENDABLE),
                                        timeout or READY_TIMEOUT_DEFAULT)
        return json_response(200, ready)
    vm = app.service.start(req.get(NAME), req.get(SUSPENDABLE))
    return json_response(202 if vm["changed"] else 200, vm)


def stop_vm(app: App, req: Request) -> Response:
    return json_response(200, app.service.stop(req.get(NAME), req.get(TIMEOUT)))


def suspend_vm(app: App, req: Request) -> Response:
    return json_response(200, app.service.suspend(req.get(NAME)))


ROUTES: tuple[Route[App], ...] = (
    Route("POST", "/vms/{name}/start", start_vm,
          "Start a VM (tart run --no-graphics, detached) and confirm it runs", "startVm",
          path=(NAME,), query=(SUSPENDABLE, WAIT_FOR, READY_TIMEOUT),
          ok=(Success(200, "Already running (changed: false); with wait=ready: the VM's detail "
                      "(ready: true, ip) once it is ready, changed telling whether it was "
                      "started", {"anyOf": [VM, ref("StartedReadyVM")]}),
              Success(202, "Started: Tart reports it running (without wait)", VM)),
          problems=(VmNotFound, OciImage, NotSuspendable, AlreadyRunning, TartAlreadyRunning,
                    VmLimit, TartVmLimit, TartSuspendUnsupported, VmBusy, VmHeldByOperation,
                    StateDirUnwritable,
                    StartTimeout, RunEnded, ReadyTimeout, NotRunning, *TART_FAILURES)),
    Route("POST", "/vms/{name}/stop", stop_vm, "Stop a VM (tart stop --timeout T)", "stopVm",
          path=(NAME,), query=(TIMEOUT,),
          ok=(Success(200, "Stopped (changed tells if it ran)", VM),),
          problems=(VmNotFound, OciImage, VmBusy, VmHeldByOperation, VmStarting,
                    *TART_FAILURES)),
    Route("POST", "/vms/{name}/suspend", suspend_vm,
          "Suspend a VM started with suspendable=true", "suspendVm", path=(NAME,),
          ok=(Success(200, "Suspended (changed: true), or already suspended (changed: false)",
                      VM),),
          problems=(VmNotFound, OciImage, NotRunning, NotSuspendable, TartNotRunning,
                    TartNotSuspendable, TartSuspendUnsupported, VmBusy, VmHeldByOperation,
                    *TART_FAILURES)),
)
