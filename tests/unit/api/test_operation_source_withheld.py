"""What a caller limited to VM patterns is told of an operation whose create copies a local VM
(``source_withheld``): when it may not touch that VM, ``image`` null and the error without the
detail and Tart message that may name it, in ``GET /operations`` (``told_to``) as in the
``operation.*`` events (``Event.seen_by``); an OCI image, a VM it may touch, or a caller
without patterns: the operation as it is."""

from __future__ import annotations

import pytest

from vm_operator.api.operations import operation_document, told_to
from vm_operator.core.event_catalogue import OPERATION_FAILED
from vm_operator.core.events import Event
from vm_operator.core.operation_events import SOURCE_WITHHELD, source_withheld
from vm_operator.edge.authz import FULL_TOKEN, Caller, Role
from vm_operator.store.operation_records import Operation, OperationError
from vm_operator.vocabulary import OperationKind

CI = Caller("ci", frozenset({Role.READ}), ("ci-*",))
EVERY = Caller("every", frozenset({Role.READ}), ("*",))
MISSING = 'the specified VM "prod-base" does not exist'


def _create(image: str, kind: OperationKind = "create") -> Operation:
    return Operation("Xq3v9Rk2LmP0aBcD", kind, "failed", "2026-12-07T10:00:00.000Z", 1,
                     vm="ci-1", image=image,
                     error=OperationError("tart-failed", MISSING, MISSING, 1))


@pytest.mark.parametrize(("op", "caller", "hidden"), [
    (_create("prod-base"), CI, True),
    (_create("prod-base"), EVERY, False),
    (_create("prod-base"), FULL_TOKEN, False),
    (_create("ci-base"), CI, False),
    (_create("ghcr.io/org/prod-base:1"), CI, False),  # an OCI image is no VM
])
def test_a_copied_vm_is_told_only_to_a_caller_that_may_touch_it(op: Operation, caller: Caller,
                                                                 hidden: bool) -> None:
    whole = operation_document(op)
    doc = told_to(caller, op)
    event = Event(5, "operation.failed", "2026-12-07T10:00:01.000Z", op.vm, dict(whole),
                  withheld=OPERATION_FAILED.about(op.vm, whole,
                                                  withheld=source_withheld(op, whole)).withheld)
    seen = event.seen_by(caller.may_touch) if caller.scoped else event
    assert seen is not None
    for told in (doc, seen.data):
        if not hidden:
            assert told == whole
            continue
        assert told["image"] is None and "prod-base" not in str(told)
        error = told["error"]
        assert isinstance(error, dict) and isinstance(whole["error"], dict)
        assert error == {**{key: value for key, value in whole["error"].items()
                            if key != "tart_message"}, "detail": SOURCE_WITHHELD}
        assert {key: value for key, value in told.items() if key not in ("image", "error")} == {
            key: value for key, value in whole.items() if key not in ("image", "error")}


def test_only_a_create_from_a_local_vm_withholds_anything() -> None:
    delete = _create("prod-base", kind="delete")
    assert source_withheld(delete, operation_document(delete)) is None
    create = _create("prod-base")
    withheld = source_withheld(create, operation_document(create))
    assert withheld is not None and withheld.vm == "prod-base"
