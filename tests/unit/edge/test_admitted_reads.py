"""A read whose very head passed the checks is admitted again at once (edge/admitted.py):
its handler still runs every time, and nothing that is not a pure function of the head is
kept. Through dispatch, in process, with test-only routes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from vm_operator.api.images import PULL
from vm_operator.api.params import NAME
from vm_operator.edge.admitted import MAX_KEPT, Admissions, keepable
from vm_operator.edge.authz import Caller, Role
from vm_operator.edge.dispatch import Site, dispatch
from vm_operator.edge.http1 import Headers
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request, Route, RouteTable
from vm_operator.edge.security import Access
from vm_operator.edge.throttle import FAILURES
from vm_operator.edge.token_file import NamedTokens, parse_tokens
from vm_operator.token_command import entry

CI, OTHER = "a-token-for-the-ci-machines", "a-token-for-the-other-machines"
CLIENT = "10.0.0.7"


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def read(self, app: Any, req: Request) -> Response:
        self.calls += 1
        return Response(200, f"{req.params.get('name')} {self.calls}".encode())


def _routes(counter: Counter) -> tuple[Route[Any], ...]:
    return (
        Route("GET", "/vms/{name}", counter.read, "read", "read", path=(NAME,)),
        Route("GET", "/health", counter.read, "probe", "probe", public=True),
    )


def _tokens_file(path: Path, *tokens: tuple[str, str]) -> Path:
    path.write_text("".join(entry(name, token, (Role.READ,), [f"{name}-*"])
                            for name, token in tokens))
    return path


def _named_site(tmp_path: Path, counter: Counter) -> tuple[Site[Any], NamedTokens]:
    path = _tokens_file(tmp_path / "tokens.toml", ("ci", CI), ("other", OTHER))
    tokens = NamedTokens(str(path), parse_tokens(path.read_text()))
    return Site(RouteTable(_routes(counter)), Access(named=tokens), None), tokens


def _get(site: Site[Any], target: str, token: str | None = None) -> Response:
    headers = Headers()
    headers.add("host", "127.0.0.1:8082")
    if token is not None:
        headers.add("authorization", f"Bearer {token}")
    return dispatch(site, "GET", target, headers, b"", CLIENT)[0]


def test_a_kept_read_still_runs_its_handler_each_time(tmp_path: Path) -> None:
    counter = Counter()
    site, _ = _named_site(tmp_path, counter)
    answers = [_get(site, "/vms/ci-1", CI).body for _ in range(3)]
    assert answers == [b"ci-1 1", b"ci-1 2", b"ci-1 3"]
    head = Headers({"host": "127.0.0.1:8082", "authorization": f"Bearer {CI}"})
    assert site.admitted.get("GET", "/vms/ci-1", head, CLIENT, site.access) is not None


def test_another_token_on_the_same_target_is_checked_afresh(tmp_path: Path) -> None:
    site, _ = _named_site(tmp_path, Counter())
    assert _get(site, "/vms/ci-1", CI).status == 200
    assert _get(site, "/vms/ci-1", OTHER).status == 403  # its patterns are other-*
    assert _get(site, "/vms/ci-1").status == 401
    assert _get(site, "/vms/ci-1", CI).status == 200


def test_a_tokens_reload_voids_what_was_kept(tmp_path: Path) -> None:
    site, tokens = _named_site(tmp_path, Counter())
    assert _get(site, "/vms/ci-1", CI).status == 200
    _tokens_file(tmp_path / "tokens.toml", ("other", OTHER))  # the ci token is revoked
    tokens.reload()
    assert _get(site, "/vms/ci-1", CI).status == 401


class ReloadedDuringTheChecks(NamedTokens):
    """Tokens whose file is reloaded (the ci token revoked) while a request is being checked:
    after the ``finds``-th token lookup from now (a request's checks look its token up twice)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path), parse_tokens(path.read_text()))
        self.finds = 0

    def find(self, presented: str) -> Caller | None:
        found = super().find(presented)
        self.finds -= 1
        if self.finds == 0:
            _tokens_file(Path(str(self.path)), ("other", OTHER))
            self.reload()
        return found


def test_checks_a_reload_overtook_are_not_kept(tmp_path: Path) -> None:
    tokens = ReloadedDuringTheChecks(_tokens_file(tmp_path / "t.toml", ("ci", CI), ("other", OTHER)))
    site = Site(RouteTable(_routes(Counter())), Access(named=tokens), None)
    tokens.finds = 2  # the reload comes after the last lookup of the first request's checks
    assert _get(site, "/vms/ci-1", CI).status == 200  # checked before the reload took effect
    assert _get(site, "/vms/ci-1", CI).status == 401  # the same head, checked again


def test_a_body_sent_with_a_kept_head_is_refused() -> None:
    site = Site(RouteTable(_routes(Counter())), Access(), None)
    head = Headers({"host": "127.0.0.1:8082"})
    assert dispatch(site, "GET", "/vms/a", head, b"", CLIENT)[0].status == 200
    assert dispatch(site, "GET", "/vms/a", head, b"{}", CLIENT)[0].status == 400


def test_a_large_head_is_not_kept() -> None:
    site = Site(RouteTable(_routes(Counter())), Access(), None)
    small = Headers({"host": "127.0.0.1:8082"})
    large = Headers({"host": "127.0.0.1:8082", "x-note": "x" * MAX_KEPT})
    for head in (small, large):
        assert dispatch(site, "GET", "/health", head, b"", CLIENT)[0].status == 200
    kept = [site.admitted.get("GET", "/health", head, CLIENT, site.access) is not None
            for head in (small, large)]
    assert kept == [True, False]


def test_a_throttled_client_is_refused_a_kept_read() -> None:
    site = Site(RouteTable(_routes(Counter())), Access(token=CI), None)
    assert _get(site, "/vms/ci-1", CI).status == 200
    for _ in range(FAILURES):
        site.throttle.failed(CLIENT, time.monotonic())
    refused = _get(site, "/vms/ci-1", CI)
    assert refused.status == 429
    assert int(dict(refused.headers)["Retry-After"]) > 0


def test_refusals_are_not_kept(tmp_path: Path) -> None:
    site, _ = _named_site(tmp_path, Counter())
    for _ in range(2):
        assert _get(site, "/vms/prod", CI).status == 403
    head = Headers({"host": "127.0.0.1:8082", "authorization": f"Bearer {CI}"})
    assert site.admitted.get("GET", "/vms/prod", head, CLIENT, site.access) is None


def test_a_head_that_repeats_a_header_is_not_kept() -> None:
    site = Site(RouteTable(_routes(Counter())), Access(), None)
    head = Headers()
    head.add("host", "127.0.0.1:8082")
    head.add("x-note", "one")
    head.add("x-note", "two")
    assert dispatch(site, "GET", "/health", head, b"", CLIENT)[0].status == 200
    assert site.admitted.get("GET", "/health", head, CLIENT, site.access) is None


def test_the_kept_heads_are_bounded() -> None:
    admissions: Admissions[Any] = Admissions(limit=2)
    route = _routes(Counter())[1]
    request = Request("GET", "/health", {}, {}, {})
    heads = [Headers({"host": f"h{n}"}) for n in range(3)]
    for head in heads:
        admissions.keep("GET", "/health", head, CLIENT, None, route, request, None)
    kept = [admissions.get("GET", "/health", head, CLIENT, Access()) is not None
            for head in heads]
    assert kept == [False, False, True]  # emptied when full, then the third kept


WRITE: Route[Any] = Route("POST", "/vms/{name}/start", lambda app, req: Response(204), "start", "start",
              path=(NAME,))
READ: Route[Any] = Route("GET", "/vms/{name}", lambda app, req: Response(204), "read", "read", path=(NAME,))
TUNNEL: Route[Any] = Route("GET", "/vms/{name}/port-forward", lambda app, req: Response(204), "tunnel",
               "tunnel", path=(NAME,), role=Role.CONNECT)
OWNED: Route[Any] = Route("GET", "/operations/latest", lambda app, req: Response(204), "operation",
              "operation", owned=True)
WITH_BODY: Route[Any] = Route("GET", "/search", lambda app, req: Response(204), "search", "search",
                  body=PULL)


@pytest.mark.parametrize(("route", "method", "body", "kept"), [
    (READ, "GET", b"", True),
    (READ, "HEAD", b"", True),
    (READ, "GET", b"{}", False),  # a body: refused, and never kept
    (WRITE, "POST", b"", False),
    (TUNNEL, "GET", b"", False),  # a connect route writes its own audit line
    (OWNED, "GET", b"", False),  # the owner of an operation changes
    (WITH_BODY, "GET", b"", False),
])
def test_only_reads_without_a_body_are_kept(route: Route[Any], method: str, body: bytes,
                                            kept: bool) -> None:
    assert keepable(route, method, body) is kept
