"""A token limited to VM patterns has only the operations of its VMs, over a real server: one
about another VM, or about no VM (a pull), is refused by id (read, cancel, delete) with the
403 ``vm-forbidden`` of the VM routes, and is left running."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import NewToken, token_new, tokens_file

CI = token_new("ci", "--role", "read,write", "--vm", "ubuntu-*")
CI_ADMIN = token_new("ci-admin", "--role", "read,write,admin", "--vm", "ubuntu-*")
FULL = "full-access-token-0123456789"
IMAGE = "ghcr.io/cirruslabs/ubuntu:jammy"  # in the simulator's registry, not cached


@pytest.fixture
def op(operator_factory: Any, tmp_path: Path) -> Any:
    path = tokens_file(tmp_path / "tokens.toml", CI, CI_ADMIN)
    # clones and pulls hang until cancelled: the operations stay running
    return operator_factory(env={"VM_OPERATOR_TOKEN": FULL, "TART_SIM_HANG": "clone,pull"},
                            args=["--tokens-file", str(path)])


def _send(op: Any, method: str, path: str, token: NewToken | str,
          body: object = None) -> tuple[int, Any]:
    auth = token.auth if isinstance(token, NewToken) else {"Authorization": f"Bearer {token}"}
    headers = {**auth, **({"Content-Type": "application/json"} if body is not None else {})}
    return op.json(method, path, headers, None if body is None else json.dumps(body))


def test_a_scoped_token_reads_and_acts_only_on_the_operations_of_its_vms(op: Any) -> None:
    status, mine = _send(op, "POST", "/vms", CI, {"name": "ubuntu-2", "from": "ubuntu-runner"})
    assert status == 202
    status, other_vm = _send(op, "POST", "/vms", FULL,
                             {"name": "macos-2", "from": "macos-sequoia-base"})
    assert status == 202
    status, pull = _send(op, "POST", "/images", FULL, {"ref": IMAGE})
    assert status == 202

    assert _send(op, "GET", f"/operations/{mine['id']}", CI)[0] == 200
    for theirs, about in ((other_vm, "VM 'macos-2'"), (pull, "no VM")):
        for token, method, path in [(CI, "GET", f"/operations/{theirs['id']}"),
                                    (CI_ADMIN, "GET", f"/operations/{theirs['id']}"),
                                    (CI_ADMIN, "POST", f"/operations/{theirs['id']}/cancel"),
                                    (CI_ADMIN, "DELETE", f"/operations/{theirs['id']}")]:
            status, doc = _send(op, method, path, token)
            assert (status, doc["type"]) == (403, "/problems/vm-forbidden"), (method, path)
            assert about in doc["detail"] and token.name in doc["detail"]
        status, doc = _send(op, "GET", f"/operations/{theirs['id']}", FULL)
        assert status == 200 and doc["state"] == "running"  # neither cancelled nor deleted

    status, listed = _send(op, "GET", "/operations", CI)
    assert status == 200 and [doc["id"] for doc in listed] == [mine["id"]]
    # an admin limited to VM patterns still acts on its VMs' operations, whoever started them
    status, theirs_mine = _send(op, "POST", "/vms", FULL,
                                {"name": "ubuntu-3", "from": "ubuntu-runner"})
    assert status == 202
    status, doc = _send(op, "POST", f"/operations/{theirs_mine['id']}/cancel", CI_ADMIN)
    assert status in (200, 202) and doc["cancel_requested"] is True
