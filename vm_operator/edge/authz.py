"""Who a caller is and what it may do: roles, VM patterns (pure).

A request is made by a ``Caller``: a named token of the tokens file (``token_file.py``), the
full-access token (``token``, every role), the read-only token (``read-token``) or, when no
token is configured, ``anonymous`` (every role, as before tokens existed). Each route needs one
``Role``, declared once on its ``Route`` (``routing.Route.role``; by default ``read`` for GET
and ``write`` for any other method). A caller limited to VM patterns (``vms``) touches only
the VMs whose names match one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase


class Role(StrEnum):
    READ = "read"
    WRITE = "write"
    CONNECT = "connect"
    ADMIN = "admin"


# What each role allows, in the README's roles table (``vm-operator token roles``).
ROLE_MEANINGS: dict[Role, str] = {
    Role.READ: "read everything: every GET (and HEAD) route",
    Role.WRITE: "change VMs and images: create, start, stop, suspend, PATCH, delete, pull, "
    "cancel or delete its own operations",
    Role.CONNECT: "reach into a guest: port-forward and exec",
    Role.ADMIN: "the operator itself: reload the configuration, prune images, cancel or delete "
    "the operations of other tokens",
}
ALL_ROLES = frozenset(Role)
READ_ROUTE_METHODS = frozenset({"GET", "HEAD"})


def default_role(method: str) -> Role:
    """The role a route needs when it declares none: reads for GET, changes for the rest."""
    return Role.READ if method in READ_ROUTE_METHODS else Role.WRITE


def vm_matches(name: str, patterns: tuple[str, ...] | None) -> bool:
    """Whether a VM name matches one of the shell patterns (``*``, ``?``, ``[…]``), case
    sensitive as VM names are; None: no patterns, every VM."""
    return patterns is None or any(fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class Caller:
    """Who made a request: the name the audit log records, its roles, and the VM patterns
    it is limited to (None: every VM)."""

    name: str
    roles: frozenset[Role]
    vms: tuple[str, ...] | None = None

    def may(self, role: Role) -> bool:
        return role in self.roles

    def may_touch(self, vm: str) -> bool:
        return vm_matches(vm, self.vms)

    @property
    def scoped(self) -> bool:
        return self.vms is not None

    @property
    def admin(self) -> bool:
        return Role.ADMIN in self.roles


ANONYMOUS = Caller("anonymous", ALL_ROLES)  # no token is configured: every role
FULL_TOKEN = Caller("token", ALL_ROLES)  # VM_OPERATOR_TOKEN
READ_TOKEN = Caller("read-token", frozenset({Role.READ}))  # VM_OPERATOR_READ_TOKEN


def refusal(caller: Caller, role: Role) -> str | None:
    """Why ``caller`` may not use a route that needs ``role`` (None: it may)."""
    if caller.may(role):
        return None
    if caller is READ_TOKEN:
        return "the read-only token may not change VMs"
    held = ", ".join(sorted(caller.roles)) or "none"
    return (f"the token {caller.name!r} may not do this: the route needs the role {role.value!r} "
            f"(its roles: {held})")


def vm_refusal(caller: Caller, vm: str | None) -> str | None:
    """Why ``caller`` may not touch ``vm`` (None: it may). A scoped caller's change that is
    not about one VM (pulling or deleting an image) is refused: it could affect other VMs."""
    if caller.vms is None:
        return None
    patterns = ", ".join(caller.vms) or "none"
    if vm is None:
        return (f"the token {caller.name!r} is limited to VMs matching {patterns}: it may "
                "change nothing that is not one of them")
    if caller.may_touch(vm):
        return None
    return f"the token {caller.name!r} may not touch VM {vm!r} (its VMs: {patterns})"


def operation_refusal(caller: Caller, vm: str | None) -> str | None:
    """Why ``caller`` may not see or act on an operation about ``vm`` (None: it may). A token
    limited to VM patterns has only the operations of its VMs: not one about another VM, nor
    one about no VM (a pull, a prune), as the operations list hides them from it."""
    if caller.vms is None or (vm is not None and caller.may_touch(vm)):
        return None
    patterns = ", ".join(caller.vms) or "none"
    about = "no VM" if vm is None else f"VM {vm!r}"
    return (f"the token {caller.name!r} may not touch an operation about {about} (its VMs: "
            f"{patterns})")
