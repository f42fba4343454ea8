"""Who may do what: VM patterns, the role each route needs (declared once, defaulting from its
method), the refusals, and the README's roles table made from the declarations."""

from __future__ import annotations

from typing import Any

import pytest
from support import REPO_ROOT

from vm_operator.api import ROUTES, openapi
from vm_operator.edge.audit import Audit
from vm_operator.edge.authz import (
    FULL_TOKEN,
    READ_TOKEN,
    Caller,
    Role,
    default_role,
    refusal,
    vm_matches,
    vm_refusal,
)
from vm_operator.edge.errors import ApiError
from vm_operator.edge.guard import Owners, check_target, guard_problems
from vm_operator.edge.openapi import route_problems
from vm_operator.edge.problems.client_errors import FORBIDDEN, TOO_MANY_FAILURES, VM_FORBIDDEN
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request, Route
from vm_operator.token_command import roles_table

README = REPO_ROOT / "README.md"
BY_NAME = {f"{route.method} {route.pattern}": route for route in ROUTES}


@pytest.mark.parametrize(("name", "patterns", "matches"), [
    ("ci-1", None, True),
    ("ci-1", ("ci-*",), True),
    ("ci-", ("ci-*",), True),
    ("dev-ci-1", ("ci-*",), False),
    ("CI-1", ("ci-*",), False),  # VM names are case sensitive
    ("build-7", ("ci-*", "build-?"), True),
    ("build-17", ("ci-*", "build-?"), False),
    ("runner-a", ("runner-[ab]",), True),
    ("runner-c", ("runner-[ab]",), False),
    ("ghcr.io/org/img:1", ("ghcr.io/*",), True),
    ("anything", (), False),
])
def test_vm_patterns_are_shell_patterns(name: str, patterns: tuple[str, ...] | None,
                                        matches: bool) -> None:
    assert vm_matches(name, patterns) is matches


@pytest.mark.parametrize(("route", "role"), [
    ("GET /vms", Role.READ),
    ("GET /vms/{name}/logs", Role.READ),
    ("GET /operations", Role.READ),
    ("POST /vms", Role.WRITE),
    ("POST /vms/{name}/start", Role.WRITE),
    ("PATCH /vms/{name}", Role.WRITE),
    ("DELETE /vms/{name}", Role.WRITE),
    ("POST /images", Role.WRITE),
    ("POST /operations/{id}/cancel", Role.WRITE),
    ("POST /images/prune", Role.ADMIN),
    ("POST /config/reload", Role.ADMIN),
])
def test_each_route_needs_its_role(route: str, role: Role) -> None:
    assert BY_NAME[route].needs is role


@pytest.mark.parametrize(("method", "role"), [
    ("GET", Role.READ), ("HEAD", Role.READ), ("POST", Role.WRITE), ("PATCH", Role.WRITE),
    ("DELETE", Role.WRITE), ("PUT", Role.WRITE)])
def test_a_route_without_a_role_takes_it_from_its_method(method: str, role: Role) -> None:
    assert default_role(method) is role
    route: Route[Any] = Route(method, "/x", lambda app, req: Response(204), "x", "x")
    assert route.needs is role


def test_a_role_is_one_field_of_the_route() -> None:
    route: Route[Any] = Route("GET", "/vms/{name}/port-forward",
                              lambda app, req: Response(204), "x", "x", role=Role.CONNECT)
    assert route.needs is Role.CONNECT


CI = Caller("ci", frozenset({Role.READ, Role.WRITE}), ("ci-*",))
READER = Caller("reader", frozenset({Role.READ}))
ADMIN = Caller("ops", frozenset({Role.ADMIN, Role.WRITE, Role.READ}))


