"""Long-running operations (create, delete, pull, prune): list, read, cancel, delete."""

from __future__ import annotations

from typing import cast

from vm_operator.api.app import App
from vm_operator.api.schemas import OPERATION
from vm_operator.core.errors import OperationFinished, OperationMissing
from vm_operator.core.lifecycle import operation_path
from vm_operator.core.operation_events import source_withheld
from vm_operator.core.records import OperationDoc, ProblemDocument
from vm_operator.edge.authz import Caller, operation_refusal
from vm_operator.edge.errors import ApiError
from vm_operator.edge.params import Schema, TextParam
from vm_operator.edge.problems import PROBLEMS
from vm_operator.edge.problems.client_errors import OPERATION_NOT_FOUND, VM_FORBIDDEN
from vm_operator.edge.problems.server_errors import INTERNAL_ERROR
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import PathParam, Request, Route, Success
from vm_operator.store.operation_records import Operation

CANCEL_WAIT = 5.0  # seconds a cancel waits for the operation to end (Tart killed, cleanup done)
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def operation_document(op: Operation) -> OperationDoc:
    doc = op.to_json()
    error: ProblemDocument | None = None
    if op.error is not None:  # its kind is a problem type of the catalogue
        problem = PROBLEMS.get(op.error.kind, INTERNAL_ERROR)
        extra: dict[str, object] = {}
        if op.error.tart_message is not None:
            extra["tart_message"] = op.error.tart_message
        if op.error.exit_code is not None:
            extra["tart_exit_code"] = op.error.exit_code
        error = {**ApiError(problem, op.error.detail).document(), **extra}
    return {**doc, "error": error}


def told_to(caller: Caller, op: Operation) -> OperationDoc:
    """The operation's document as ``caller`` is told it: a token limited to VM patterns is
    not told the local VM another's create copies when that VM is not its own
    (``source_withheld``: ``image`` null, the error without Tart's words)."""
    doc = operation_document(op)
    hidden = source_withheld(op, doc)
    if hidden is None or not caller.scoped:
        return doc
    return cast(OperationDoc, hidden.told(doc, caller.may_touch))


def operation_answer(status: int, op: Operation) -> Response:
    """An operation document, with its ``Location``."""
    return json_response(status, operation_document(op), ("Location", operation_path(op.id)))


class OperationId(TextParam[str]):
    """An operation's id: 16 URL-safe characters (at most 64 accepted); any other text names
    no operation."""

    problem = OPERATION_NOT_FOUND
    decoded = False

    def schema(self) -> Schema:
        return {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}

    def from_text(self, key: str, text: str) -> str:
        if not 1 <= len(text) <= 64 or not set(text) <= _ID_CHARS:
            raise ValueError(f"no operation {text[:64]!r}")
        return text

    def expected(self, key: str) -> str:
        return f"{key} must be an operation id"


ID = PathParam("id", OperationId(), "The operation's id (the last segment of its Location)")


def list_operations(app: App, req: Request) -> Response:
    """Every operation; a token limited to VM patterns sees only those of its VMs."""
    return json_response(200, [told_to(req.caller, op) for op in app.service.lifecycle.operations()
                               if operation_refusal(req.caller, op.vm) is None])


def scoped_operation(app: App, req: Request) -> Operation:
    """The operation of the path, if the caller may touch it: a token limited to VM patterns
    gets 403 vm-forbidden for one about another VM (or about none), as for the VM itself."""
    op = app.service.lifecycle.operation(req.get(ID))
    why = operation_refusal(req.caller, op.vm)
    if why is not None:
        raise ApiError(VM_FORBIDDEN, why)
    return op


def get_operation(app: App, req: Request) -> Response:
    return json_response(200, told_to(req.caller, scoped_operation(app, req)))


def cancel_operation(app: App, req: Request) -> Response:
    """A queued operation ends at once; a running one's Tart is killed and its cleanup run:
    wait a moment for that, so the answer usually says ``cancelled``. It stays readable."""
    op = app.service.lifecycle.cancel(scoped_operation(app, req).id, CANCEL_WAIT)
    return json_response(200 if op.finished else 202, told_to(req.caller, op))


def delete_operation(app: App, req: Request) -> Response:
    """Cancel it if it has not finished (as the cancel route does), then forget it."""
    app.service.lifecycle.delete(scoped_operation(app, req).id, CANCEL_WAIT)
    return Response(204, b"", "")


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/operations", list_operations,
          "Operations: running, queued and the recent finished ones (bounded history)",
          "listOperations",
          ok=(Success(200, "The operations, in the order they were submitted",
                      {"type": "array", "items": OPERATION}),)),
    Route("GET", "/operations/{id}", get_operation, "One operation: state, phase, progress",
          "getOperation", path=(ID,), ok=(Success(200, "The operation", OPERATION),),
          problems=(OperationMissing,), owned=True),
    Route("POST", "/operations/{id}/cancel", cancel_operation,
          "Cancel an operation: Tart is killed, a create leaves no VM behind; the operation "
          "stays readable (state cancelled)", "cancelOperation", path=(ID,),
          ok=(Success(200, "Cancelled (or it finished meanwhile: state says how)", OPERATION),
              Success(202, "Cancel requested; still cleaning up (cancel_requested: true)",
                      OPERATION)),
          problems=(OperationMissing, OperationFinished), owned=True),
    Route("DELETE", "/operations/{id}", delete_operation,
          "Delete an operation: cancel it first if it has not finished (as POST "
          "/operations/{id}/cancel), then forget it (404 from then on, its record removed)",
          "deleteOperation", path=(ID,),
          ok=(Success(204, "Deleted (a cancelled one still cleaning up keeps its VM name until "
                      "it ends)", None),),
          problems=(OperationMissing,), owned=True),
)
