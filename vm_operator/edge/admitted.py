"""``Admissions``: the checks of a read that passed, kept for the same request head.

A dashboard, a probe or a script polls one read with the same head again and again. The
checks that admit it (the route, the path and query values, who calls and whether the route
lets them, the Host, the VM patterns) are pure functions of the method, the target, the headers,
the client's address and the tokens in force. So a read that passed them is kept, keyed by
all of those, and the same head is admitted again with one lookup. What is not pure is never
kept:

- the throttle of failed tokens (it changes with time and with other requests): checked on
  every request, kept or not (``dispatch``);
- the tokens file: an admission holds the tokens in force when its checks began, and is not
  used once a reload has replaced them (one that came during the checks included);
- the owner of an operation (``Owners``), a body, a WebSocket upgrade and a ``connect`` route
  (it writes its own audit line): such requests are never kept;
- a refusal: only requests that passed every check are kept, and each one's handler runs
  every time (what it answers is as fresh as ever).

A head with a repeated header is not kept (only its first value would be in the key), nor
one over ``MAX_KEPT`` bytes (target and headers: what polls send is far less). The kept heads
are bounded like the route memo: emptied when full, so they hold at most about 1 MiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from vm_operator.edge.authz import Role
from vm_operator.edge.routing import Request, Route
from vm_operator.edge.security import Access, Headers

A = TypeVar("A")
LIMIT = 512  # kept heads; past it the memo is emptied (a scan of distinct heads gains nothing)
MAX_KEPT = 2048  # bytes of a kept head's target and headers
KEPT_METHODS = ("GET", "HEAD")

Key = tuple[str, str, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Admitted(Generic[A]):
    """A read that passed the checks: its route, the request its handler gets, the VM it is
    about (for the audit line of a refusal), and the tokens in force when it was checked."""

    route: Route[A]
    request: Request
    vm: str | None
    tokens: object


def tokens_in_force(access: Access) -> object:
    """What the checks of a request were made under: taken before them, and given to ``keep``,
    so that checks a reload overtook are never kept as current."""
    return access.named.in_force if access.named is not None else None


def keepable(route: Route[Any], method: str, body: bytes) -> bool:
    """Whether a request that passed the checks may be kept: a read without a body, whose
    checks depend on nothing but its head."""
    return (method in KEPT_METHODS and not body and route.body is None and not route.upgrade
            and not route.owned and route.needs is not Role.CONNECT)


def _key(method: str, target: str, headers: Headers, client: str) -> Key | None:
    if not isinstance(headers, dict) or getattr(headers, "repeated", None):
        return None
    return method, target, client, tuple(headers.items())


def _size(key: Key) -> int:
    return len(key[1]) + sum(len(name) + len(value) for name, value in key[3])


class Admissions(Generic[A]):
    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self._kept: dict[Key, Admitted[A]] = {}

    def get(self, method: str, target: str, headers: Headers, client: str,
            access: Access) -> Admitted[A] | None:
        """The admission of this very head, checked while the same tokens were in force."""
        if method not in KEPT_METHODS:
            return None
        key = _key(method, target, headers, client)
        found = self._kept.get(key) if key is not None else None
        if found is None or found.tokens is not tokens_in_force(access):
            return None
        return found

    def keep(self, method: str, target: str, headers: Headers, client: str, tokens: object,
             route: Route[A], request: Request, vm: str | None) -> None:
        """Keep a request that passed the checks made under ``tokens`` (``tokens_in_force``,
        taken before them)."""
        key = _key(method, target, headers, client)
        if key is None or _size(key) > MAX_KEPT:
            return
        if len(self._kept) >= self.limit:
            self._kept.clear()
        self._kept[key] = Admitted(route, request, vm, tokens)
