"""Authorization of one request, after its route is known: the caller's roles, its VM
patterns, the owner of an operation, the throttle of failed tokens, and the audit line.

``dispatch`` calls these in order; each raises the ``ApiError`` of its refusal. A route's role
is its declaration (``Route.needs``); the VM it touches is its ``{name}`` path parameter or its
body's ``name`` (a create); an operation's owner is the caller whose request was answered with
its ``Location`` (kept in memory: an operation of an earlier process has no owner, and only
admin may cancel or delete it).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from vm_operator.edge.audit import Audit, AuditSink
from vm_operator.edge.authz import Caller, Role, refusal, vm_refusal
from vm_operator.edge.errors import ApiError
from vm_operator.edge.problems import ProblemType
from vm_operator.edge.problems.client_errors import FORBIDDEN, TOO_MANY_FAILURES, VM_FORBIDDEN
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request, Route
from vm_operator.edge.throttle import Throttle

OPERATIONS = "/operations/"
MAX_OWNERS = 10_000  # operations whose owner is remembered (the queue's history is smaller)
UNAUDITED = frozenset({"GET", "HEAD", "OPTIONS"})  # reads: no audit line


class Owners:
    """Which caller started each operation (in memory, bounded)."""

    def __init__(self, limit: int = MAX_OWNERS) -> None:
        self.limit = limit
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def answered(self, response: Response, caller: Caller) -> None:
        """Remember the owner of the operation a response points to (its ``Location``)."""
        if response.status not in (201, 202):
            return
        for key, value in response.headers:
            if key == "Location" and value.startswith(OPERATIONS):
                with self._lock:
                    self._owners[value[len(OPERATIONS):]] = caller.name
                    while len(self._owners) > self.limit:
                        self._owners.popitem(last=False)

    def owner(self, operation: str) -> str | None:
        with self._lock:
            return self._owners.get(operation)


def target_vm(req: Request) -> str | None:
    """The VM a request is about: its ``{name}`` path parameter, or its body's ``name``."""
    return named_vm(req.params, req.body)


def named_vm(params: Mapping[str, object], body: object) -> str | None:
    """``target_vm`` from the parts of a request not made yet."""
    name = params.get("name")
    if name is None and body is not None:
        name = getattr(body, "name", None)
    return str(name) if name is not None else None


def check_throttle(throttle: Throttle, client: str, now: float) -> None:
    wait = throttle.retry_after(client, now)
    if wait is not None:
        raise ApiError(TOO_MANY_FAILURES,
                       f"too many invalid tokens from {client}: try again in {wait} s",
                       (("Retry-After", str(wait)),))


def check_role(route: Route[Any], caller: Caller) -> None:
    why = refusal(caller, route.needs)
    if why is not None:
        raise ApiError(FORBIDDEN, why)


def check_target(route: Route[Any], req: Request, owners: Owners) -> None:
    """The VM patterns (every route about a VM, and every change), and the owner of an
    operation (a change to one)."""
    caller = req.caller
    if route.owned:
        if route.needs is Role.READ or caller.admin:
            return
        operation = str(next(iter(req.params.values()), ""))
        if owners.owner(operation) != caller.name:
            raise ApiError(FORBIDDEN, f"the token {caller.name!r} may act only on the "
                           "operations it started: another's needs the role 'admin'")
        return
    vm = target_vm(req)
    if vm is None and route.needs is Role.READ:
        return  # a list, the host, the images: lists show only the caller's VMs
    why = vm_refusal(caller, vm)
    source = source_vm(req)
    if why is None and source is not None:
        why = vm_refusal(caller, source)
    if why is not None:
        raise ApiError(VM_FORBIDDEN, why)


def source_vm(req: Request) -> str | None:
    """The local VM a create clones (its body's ``from`` without a '/'): it is read, so a
    token limited to VM patterns must be allowed it too; None for an OCI image or no body."""
    source = getattr(req.body, "from_", None) if req.body is not None else None
    return source if isinstance(source, str) and "/" not in source else None


def audited(method: str) -> bool:
    """Whether a request of this method gets an audit line (a change; never a read)."""
    return method not in UNAUDITED


def request_audit(sink: AuditSink, caller: Caller | None, client: str, method: str, path: str,
                  started: float) -> Audit:
    return Audit(sink, caller.name if caller is not None else "-", client, method, path,
                 None, started)


def about_a_vm(route: Route[Any]) -> bool:
    """Whether a route names the VM it touches: a ``{name}`` path parameter, or a body with a
    ``name`` field (a create)."""
    if any(param.name == "name" for param in route.path):
        return True
    return route.body is not None and "name" in {
        item.name for item in dataclasses.fields(route.body.spec)}


def guard_problems(route: Route[Any]) -> tuple[ProblemType, ...]:
    """What the checks here can answer on a route that is not public (its /openapi.json
    responses): the throttle's 429, and the VM patterns' 403 on a route about a VM, an
    operation (its VM: ``api/operations.py``) or a change (an operation's owner is a
    ``forbidden``, as a role is)."""
    if route.public:
        return ()
    if about_a_vm(route) or route.owned or route.needs is not Role.READ:
        return (VM_FORBIDDEN, TOO_MANY_FAILURES)
    return (TOO_MANY_FAILURES,)
