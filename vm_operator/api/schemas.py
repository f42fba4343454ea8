"""The JSON schemas of the records the API answers with (/openapi.json's components)."""

from __future__ import annotations

from types import NoneType, UnionType
from typing import Literal, Union, get_args, get_origin, get_type_hints

from vm_operator.edge.params import Schema
from vm_operator.store.operation_records import OperationJson
from vm_operator.vocabulary import CONDITIONS, DESIRED, RESTART_POLICIES, VM_SOURCES, VM_STATES


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_JSON_TYPES: dict[object, str] = {str: "string", int: "integer", bool: "boolean",
                                  NoneType: "null"}


def field_schema(hint: object) -> Schema:
    """The JSON schema of a record's field from its annotation: a ``Literal`` is an enum, a
    string, integer or boolean (or null) a type; anything else says nothing (its details
    must)."""
    if get_origin(hint) is Literal:
        return {"enum": list(get_args(hint))}
    members = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
    if all(member in _JSON_TYPES for member in members):
        names = [_JSON_TYPES[member] for member in members]
        return {"type": names[0] if len(names) == 1 else names}
    return {}


def record_schema(record: type, details: dict[str, Schema]) -> Schema:
    """The JSON schema of a record the API answers (a ``TypedDict``): every field required,
    its type from its annotation, then its ``details`` (description, format, bounds; the
    whole schema of a field whose annotation says nothing)."""
    hints = get_type_hints(record)
    unknown = set(details) - set(hints)
    if unknown:
        raise ValueError(f"details of fields {record.__name__} has not: {sorted(unknown)}")
    properties: dict[str, Schema] = {}
    for name, hint in hints.items():
        properties[name] = {**({} if "oneOf" in details.get(name, {}) else field_schema(hint)),
                            **details.get(name, {})}
        if not properties[name]:
            raise ValueError(f"{record.__name__}.{name}: no JSON type, and no details")
    return {"type": "object", "required": list(hints), "properties": properties}


VM = ref("VM")
OPERATION = ref("Operation")
OBJECT: Schema = {"type": "object"}
TEXT: Schema = {"type": "string"}

