"""A VM name held: by an operation of the queue (from ``submit`` until it has finished) or by a
``Reservation`` for work done outside it (``OperationQueue.reserve``); ``NameBusy`` when another
holds it. Re-exported by ``operations``.

A create from a local VM holds that VM too, until it has finished, but not alone: other creates
may copy it as well (one after the other: ``scheduling``), while a reservation of it (a DELETE, a
PATCH, the reconciler's start or stop) and an operation on it are refused, so that it is neither
deleted nor changed under the copy. The create is refused itself while a reservation or an
operation holds the VM it would copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Self

from vm_operator.store.operation_records import Operation
from vm_operator.vocabulary import OperationKind

if TYPE_CHECKING:
    from vm_operator.core.operations import OperationQueue


class NameBusy(Exception):
    """The VM name is held by the operation ``operation_id`` (None: by a ``reserve``). Each
    caller says what that means for it (a create: the VM exists or is being created)."""

    def __init__(self, name: str, operation_id: str | None) -> None:
        super().__init__(f"VM {name!r} is held by another operation")
        self.name = name
        self.operation_id = operation_id


class Reservation:
    """A VM name held for the caller: ``release`` it (or leave its ``with`` block), or hand it to
    ``OperationQueue.submit``, which makes the operation its holder."""

    def __init__(self, queue: OperationQueue, name: str) -> None:
        self._queue = queue
        self.name = name

    def release(self) -> None:
        """Idempotent; nothing once handed to ``submit``."""
        self._queue._release(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def is_local_name(name: str) -> bool:
    """Local VM names have no '/'; OCI references always have one."""
    return "/" not in name


def copied_vm(kind: OperationKind, image: str | None) -> str | None:
    """The local VM an operation copies: a create's source when it names a local VM."""
    return image if kind == "create" and image is not None and is_local_name(image) else None


def refuse_if_held(name: str | None, names: Mapping[str, str | Reservation],
                   active: Iterable[Operation]) -> None:
    """NameBusy when an operation or a reservation holds ``name`` (``names``: the VM names held,
    by operation id or reservation), or an ``active`` create copies the VM of that name."""
    if name is None:
        return
    holder = names.get(name)
    if holder is None:
        holder = next((op.id for op in active if copied_vm(op.kind, op.image) == name), None)
    if holder is not None:
        raise NameBusy(name, holder if isinstance(holder, str) else None)
