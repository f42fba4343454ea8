"""The OpenAPI 3.1 description of the API, written by hand and kept in step with the
route table by a test (tests/test_openapi.py): adding a route without describing it fails."""

from __future__ import annotations

from typing import Any

from vm_operator import __version__
from vm_operator.edge.problems import CATALOGUE
from vm_operator.store.state import LOG_TAIL_LINES_MAX
from vm_operator.tart.names import MAX_NAME_LENGTH, NAME_PATTERN


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}


NAME = {
    "name": "name", "in": "path", "required": True,
    "description": "VM name, percent-encoded (an OCI name such as ghcr.io/org/img:tag "
    "is sent as ghcr.io%2Forg%2Fimg%3Atag): 1 to 255 printable ASCII characters (U+0021 to "
    "U+007E: no spaces, controls or non-ASCII), not starting with '-', and no empty, '.' or '..' "
    "segment between '/'. Any other name is refused (400) before Tart is asked.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH,
               "pattern": NAME_PATTERN},
}


SLUG = {
    "name": "slug", "in": "path", "required": True,
    "description": "A problem type: the last segment of a problem document's type",
    "schema": {"type": "string", "enum": [problem.slug for problem in CATALOGUE]},
}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


COMMON = {
    "400": _problem("Invalid name or query parameter, or a body (no route takes one)"),
    "401": _problem("Missing or wrong bearer token (when tokens are configured)"),
    "403": _problem("Read-only token on a write, cross-site request, or Host not allowed"),
    "404": _problem("No such VM"),
    "415": _problem("A body that is not JSON (forms and text are refused)"),
    "502": _problem("Tart failed or printed something unexpected"),
    "503": _problem("The Tart binary is missing or not executable"),
    "504": _problem("Tart did not answer within its timeout"),
}
GUARDED = ("401", "403")  # every route but the probes, when tokens are configured
TART = ("502", "503", "504")  # every route that runs Tart


def _responses(*codes: str, **specific: dict[str, Any]) -> dict[str, Any]:
    """Shared problem responses by code, plus route-specific ones given as ``_NNN=...``."""
    result = {code: COMMON[code] for code in codes}
    result.update({code.lstrip("_"): value for code, value in specific.items()})
    return result


def _vm_action(operation_id: str, summary: str, ok: dict[str, Any], *extra: str,
               **specific: Any) -> dict[str, Any]:
    """An operation on one VM: it takes the name, runs Tart and can answer every shared problem."""
    return {"operationId": operation_id, "summary": summary,
            "parameters": [NAME, *specific.pop("query", [])],
            "responses": _responses("400", *GUARDED, "404", *TART, *extra, _200=ok, **specific)}


OCI_IMAGE = "An OCI image (slug oci-image): clone it to a local VM first"


SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string", "format": "uri-reference",
                                "description": "/problems/{slug}, relative to the request URI: "
                                "GET it for the problem type's documentation"},
                       "title": {"type": "string"},
                       "status": {"type": "integer"}, "detail": {"type": "string"}},
    },
    "VM": {
        "type": "object",
        "required": ["name", "source", "state", "status", "running", "disk_gb", "size_gb", "accessed"],
        "properties": {
            "name": {"type": "string"},
            "source": {"enum": ["local", "oci"]},
            "state": {"enum": ["running", "suspended", "stopped"]},
            "status": {"enum": ["running", "suspended", "stopped"],
                       "description": "Same as state, kept for clients of the original API"},
            "running": {"type": "boolean"},
            "disk_gb": {"type": "integer"},
            "size_gb": {"type": "integer"},
            "accessed": {"type": ["string", "null"], "format": "date-time"},
            "changed": {"type": "boolean", "description": "On start/stop: whether anything changed"},
        },
    },
    "VMDetail": {
        "allOf": [_ref("VM"), {"type": "object", "properties": {
            "os": {"type": ["string", "null"]},
            "cpu": {"type": ["integer", "null"]},
            "memory_mb": {"type": ["integer", "null"]},
            "disk_format": {"type": ["string", "null"]},
            "display": {"type": ["string", "null"]},
            "last_run": {"oneOf": [{"type": "null"}, {
                "type": "object",
                "description": "The tart run that owns the VM (the operator never runs two)",
                "properties": {
                    "started_at": {"type": "string", "format": "date-time"},
                    "finished_at": {"type": ["string", "null"], "description":
                                    "When it ended, or when the operator noticed that it had "
                                    "(exit_code_known false)"},
                    "exit_code": {"type": ["integer", "null"]},
                    "exit_code_known": {"type": "boolean", "description":
                                        "true once it ended with a known exit code; false while "
                                        "it runs, or when only its end was seen (after an "
                                        "operator restart): then exit_code and error are null"},
                    "error": {"type": ["string", "null"]},
                    "pid": {"type": "integer"},
                    "suspendable": {"type": "boolean"},
                }}]},
        }}],
    },
    "Health": {
        "type": "object",
        "required": ["status", "message", "timestamp", "version", "tart"],
        "properties": {
            "status": {"enum": ["healthy", "degraded"]},
            "message": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "version": {"type": "string"},
            "tart": {"type": "object", "properties": {
                "path": {"type": "string"}, "available": {"type": "boolean"},
                "version": {"type": ["string", "null"]}}},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    vm = _ref("VM")
    return {
        "openapi": "3.1.0",
        "info": {"title": "vm-operator", "version": __version__,
                 "description": "List, inspect, start and stop the Tart VMs of a Mac host."},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
        "paths": {
            "/health": {"get": {"operationId": "getHealth",
                                "summary": "Liveness: 200 while the process serves",
                                "security": [{}],
                                "responses": {"200": _json(_ref("Health"), "Serving")}}},
            "/ready": {"get": {"operationId": "getReady",
                               "summary": "Readiness: whether tart list works",
                               "security": [{}],
                               "responses": {"200": _json({"type": "object"}, "Ready"),
                                             "503": _problem("tart list fails")}}},
            "/vms": {"get": {
                "operationId": "listVms",
                "summary": "List VMs",
                "parameters": [
                    _query("state", {"enum": ["running", "suspended", "stopped"]}, "Only this state"),
                    _query("source", {"enum": ["local", "oci"]}, "Only this source"),
                ],
                "responses": _responses("400", *GUARDED, *TART,
                                        _200=_json({"type": "array", "items": vm}, "The VMs")),
            }},
            "/vms/{name}": {"get": _vm_action(
                "getVm", "One VM, with tart get's fields and its last run",
                _json(_ref("VMDetail"), "The VM"),
            )},
            "/vms/{name}/start": {"post": _vm_action(
                "startVm", "Start a VM (tart run --no-graphics, detached) and confirm it runs",
                _json(vm, "Already running (changed: false)"), "415",
                query=[_query("suspendable", {"type": "boolean"},
                              "Add --suspendable (needed for a later suspend)")],
                _202=_json(vm, "Started: Tart reports it running"),
                _409=_problem("Already running elsewhere, VM limit reached, an OCI image (slug "
                              "oci-image: clone it first), or "
                              "suspendable=true for a VM already running without it "
                              "(slug not-suspendable): stop it first, or suspendable=true for "
                              "a Linux guest (slug suspend-unsupported)"),
                _503=_problem("Tart is not available, or the state directory cannot be written "
                              "(state-dir-unwritable)"),
                _504=_problem("Tart did not answer in time, or the VM did not report running "
                              "within the start timeout (the run is left running; another "
                              "start waits for it)"),
            )},
            "/vms/{name}/stop": {"post": _vm_action(
                "stopVm", "Stop a VM (tart stop --timeout T)",
                _json(vm, "Stopped (changed tells if it ran)"), "415",
                _409=_problem(OCI_IMAGE),
                query=[_query("timeout", {"type": "integer", "minimum": 0, "maximum": 300,
                                          "default": 30}, "Seconds before Tart kills the VM")],
            )},
            "/vms/{name}/suspend": {"post": _vm_action(
                "suspendVm", "Suspend a VM started with suspendable=true",
                _json(vm, "Suspended (changed: true), or already suspended (changed: false)"),
                "415",
                _409=_problem("The VM is stopped (slug not-running), was not started with "
                              "suspendable=true (slug not-suspendable: stop it, then start it "
                              "with suspendable=true), or is an OCI image (slug oci-image)"),
            )},
            "/vms/{name}/ip": {"get": _vm_action(
                "getVmIp", "The VM's IP address (tart ip --wait W, only while it runs)",
                _json({"type": "object", "properties": {"name": {"type": "string"},
                                                        "ip": {"type": "string"}}}, "Its address"),
                query=[_query("wait", {"type": "integer", "minimum": 0, "maximum": 120,
                                       "default": 0},
                              "Seconds to wait for an address, while the VM runs")],
                _409=_problem("The VM is not running (answered at once, whatever the wait; slug "
                              "not-running), has no IP address yet (slug no-ip), or is an "
                              "OCI image (slug oci-image)"),
            )},
            "/vms/{name}/logs": {"get": {
                "operationId": "getVmLogs",
                "summary": "Output of the last tart run the operator started (its last 4 MiB "
                           "at most, from a line boundary)",
                "parameters": [NAME, _query("tail", {"type": "integer", "minimum": 1,
                                                     "maximum": LOG_TAIL_LINES_MAX},
                                            "Only the last N lines")],
                "responses": _responses(
                    "400", *GUARDED,
                    _200={"description": "The log",
                          "headers": {
                              "Vm-Operator-Log-Truncated": {
                                  "description": "true when the 4 MiB limit cut what was asked "
                                                 "for (the whole log, or N lines)",
                                  "schema": {"enum": ["true", "false"]}},
                              "Vm-Operator-Log-Omitted-Bytes": {
                                  "description": "Bytes of the log before the answer",
                                  "schema": {"type": "integer", "minimum": 0}},
                          },
                          "content": {"text/plain": {"schema": {"type": "string"}}}},
                    _404=_problem("No such VM, or the operator never started this VM"),
                    _409=_problem(OCI_IMAGE),
                    _503=_problem("The state directory cannot be read (state-dir-unwritable)"),
                ),
            }},
            "/openapi.json": {"get": {
                "operationId": "getOpenApi", "summary": "This document",
                "responses": _responses(*GUARDED, _200=_json({"type": "object"}, "OpenAPI")),
            }},
            "/problems": {"get": {"operationId": "listProblems",
                                  "summary": "Every problem type, with its status and title",
                                  "security": [{}],
                                  "responses": {"200": _html("The index of problem types")}}},
            "/problems/{slug}": {"get": {
                "operationId": "getProblem",
                "summary": "The documentation of one problem type (a problem's type URI)",
                "security": [{}],
                "parameters": [SLUG],
                "responses": {"200": _html("What the problem means and what to do"),
                              "404": _problem("No such problem type")},
            }},
            "/metrics": {"get": {
                "operationId": "getMetrics", "summary": "Prometheus metrics (text format 0.0.4)",
                "responses": _responses(*GUARDED, _200={
                    "description": "Metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}),
            }},
        },
    }
