"""Create a VM (POST /vms): an operation that clones, configures and optionally starts it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from vm_operator.api.app import App
from vm_operator.api.operations import operation_answer
from vm_operator.api.params import CPU, DISK_GB, DISPLAY, LOCAL_VM_NAME, MEMORY_MB, VM_NAME
from vm_operator.api.problems import TART_FAILURES
from vm_operator.api.schemas import OPERATION
from vm_operator.core.create import CreateRequest
from vm_operator.core.errors import (
    OperationsClosed,
    OperationsFull,
    VmExists,
    VmHeldByOperation,
    VmNotFound,
)
from vm_operator.edge.body import Body, Field
from vm_operator.edge.params import Boolean, OneOf
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request, Route, Success
from vm_operator.tart.names import VmName
from vm_operator.vocabulary import RESTART_POLICIES, RestartPolicy

RESTART_DOC = ("What to do when its run ends without a stop through the API: never, on-failure "
               "(a non-zero exit or a kill: started again, with backoff) or always")


@dataclass(frozen=True)
class CreateVm:
    name: Annotated[VmName, Field(LOCAL_VM_NAME, "The new VM's name: local, no '/'")]
    from_: Annotated[VmName, Field(
        VM_NAME, "What to clone: an OCI reference (pulled when not cached, e.g. "
        "ghcr.io/cirruslabs/macos-sequoia-base:latest) or a local VM", key="from")]
    cpu: Annotated[int | None, Field(CPU, "Virtual CPUs (tart set --cpu)")] = None
    memory_mb: Annotated[int | None, Field(MEMORY_MB, "Memory in MB (tart set --memory)")] = None
    disk_gb: Annotated[int | None, Field(DISK_GB, "Disk size in GB; grow only "
                                                  "(tart set --disk-size)")] = None
    display: Annotated[str | None, Field(DISPLAY, "Display WIDTHxHEIGHT "
                                                  "(tart set --display)")] = None
    random_mac: Annotated[bool, Field(Boolean(), "A fresh MAC address (tart set --random-mac), "
                                                 "so clones of one image never share a DHCP "
                                                 "lease")] = True
    start: Annotated[bool, Field(Boolean(), "Start it once created (a confirmed start, as "
                                            "POST /vms/{name}/start)")] = False
    ephemeral: Annotated[bool, Field(Boolean(), "Delete it once its run ends, for any "
                                                "reason")] = False
    insecure: Annotated[bool, Field(Boolean(), "Pull over plain HTTP or without checking the "
                                               "registry's certificate (tart clone "
                                               "--insecure)")] = False
    restart: Annotated[RestartPolicy, Field(OneOf(RESTART_POLICIES), RESTART_DOC + "; its "
                                            "desired power follows start (true: running, "
                                            "false: stopped)")] = "never"

    def request(self) -> CreateRequest:
        return CreateRequest(
            name=self.name, source=self.from_, cpu=self.cpu, memory_mb=self.memory_mb,
            disk_gb=self.disk_gb, display=self.display, random_mac=self.random_mac,
            start=self.start, ephemeral=self.ephemeral, insecure=self.insecure,
            restart=self.restart)


CREATE = Body(CreateVm, "The VM to create: name and from are required")


def create_vm(app: App, req: Request) -> Response:
    return operation_answer(202, app.service.create(req.get(CREATE).request()))


ROUTES: tuple[Route[App], ...] = (
    Route("POST", "/vms", create_vm,
          "Create a VM: tart clone (pulling the image if needed), tart set, optionally start",
          "createVm", body=CREATE,
          ok=(Success(202, "Accepted: the create operation (Location: /operations/{id})",
                      OPERATION, headers={"Location": {"schema": {"type": "string"}}}),),
          problems=(VmExists, VmHeldByOperation, VmNotFound, OperationsFull, OperationsClosed,
                    *TART_FAILURES)),
)
