"""Failed tokens are throttled per client address: past the bound, 429 with Retry-After (valid
tokens included) from that address, while another address is served."""

from __future__ import annotations

import http.client
import json
from typing import Any

FULL = "full-access-token-0123456789"
BOUND = 10  # failures a minute per address (edge/throttle.py), as the README says


def _get(port: int, token: str, source: str = "127.0.0.1") -> tuple[int, str | None, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", "/vms", headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
        return response.status, response.getheader("Retry-After"), json.loads(body)
    finally:
        conn.close()


def test_past_the_bound_an_address_gets_429_and_another_is_served(operator_factory: Any) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL})
    for _ in range(BOUND):
        assert _get(op.port, "guessed-token-0000000000")[0] == 401
    status, retry_after, doc = _get(op.port, FULL)  # even the right token, from there
    assert (status, doc["type"]) == (429, "/problems/too-many-failures")
    assert retry_after is not None and 1 <= int(retry_after) <= 60
    assert _get(op.port, "guessed-token-0000000000")[0] == 429
    assert _get(op.port, FULL, source="127.0.0.2")[0] == 200  # another loopback address
    assert _get(op.port, "guessed-token-0000000000", source="127.0.0.2")[0] == 401
    status, _, _ = op.request("GET", "/health")
    assert status == 200  # the probes need no token, and are not throttled


def test_requests_without_a_token_are_not_failures(operator_factory: Any) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL})
    for _ in range(BOUND + 2):
        assert op.request("GET", "/vms")[0] == 401
    assert _get(op.port, FULL)[0] == 200
