"""The JSON schemas of the records the API answers with (/openapi.json's components)."""

from __future__ import annotations

from vm_operator.edge.params import Schema


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


VM = ref("VM")
OBJECT: Schema = {"type": "object"}
TEXT: Schema = {"type": "string"}

SCHEMAS: dict[str, Schema] = {
    "VM": {
        "type": "object",
        "required": ["name", "source", "state", "status", "running", "disk_gb", "size_gb",
                     "accessed"],
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
