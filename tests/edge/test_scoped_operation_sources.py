"""A token limited to VM patterns is not told the local VM another's create copies when that
VM is not its own, over a real server: the create is about the new VM, which it may touch, so
it sees and may cancel it, but with ``image`` null (in ``GET /operations/{id}``, the list, the
cancel's answer and the ``operation.*`` events); a source it may touch is shown, and a token
without patterns is told all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sse_client import EventReader
from support import NewToken, token_new, tokens_file, wait_for

CI = token_new("ci", "--role", "read,write,admin", "--vm", "ubuntu-*")
READER = token_new("reader", "--role", "read")
FULL = "full-access-token-0123456789"
HIDDEN = "macos-sequoia-base"  # a local VM of the simulator, outside the patterns


def _send(op: Any, method: str, path: str, token: NewToken | str,
          body: object = None) -> tuple[int, Any]:
    auth = token.auth if isinstance(token, NewToken) else {"Authorization": f"Bearer {token}"}
    headers = {**auth, **({"Content-Type": "application/json"} if body is not None else {})}
    return op.json(method, path, headers, None if body is None else json.dumps(body))


def _operation_event(reader: EventReader, type_: str, op_id: str) -> dict[str, Any]:
    while True:
        block = reader.next_event(30, type_)
        assert block is not None, f"no {type_} of {op_id}"
        if block.data["data"]["id"] == op_id:
            return block.data["data"]  # type: ignore[no-any-return]


def test_a_scoped_token_is_not_told_the_vm_anothers_create_copies(operator_factory: Any,
                                                                  tmp_path: Path) -> None:
    path = tokens_file(tmp_path / "tokens.toml", CI, READER)
    # clones hang until cancelled: the creates stay running
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL, "TART_SIM_HANG": "clone"},
                          args=["--tokens-file", str(path)])
    with EventReader(op.port, "/events", CI.auth) as scoped, \
            EventReader(op.port, "/events", READER.auth) as everything:
        assert (scoped.status, everything.status) == (200, 200)
        status, theirs = _send(op, "POST", "/vms", FULL, {"name": "ubuntu-7", "from": HIDDEN})
        assert status == 202 and theirs["image"] == HIDDEN
        status, mine = _send(op, "POST", "/vms", CI, {"name": "ubuntu-8",
                                                      "from": "ubuntu-runner"})
        assert status == 202 and mine["image"] == "ubuntu-runner"

        location = f"/operations/{theirs['id']}"
        assert _send(op, "GET", location, READER)[1]["image"] == HIDDEN
        status, seen = _send(op, "GET", location, CI)
        assert status == 200 and seen["vm"] == "ubuntu-7" and seen["image"] is None
        status, listed = _send(op, "GET", "/operations", CI)
        assert status == 200
        assert {doc["id"]: doc["image"] for doc in listed} == {theirs["id"]: None,
                                                               mine["id"]: "ubuntu-runner"}
        assert _operation_event(everything, "operation.queued", theirs["id"])["image"] == HIDDEN
        assert _operation_event(scoped, "operation.queued", theirs["id"])["image"] is None
        assert _operation_event(scoped, "operation.queued", mine["id"])["image"] == (
            "ubuntu-runner")

        status, cancelled = _send(op, "POST", f"{location}/cancel", CI)
        assert status in (200, 202) and cancelled["image"] is None, cancelled
        ended = _operation_event(scoped, "operation.cancelled", theirs["id"])
        assert ended["image"] is None and HIDDEN not in json.dumps(ended)
        assert _operation_event(everything, "operation.cancelled", theirs["id"])["image"] == (
            HIDDEN)


def test_a_vms_event_history_hides_the_copied_vm_as_the_stream_does(operator_factory: Any,
                                                                   tmp_path: Path) -> None:
    path = tokens_file(tmp_path / "tokens.toml", CI, READER)
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL, "TART_SIM_HANG": "clone"},
                          args=["--tokens-file", str(path)])
    status, theirs = _send(op, "POST", "/vms", FULL, {"name": "ubuntu-7", "from": HIDDEN})
    assert status == 202
    status, doc = _send(op, "POST", f"/operations/{theirs['id']}/cancel", FULL)
    assert status in (200, 202), doc
    history = "/vms/ubuntu-7/events"
    wait_for(lambda: any(event["type"] == "operation.cancelled"
                         for event in _send(op, "GET", history, READER)[1]["events"]),
             timeout=20, message="the create cancelled")
    whole = [event["data"] for event in _send(op, "GET", history, READER)[1]["events"]
             if event["type"].startswith("operation.")]
    status, doc = _send(op, "GET", history, CI)
    assert status == 200
    seen = [event["data"] for event in doc["events"] if event["type"].startswith("operation.")]
    assert len(seen) == len(whole) >= 2 and all(data["image"] == HIDDEN for data in whole)
    assert seen == [{**data, "image": None} for data in whole]
    assert HIDDEN not in json.dumps(doc)
