"""A VM name held: by an operation of the queue (from ``submit`` until it has finished) or by a
``Reservation`` for work done outside it (``OperationQueue.reserve``); ``NameBusy`` when another
holds it. Re-exported by ``operations``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

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