@pytest.mark.parametrize(("caller", "role", "refused"), [
    (FULL_TOKEN, Role.ADMIN, None),
    (FULL_TOKEN, Role.CONNECT, None),
    (READ_TOKEN, Role.READ, None),
    (READ_TOKEN, Role.WRITE, "the read-only token may not change VMs"),
    (CI, Role.WRITE, None),
    (CI, Role.ADMIN, "the route needs the role 'admin' (its roles: read, write)"),
    (READER, Role.CONNECT, "the route needs the role 'connect' (its roles: read)"),
])
def test_a_role_refusal_names_the_role_needed(caller: Caller, role: Role,
                                              refused: str | None) -> None:
    why = refusal(caller, role)
    assert (why is None) if refused is None else (why is not None and refused in why)


@pytest.mark.parametrize(("caller", "vm", "refused"), [
    (CI, "ci-1", False), (CI, "prod-1", True), (CI, None, True),
    (FULL_TOKEN, "prod-1", False), (FULL_TOKEN, None, False)])
def test_a_scoped_token_touches_only_its_vms(caller: Caller, vm: str | None,
                                             refused: bool) -> None:
    assert (vm_refusal(caller, vm) is not None) is refused


def _request(route: Route[Any], caller: Caller, **params: object) -> Request:
    return Request(route.method, route.pattern, params, {}, {}, caller=caller, audit=Audit())


@pytest.mark.parametrize(("route", "caller", "params", "problem"), [
    ("POST /vms/{name}/start", CI, {"name": "ci-1"}, None),
    ("POST /vms/{name}/start", CI, {"name": "prod-1"}, VM_FORBIDDEN),
    ("GET /vms/{name}", CI, {"name": "prod-1"}, VM_FORBIDDEN),
    ("GET /vms", CI, {}, None),
    ("POST /images", CI, {}, VM_FORBIDDEN),
    ("POST /operations/{id}/cancel", CI, {"id": "mine"}, None),
    ("POST /operations/{id}/cancel", CI, {"id": "theirs"}, FORBIDDEN),
    ("POST /operations/{id}/cancel", CI, {"id": "of-an-earlier-run"}, FORBIDDEN),
    ("POST /operations/{id}/cancel", ADMIN, {"id": "theirs"}, None),
    ("GET /operations/{id}", READER, {"id": "theirs"}, None),
])
def test_the_vm_and_the_owner_of_an_operation_are_checked(
        route: str, caller: Caller, params: dict[str, object], problem: object) -> None:
    owners = Owners()
    owners.answered(Response(202, headers=(("Location", "/operations/mine"),)), CI)
    owners.answered(Response(202, headers=(("Location", "/operations/theirs"),)), ADMIN)
    try:
        check_target(BY_NAME[route], _request(BY_NAME[route], caller, **params), owners)
        found = None
    except ApiError as exc:
        found = exc.problem
    assert found == problem


def test_owners_are_bounded() -> None:
    owners = Owners(limit=3)
    for index in range(5):
        owners.answered(Response(202, headers=(("Location", f"/operations/{index}"),)), CI)
    assert [owners.owner(str(index)) for index in range(5)] == [None, None, "ci", "ci", "ci"]


@pytest.mark.parametrize("route", [route for route in ROUTES if not route.public],
                         ids=[f"{r.method} {r.pattern}" for r in ROUTES if not r.public])
def test_openapi_declares_the_throttle_and_the_patterns(route: Route[Any]) -> None:
    problems = route_problems(route)
    assert TOO_MANY_FAILURES in problems and FORBIDDEN in problems
    assert (VM_FORBIDDEN in problems) is (VM_FORBIDDEN in guard_problems(route))
    if "{name}" in route.pattern or route.method == "POST" and route.pattern == "/vms":
        assert VM_FORBIDDEN in problems


def test_openapi_tells_the_role_of_each_operation() -> None:
    paths: Any = openapi()["paths"]
    for route in ROUTES:
        operation = paths[route.pattern][route.method.lower()]
        assert operation.get("x-role") == (None if route.public else route.needs.value)


def test_the_readme_roles_table_is_made_from_the_routes() -> None:
    text = README.read_text()
    after = text.split("<!-- roles-table: vm-operator token roles -->\n", 1)[1]
    table = after.split("\n\n", 1)[0] + "\n"
    assert table == roles_table(ROUTES)
