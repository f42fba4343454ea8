"""Named tokens over a real server: each role (403 problems), VM patterns (403 and lists that
show only the token's VMs), operations of others, the tokens file reloaded on SIGHUP and
refused whole when bad, and the two tokens of the environment working as before."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, SIMULATOR, wait_for
from sse_client import EventReader
from support import NewToken, token_new, tokens_file

READER = token_new("reader", "--role", "read")
CI = token_new("ci", "--role", "read,write", "--vm", "ubuntu-*")
OPS = token_new("ops", "--role", "admin", "--role", "read")
TUNNEL = token_new("tunnel", "--role", "connect")
FULL = "full-access-token-0123456789"
READ = "read-only-token-0123456789"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def op(operator_factory: Any, tmp_path: Path) -> Any:
    path = tokens_file(tmp_path / "tokens.toml", READER, CI, OPS, TUNNEL)
    return operator_factory(env={"VM_OPERATOR_TOKEN": FULL, "VM_OPERATOR_READ_TOKEN": READ},
                            args=["--tokens-file", str(path)])


def _send_as(op: Any, method: str, path: str, token: NewToken | str,
             body: object = None) -> tuple[int, Any]:
    auth = token.auth if isinstance(token, NewToken) else {"Authorization": f"Bearer {token}"}
    headers = {**auth, **(JSON if body is not None else {})}
    return op.json(method, path, headers, None if body is None else json.dumps(body))


@pytest.mark.parametrize(("token", "method", "path", "body", "role"), [
    (READER, "POST", "/vms/ubuntu-runner/stop", None, "write"),
    (READER, "DELETE", "/vms/ubuntu-runner", None, "write"),
    (CI, "POST", "/config/reload", None, "admin"),
    (CI, "POST", "/images/prune", {"older_than_days": 30}, "admin"),
    (TUNNEL, "GET", "/vms", None, "read"),
    (OPS, "POST", "/vms/ubuntu-runner/start", None, "write"),
])
def test_a_token_outside_its_role_gets_403(op: Any, token: NewToken, method: str, path: str,
                                           body: object, role: str) -> None:
    status, doc = _send_as(op, method, path, token, body)
    assert status == 403
    assert doc["type"] == "/problems/forbidden"
    assert f"needs the role '{role}'" in doc["detail"] and token.name in doc["detail"]


def test_a_token_within_its_roles_is_served(op: Any) -> None:
    assert _send_as(op, "GET", "/vms", READER)[0] == 200
    assert _send_as(op, "POST", "/vms/ubuntu-runner/stop", CI)[0] == 200
    status, doc = _send_as(op, "POST", "/config/reload", OPS)
    assert (status, doc["type"]) == (409, "/problems/no-config")  # authorized; no file to apply
    assert _send_as(op, "POST", "/images/prune", OPS, {"older_than_days": 30})[0] == 202


def test_a_wrong_token_is_401(op: Any) -> None:
    status, doc = _send_as(op, "GET", "/vms", READER.token + "x")
    assert (status, doc["type"]) == (401, "/problems/unauthorized")


def test_vm_patterns_refuse_other_vms_and_lists_show_only_the_tokens(op: Any) -> None:
    for method, path, body in [("POST", "/vms/macos-sequoia-base/start", None),
                               ("GET", "/vms/macos-sequoia-base", None),
                               ("GET", "/vms/macos-sequoia-base/logs", None),
                               ("POST", "/vms", {"name": "prod-1", "from": "ubuntu-runner"}),
                               # a VM of its own cloned from one it may not touch
                               ("POST", "/vms", {"name": "ubuntu-8",
                                          "from": "macos-sequoia-base"}),
                               ("POST", "/images", {"ref": "ghcr.io/cirruslabs/x:1"})]:
        status, doc = _send_as(op, method, path, CI, body)
        assert (status, doc["type"]) == (403, "/problems/vm-forbidden"), (method, path)
    status, vms = _send_as(op, "GET", "/vms", CI)
    assert status == 200 and [vm["name"] for vm in vms] == ["ubuntu-runner"]
    status, everything = _send_as(op, "GET", "/vms", READER)
    assert len(everything) > 1  # the others are there, for a token without patterns

    status, created = _send_as(op, "POST", "/vms", CI, {"name": "ubuntu-2", "from": "ubuntu-runner"})
    assert status == 202
    status, theirs = _send_as(op, "POST", "/vms", FULL,
                              {"name": "macos-2", "from": "macos-sequoia-base"})
    assert status == 202
    status, listed = _send_as(op, "GET", "/operations", CI)
    assert [doc["id"] for doc in listed] == [created["id"]]
    status, listed = _send_as(op, "GET", "/operations", READER)
    assert {doc["id"] for doc in listed} >= {created["id"], theirs["id"]}


def test_only_admin_acts_on_the_operations_of_others(op: Any) -> None:
    status, theirs = _send_as(op, "POST", "/vms", FULL,
                              {"name": "ubuntu-3", "from": "ubuntu-runner"})
    assert status == 202
    status, doc = _send_as(op, "POST", f"/operations/{theirs['id']}/cancel", CI)
    assert (status, doc["type"]) == (403, "/problems/forbidden")
    status, doc = _send_as(op, "DELETE", f"/operations/{theirs['id']}", CI)
    assert (status, doc["type"]) == (403, "/problems/forbidden")
    assert _send_as(op, "GET", f"/operations/{theirs['id']}", READER)[0] == 200  # reads: all
    status, mine = _send_as(op, "POST", "/vms", CI, {"name": "ubuntu-4", "from": "ubuntu-runner"})
    assert status == 202
    assert _send_as(op, "POST", f"/operations/{mine['id']}/cancel", CI)[0] in (200, 202, 409)
    assert _send_as(op, "POST", f"/operations/{theirs['id']}/cancel", FULL)[0] in (200, 202, 409)


def test_the_tokens_of_the_environment_keep_working(op: Any) -> None:
    assert _send_as(op, "GET", "/vms", READ)[0] == 200
    status, doc = _send_as(op, "POST", "/vms/ubuntu-runner/stop", READ)
    assert (status, doc["detail"]) == (403, "the read-only token may not change VMs")
    assert _send_as(op, "POST", "/vms/macos-sequoia-base/stop", FULL)[0] == 200
    assert _send_as(op, "POST", "/config/reload", FULL)[0] == 409  # every role: admin too


def _wait_for_event(op: Any, event: str, count: int) -> dict[str, Any]:
    return wait_for(lambda: ([r for r in op.log_records() if r.get("event") == event][count - 1:]
                             or [None])[0], message=f"no {event} line")


def test_sighup_reloads_the_tokens_file_and_a_bad_one_is_refused_whole(
        operator_factory: Any, tmp_path: Path) -> None:
    path = tokens_file(tmp_path / "tokens.toml", READER)
    op = operator_factory(args=["--tokens-file", str(path)])
    late = token_new("late", "--role", "read")
    assert _send_as(op, "GET", "/vms", late)[0] == 401

    tokens_file(path, READER, late)
    op.proc.send_signal(signal.SIGHUP)
    assert _wait_for_event(op, "tokens-reloaded", 1)["tokens"] == 2
    assert _send_as(op, "GET", "/vms", late)[0] == 200

    # a bad file: refused whole, naming line and key; the tokens in force stay
    newest = token_new("newest", "--role", "read")
    text = newest.entry + late.entry.replace('"read"', '"reed"')
    path.write_text(text)
    op.proc.send_signal(signal.SIGHUP)
    refused = _wait_for_event(op, "tokens-refused", 1)
    line = text.splitlines().index('roles = ["reed"]') + 1
    assert (refused["line"], refused["key"]) == (line, "token[1].roles")
    assert "unknown role 'reed'" in refused["message"]
    assert _send_as(op, "GET", "/vms", newest)[0] == 401
    assert _send_as(op, "GET", "/vms", late)[0] == 200
    assert _send_as(op, "GET", "/vms", READER)[0] == 200

    # a token taken out of the file is refused at once, though the same read was let in before
    tokens_file(path, READER)
    op.proc.send_signal(signal.SIGHUP)
    assert _wait_for_event(op, "tokens-reloaded", 2)["tokens"] == 1
    assert _send_as(op, "GET", "/vms", late)[0] == 401
    assert _send_as(op, "GET", "/vms", READER)[0] == 200
    assert op.proc.poll() is None


@pytest.mark.parametrize(("text", "words"), [
    ('[[token]]\nname = "a"\nroles = ["read"]\n', "line 1, key token[0].sha256"),
    (None, "cannot read"),
])
def test_a_bad_or_unreadable_tokens_file_stops_start_up(tmp_path: Path, text: str | None,
                                                        words: str) -> None:
    path = tmp_path / "tokens.toml"
    if text is not None:
        path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "vm_operator", "--port", "0", "--tart", str(SIMULATOR),
         "--state-dir", str(tmp_path / "state"), "--tokens-file", str(path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": str(Path(sys.executable).parent), "TART_HOME": str(tmp_path / "tart")})
    assert done.returncode != 0
    assert words in done.stderr and "tokens" in done.stderr


def test_the_event_stream_tells_a_scoped_token_only_of_its_vms(op: Any) -> None:
    with EventReader(op.port, "/events", CI.auth) as reader:
        assert reader.status == 200
        assert _send_as(op, "POST", "/vms", FULL, {"name": "macos-9", "from": "ubuntu-runner"})[0] == 202
        assert _send_as(op, "POST", "/vms", CI, {"name": "ubuntu-9", "from": "ubuntu-runner"})[0] == 202
        seen = []
        while True:  # operations run one at a time, in order: macos-9's events come first
            block = reader.next_event(30)
            assert block is not None, f"no vm.created of ubuntu-9; saw {seen}"
            seen.append((block.event, block.data.get("vm")))
            if block.event == "vm.created" and block.data.get("vm") == "ubuntu-9":
                break
    assert all(vm is None or vm.startswith("ubuntu-") for _, vm in seen), seen
