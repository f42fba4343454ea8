"""Delete a VM, and change its resources (``tart set``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from vm_operator.api.app import App
from vm_operator.api.params import CPU, DISK_GB, DISPLAY, FORCE, MEMORY_MB, NAME, STOP_TIMEOUT
from vm_operator.api.problems import TART_FAILURES
from vm_operator.api.schemas import ref
from vm_operator.api.vm_create import RESTART_DOC
from vm_operator.core.errors import (
    OciImage,
    StateDirUnwritable,
    VmBusy,
    VmHeldByOperation,
    VmNotFound,
    VmRunning,
    VmStarting,
)
from vm_operator.core.vm_manage import VmPatch
from vm_operator.edge.body import JSON_MEDIA, MERGE_PATCH_MEDIA, Body, Field
from vm_operator.edge.params import Boolean, OneOf
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route, Success
from vm_operator.tart.errors import TartInvalidResources, TartVmIsRunning, TartVmMissing
from vm_operator.vocabulary import DESIRED, RESTART_POLICIES, Desired, RestartPolicy


@dataclass(frozen=True)
class PatchBody:
    """A JSON merge patch (RFC 7396) of a VM's settings: the fields given are changed."""

    cpu: Annotated[int | None, Field(CPU, "Virtual CPUs (tart set --cpu)")] = None
    memory_mb: Annotated[int | None, Field(
        MEMORY_MB, "Memory in MiB (tart set --memory)")] = None
    disk_gb: Annotated[int | None, Field(
        DISK_GB, "Disk size in GB; a disk only grows (tart set --disk-size)")] = None
    display: Annotated[str | None, Field(
        DISPLAY, "Display size in pixels, WIDTHxHEIGHT (tart set --display)")] = None
    random_mac: Annotated[bool, Field(
        Boolean(), "true: a new random MAC address (tart set --random-mac), so that clones of "
        "one image do not share a DHCP lease")] = False
    desired: Annotated[Desired | None, Field(
        OneOf(DESIRED), "The power the VM should have; the reconciler brings it there and "
        "keeps it (running: started now and after a reboot; stopped: stopped now). Any local "
        "VM, running or not")] = None
    restart: Annotated[RestartPolicy | None, Field(OneOf(RESTART_POLICIES), RESTART_DOC + ". "
                                                   "Any local VM, running or not")] = None


PATCH = Body(PatchBody, "The settings to change (at least one); the others stay as they are",
             media_types=(MERGE_PATCH_MEDIA, JSON_MEDIA), min_fields=1)


def delete_vm(app: App, req: Request) -> Response:
    app.service.manage.delete(req.get(NAME), req.get(FORCE), req.get(STOP_TIMEOUT))
    return Response(204, b"", "")


def patch_vm(app: App, req: Request) -> Response:
    body = req.get(PATCH)
    patch = VmPatch(cpu=body.cpu, memory_mb=body.memory_mb, disk_gb=body.disk_gb,
                    display=body.display, random_mac=body.random_mac)
    return json_response(200, app.service.patch(req.get(NAME), patch, body.desired, body.restart))


ROUTES: tuple[Route[App], ...] = (
    Route("DELETE", "/vms/{name}", delete_vm,
          "Delete a local VM (tart delete); ?force=true stops it first. A VM Tart no longer "
          "lists whose spec the operator still keeps: the spec is dropped", "deleteVm",
          path=(NAME,), query=(FORCE, STOP_TIMEOUT),
          ok=(Success(204, "Deleted (or, for a VM Tart no longer lists, its spec dropped)",
                      None),),
          problems=(VmNotFound, TartVmMissing, OciImage, VmRunning, TartVmIsRunning,
                    VmHeldByOperation, VmBusy, VmStarting, *TART_FAILURES)),
    Route("PATCH", "/vms/{name}", patch_vm,
          "Change a stopped VM's CPUs, memory, disk size, display or MAC address (tart set), "
          "and any local VM's desired state (desired, restart)",
          "patchVm", path=(NAME,), body=PATCH,
          ok=(Success(200, "Changed: the VM's new detail", ref("VMDetail")),),
          problems=(VmNotFound, TartVmMissing, OciImage, VmRunning, VmHeldByOperation, VmBusy,
                    TartInvalidResources, StateDirUnwritable, *TART_FAILURES)),
)
