"""The audit log over a real server: a line per change (fields, refusals too), none for reads,
and no token, nor a part of one, in any log or state file after a run that used them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support import token_new, tokens_file

FULL = "full-access-token-abcdefghijkl"
READ = "read-only-token-mnopqrstuvwx"


def _audit(op: Any) -> list[dict[str, Any]]:
    path = op.state_dir / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_every_change_is_audited_and_reads_are_not(operator_factory: Any, tmp_path: Path) -> None:
    ci = token_new("ci", "--role", "read,write", "--vm", "ubuntu-*")
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL, "VM_OPERATOR_READ_TOKEN": READ},
                          args=["--tokens-file", str(tokens_file(tmp_path / "t.toml", ci))])
    assert op.request("GET", "/vms", ci.auth)[0] == 200
    assert op.request("GET", "/vms/ubuntu-runner", ci.auth)[0] == 200
    assert op.request("POST", "/vms/ubuntu-runner/stop?timeout=5", ci.auth)[0] == 200
    assert op.request("POST", "/vms/macos-sequoia-base/stop", ci.auth)[0] == 403
    assert op.request("POST", "/vms/ubuntu-runner/stop",
                      {"Authorization": f"Bearer {READ}"})[0] == 403
    assert op.request("DELETE", "/vms/nope", {"Authorization": "Bearer wrong-token-xxxxxxxx"})[0] == 401
    assert op.request("POST", "/vms/macos-sequoia-base/stop",
                      {"Authorization": f"Bearer {FULL}"})[0] == 200
    lines = _audit(op)
    assert [(line["token"], line["method"], line["path"], line["vm"], line["status"])
            for line in lines] == [
        ("ci", "POST", "/vms/ubuntu-runner/stop", "ubuntu-runner", 200),
        ("ci", "POST", "/vms/macos-sequoia-base/stop", "macos-sequoia-base", 403),
        ("read-token", "POST", "/vms/ubuntu-runner/stop", "ubuntu-runner", 403),
        ("-", "DELETE", "/vms/nope", "nope", 401),
        ("token", "POST", "/vms/macos-sequoia-base/stop", "macos-sequoia-base", 200),
    ]
    for line in lines:
        assert set(line) == {"time", "token", "client", "method", "path", "vm", "status",
                             "duration_ms"}
        assert line["client"] == "127.0.0.1"
        assert line["time"].endswith("Z") and line["duration_ms"] >= 0


def test_without_tokens_the_caller_is_anonymous(operator: Any) -> None:
    assert operator.request("POST", "/vms/ubuntu-runner/stop")[0] == 200
    assert [(line["token"], line["status"]) for line in _audit(operator)] == [("anonymous", 200)]


def test_no_token_nor_a_part_of_one_is_in_any_log_or_state_file(
        operator_factory: Any, tmp_path: Path) -> None:
    ci = token_new("ci", "--role", "read,write")
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL, "VM_OPERATOR_READ_TOKEN": READ},
                          args=["--tokens-file", str(tokens_file(tmp_path / "t.toml", ci))])
    for token in (ci.token, FULL, READ):
        auth = {"Authorization": f"Bearer {token}"}
        op.request("GET", "/vms", auth)
        op.request("POST", "/vms/ubuntu-runner/start", auth)
        op.request("POST", "/vms/ubuntu-runner/stop", auth)
        op.request("POST", "/vms", {**auth, "Content-Type": "application/json"},
                   json.dumps({"name": "nope", "from": "missing-vm"}))
        op.request("GET", "/vms", {"Authorization": f"Bearer {token}x"})  # a wrong one
    op.stop()
    files = [path for path in op.workdir.rglob("*") if path.is_file()]
    assert op.state_dir / "audit.jsonl" in files and op.stdout_path in files
    for path in files:
        data = path.read_bytes()
        for token in (ci.token, FULL, READ):
            for part in (token, token[:8], token[-8:]):
                assert part.encode() not in data, f"{path} holds a part of a token"
