"""The declarative file (``--config``): apply it again now (POST /config/reload)."""

from __future__ import annotations

from vm_operator.api.app import App
from vm_operator.api.problems import TART_FAILURES
from vm_operator.core.errors import ConfigRefused, NoConfigFile, StateDirUnwritable
from vm_operator.edge.authz import Role
from vm_operator.edge.params import Schema
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route, Success

APPLIED: Schema = {
    "type": "object",
    "required": ["file", "cause", "steps"],
    "properties": {
        "file": {"type": "string", "description": "The file applied"},
        "cause": {"enum": ["start-up", "SIGHUP", "api"]},
        "steps": {"type": "array", "description": "The plan, in the order it was carried out",
                  "items": {
                      "type": "object",
                      "required": ["kind", "vm", "step", "outcome", "operation", "error"],
                      "properties": {
                          "kind": {"enum": ["create", "set", "start", "stop", "delete"]},
                          "vm": {"type": "string"},
                          "step": {"type": "string", "description": "The step, as "
                                   "vm-operator plan prints it"},
                          "outcome": {"enum": ["done", "queued", "desired", "deferred",
                                               "failed"],
                                      "description": "queued: an operation does it "
                                      "(operation); desired: the spec says so, the reconciler "
                                      "brings the VM there; deferred: at the VM's next stop"},
                          "operation": {"type": ["string", "null"]},
                          "error": {"type": ["string", "null"]},
                      }}},
    },
}


def reload_config(app: App, req: Request) -> Response:
    if app.fleet is None:
        raise NoConfigFile("the operator was started without a declarative file: start it with "
                           "--config FILE (VM_OPERATOR_CONFIG)")
    return json_response(200, app.fleet.apply("api").to_json())


ROUTES: tuple[Route[App], ...] = (
    Route("POST", "/config/reload", reload_config,
          "Apply the declarative file (--config) again: create, set, start, stop and (with "
          "prune) delete VMs as it says", "reloadConfig",
          ok=(Success(200, "Applied: the steps carried out and their outcome", APPLIED),),
          problems=(ConfigRefused, NoConfigFile, StateDirUnwritable, *TART_FAILURES),
          role=Role.ADMIN),
)
