"""An operator that listens beyond loopback without a token serves what it served before, but
never runs a command in a guest nor opens a tunnel for whoever reaches its port."""

from __future__ import annotations

from typing import Any

VM = "ubuntu-runner"


def test_without_a_token_beyond_loopback_exec_and_tunnels_are_refused(
        operator_factory: Any) -> None:
    op = operator_factory(args=["--host", "0.0.0.0"])  # still reached on 127.0.0.1 only
    assert op.json("GET", "/vms")[0] == 200
    op.ok("POST", f"/vms/{VM}/start", 202)
    doc = op.problem("POST", f"/vms/{VM}/exec", 403, "forbidden", body={"command": ["true"]})
    assert "VM_OPERATOR_TOKEN" in doc["detail"]
    doc = op.problem("GET", f"/vms/{VM}/port-forward?port=22", 403, "forbidden", headers={
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert "token" in doc["detail"]


def test_without_a_token_on_loopback_exec_is_served(operator_factory: Any) -> None:
    op = operator_factory()
    op.ok("POST", f"/vms/{VM}/start", 202)
    status, answer = op.json("POST", f"/vms/{VM}/exec", body='{"command": ["true"]}',
                             headers={"Content-Type": "application/json"})
    assert (status, answer["exit_code"]) == (200, 0), answer
