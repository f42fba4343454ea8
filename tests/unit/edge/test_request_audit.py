"""Which requests dispatch audits, with what, and how a connect route (a tunnel, an exec) writes
its own line when it ends: through dispatch, in process, with test-only routes."""

from __future__ import annotations

from typing import Any

import pytest

from vm_operator.api.params import NAME
from vm_operator.edge.audit import AuditEntry
from vm_operator.edge.authz import Role
from vm_operator.edge.dispatch import Site, dispatch
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request, Route, RouteTable
from vm_operator.edge.security import Access
from vm_operator.edge.token_file import NamedTokens, parse_tokens
from vm_operator.token_command import entry

TOKEN = "a-named-token-for-the-audit-test"


def _tunnel(app: Any, req: Request) -> Response:
    req.audit(101, bytes_in=5, bytes_out=7)  # as a tunnel does when it ends
    return Response(204)


ROUTES: tuple[Route[Any], ...] = (
    Route("GET", "/vms/{name}", lambda app, req: Response(204), "read", "read", path=(NAME,)),
    Route("POST", "/vms/{name}/start", lambda app, req: Response(204), "start", "start",
          path=(NAME,)),
    Route("GET", "/vms/{name}/port-forward", _tunnel, "tunnel", "tunnel", path=(NAME,),
          role=Role.CONNECT),
)


def _site(roles: tuple[Role, ...]) -> tuple[Site[Any], list[AuditEntry]]:
    lines: list[AuditEntry] = []
    tokens = NamedTokens("tokens.toml", parse_tokens(entry("ci", TOKEN, roles, ["ci-*"])))
    return Site(RouteTable(ROUTES), Access(named=tokens), None, lines.append), lines


AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize(("roles", "method", "target", "headers", "expected"), [
    ((Role.READ,), "GET", "/vms/ci-1", AUTH, []),  # reads are not audited
    ((Role.READ,), "GET", "/vms/ci-1", {}, []),
    ((Role.WRITE,), "POST", "/vms/ci-1/start", AUTH,
     [("ci", "POST", "/vms/ci-1/start", "ci-1", 204, None, None)]),
    ((Role.WRITE,), "POST", "/vms/prod/start", AUTH,
     [("ci", "POST", "/vms/prod/start", "prod", 403, None, None)]),
    ((Role.READ,), "POST", "/vms/ci-1/start", AUTH,
     [("ci", "POST", "/vms/ci-1/start", "ci-1", 403, None, None)]),
    ((Role.WRITE,), "POST", "/vms/ci-1/start", {}, [("-", "POST", "/vms/ci-1/start", "ci-1", 401,
                                                      None, None)]),
    ((Role.CONNECT,), "GET", "/vms/ci-1/port-forward", AUTH,  # its own line, once
     [("ci", "GET", "/vms/ci-1/port-forward", "ci-1", 101, 5, 7)]),
    ((Role.READ,), "GET", "/vms/ci-1/port-forward", AUTH,  # refused: dispatch writes it
     [("ci", "GET", "/vms/ci-1/port-forward", "ci-1", 403, None, None)]),
])
def test_changes_and_tunnels_are_audited_once(
        roles: tuple[Role, ...], method: str, target: str, headers: dict[str, str],
        expected: list[tuple[object, ...]]) -> None:
    site, lines = _site(roles)
    dispatch(site, method, target, headers, b"", "192.0.2.7")
    assert [(line.token, line.method, line.path, line.vm, line.status, line.bytes_in,
             line.bytes_out) for line in lines] == expected
    assert all(line.client == "192.0.2.7" for line in lines)
    assert all(TOKEN not in str(line.to_json()) for line in lines)