SCHEMAS: dict[str, Schema] = {
    "VM": {
        "type": "object",
        "required": ["name", "source", "state", "status", "running", "disk_gb", "size_gb",
                     "accessed"],
        "properties": {
            "name": {"type": "string"},
            "source": {"enum": list(VM_SOURCES)},
            "state": {"enum": [*VM_STATES, "creating"],
                      "description": "creating: an operation is creating it (see operation)"},
            "status": {"enum": [*VM_STATES, "creating"],
                       "description": "Same as state, kept for clients of the original API"},
            "running": {"type": "boolean"},
            "disk_gb": {"type": ["integer", "null"], "description": "null while creating"},
            "size_gb": {"type": ["integer", "null"], "description": "null while creating"},
            "accessed": {"type": ["string", "null"], "format": "date-time"},
            "operation": {"type": "string",
                          "description": "While creating: the path of the create operation"},
            "changed": {"type": "boolean",
                        "description": "On start/stop: whether anything changed"},
        },
    },
    "VMDetail": {
        "allOf": [VM, {"type": "object", "properties": {
            "os": {"type": ["string", "null"]},
            "cpu": {"type": ["integer", "null"]},
            "memory_mb": {"type": ["integer", "null"]},
            "disk_format": {"type": ["string", "null"]},
            "display": {"type": ["string", "null"]},
            "last_run": {"oneOf": [{"type": "null"}, {
                "type": "object",
                "description": "The tart run that owns the VM (the operator never runs two)",
                "required": ["started_at", "finished_at", "exit_code", "exit_code_known", "error",
                             "pid", "suspendable"],
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
            "ready": {"type": "boolean", "description":
                      "Running, Tart reports its IP address, and its guest accepts a TCP "
                      "connection on VM_OPERATOR_READY_PORT (22: its sshd), tried from where "
                      "Tart runs; looked at when asked, at most about 1 s old"},
            "ip": {"type": ["string", "null"], "description":
                   "The address Tart reports (tart ip) while it runs; null before the guest "
                   "has one, and whenever it does not run"},
        }}, {
            "type": "object",
            "description": "Its desired state and what the reconciler makes of it",
            "required": ["spec", "restart_count", "last_exit", "next_attempt_at", "condition"],
            "properties": {
                "spec": {"oneOf": [{"type": "null"}, {
                    "type": "object",
                    "description": "What the operator keeps the VM as; null: it only observes it",
                    "required": ["desired", "restart", "source", "created_at"],
                    "properties": {
                        "desired": {"enum": [*DESIRED, None],
                                    "description": "The power it should have; null: no wish"},
                        "restart": {"enum": list(RESTART_POLICIES),
                                    "description": "What happens when its run ends without a "
                                    "stop through the API"},
                        "source": {"enum": ["api", "config"],
                                   "description": "Who said so last: the API or the "
                                   "declarative file"},
                        "created_at": {"type": ["string", "null"], "format": "date-time",
                                       "description": "When the operator created the VM; null: "
                                       "made another way (prune never deletes it)"},
                    }}]},
                "restart_count": {"type": "integer", "minimum": 0,
                                  "description": "Starts the reconciler made, since the operator "
                                  "started or the desired state was last set"},
                "last_exit": {"oneOf": [{"type": "null"}, {
                    "type": "object",
                    "description": "How its last run ended, as the operator saw it",
                    "required": ["exit_code", "signal", "at"],
                    "properties": {
                        "exit_code": {"type": ["integer", "null"],
                                      "description": "null: killed by a signal, or unknown"},
                        "signal": {"type": ["integer", "null"],
                                   "description": "The signal that killed tart run"},
                        "at": {"type": "string", "format": "date-time"},
                    }}]},
                "next_attempt_at": {"type": ["string", "null"], "format": "date-time",
                                    "description": "When the reconciler starts it again (backoff); "
                                                   "null once that time has come (the start is "
                                                   "being tried), never a time past"},
                "condition": {"enum": [None, *CONDITIONS],
                              "description": "Why a VM desired running is not: backing-off "
                              "(restarting after an end, with backoff), crash-loop (3 ends or "
                              "failed starts in a row), waiting-for-slot (the macOS cap is "
                              "full), exited (its run ended and its restart policy keeps it "
                              "stopped), missing (Tart has no such VM)"},
            },
        }],
    },
    "StartedReadyVM": {
        "allOf": [ref("VMDetail"), {"type": "object", "required": ["ready", "ip", "changed"],
                                    "properties": {"changed": {
                                        "type": "boolean",
                                        "description": "Whether this request started it"}}}],
    },
    "Operation": record_schema(OperationJson, {
        "vm": {"description": "The VM it creates or deletes"},
        "image": {"description": "The image it pulls, or a create's source (null to a token "
                  "limited to VM patterns when the source is a local VM outside them)"},
        "phase": {"description": "pulling, cloning, configuring, starting, deleting or pruning"},
        "progress": {"minimum": 0, "maximum": 100,
                     "description": "Percent of the image pulled, from Tart's output; null when "
                     "Tart printed none (a cached image)"},
        "created_at": {"format": "date-time"},
        "started_at": {"format": "date-time"},
        "finished_at": {"format": "date-time"},
        "error": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Problem"}],
                  "description": "Why it failed: a problem document, with Tart's message "
                  "(tart_message) and exit code (tart_exit_code) when Tart refused (to a token "
                  "that is not told the source: neither Tart's message nor its detail)"},
        "result": {"description": "A note on the outcome, e.g. that a VM was kept"},
    }),
    "Health": {
        "type": "object",
        "required": ["status", "message", "timestamp", "version", "tart"],
        "properties": {
            "status": {"enum": ["healthy", "degraded"]},
            "message": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "version": {"type": "string"},
            "tart": {"type": "object", "required": ["path", "available", "version"],
                     "properties": {"path": {"type": "string"}, "available": {"type": "boolean"},
                                    "version": {"type": ["string", "null"]}}},
        },
    },
    "HealthSummary": {
        "type": "object",
        "description": "GET /health to a request whose Host is not the operator's address and "
                       "that carries no valid token: the status only",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"enum": ["healthy", "degraded"]}},
    },
    "Image": {
        "type": "object",
        "description": "An image of Tart's OCI cache (tart list --source oci): listed once by "
                       "each tag that points at it and once by its digest",
        "required": ["ref", "kind", "disk_gb", "size_gb", "accessed"],
        "properties": {
            "ref": {"type": "string", "description": "The reference, e.g. "
                    "ghcr.io/cirruslabs/macos-sequoia-base:latest or ...@sha256:..."},
            "kind": {"enum": ["tag", "digest"], "description": "Which form ref is"},
            "disk_gb": {"type": "integer", "description": "The disk size of a VM cloned from it"},
            "size_gb": {"type": "integer", "description": "Space it takes in the cache"},
            "accessed": {"type": ["string", "null"], "format": "date-time",
                         "description": "Its last use (what prune goes by); null before Tart "
                         "2.31"},
        },
    },
    "Host": {
        "type": "object",
        "required": ["tart", "tart_home", "disk", "macos_guests", "operations"],
        "properties": {
            "tart": {"type": "object", "required": ["path", "version"], "properties": {
                "path": {"type": "string"}, "version": {"type": ["string", "null"]}}},
            "tart_home": {"type": "string", "description": "$TART_HOME, or ~/.tart"},
            "disk": {"type": "object", "required": ["total_bytes", "free_bytes"],
                     "description": "The file system that holds the Tart home",
                     "properties": {"total_bytes": {"type": "integer", "minimum": 0},
                                    "free_bytes": {"type": "integer", "minimum": 0}}},
            "macos_guests": {"type": "object", "required": ["running", "limit"], "properties": {
                "running": {"type": "integer", "minimum": 0},
                "limit": {"type": ["integer", "null"],
                          "description": "VM_OPERATOR_MAX_RUNNING; null: no cap"}}},
            "operations": {"type": "object", "required": ["running", "queued", "max_queued"],
                           "properties": {"running": {"type": "integer", "minimum": 0},
                                          "queued": {"type": "integer", "minimum": 0},
                                          "max_queued": {"type": "integer", "minimum": 1}}},
        },
    },
}
