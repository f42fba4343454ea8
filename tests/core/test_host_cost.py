"""A host that barely notices the operator, over HTTP against the simulator:

- a VM's configuration (``tart get``) is read once and kept until the operator changes the VM
  (or VM_OPERATOR_CONFIG_TTL passes), while its state stays as fresh as before;
- ``GET /vms`` and ``GET /vms/{name}`` carry an ``ETag``; ``If-None-Match`` gets a 304.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from conftest import Operator
from support import wait_for

VM = "ubuntu-runner"  # a seeded, stopped Linux VM (no macOS slot cap in the way)
PAST_STATE_TTL = 1.2  # seconds: longer than the default VM_OPERATOR_CACHE_TTL (1 s)


def gets_of(operator: Operator, name: str) -> int:
    return sum(1 for call in operator.calls("get") if name in call.argv)


# --- the configuration cache -----------------------------------------------------------------


def test_a_polled_vm_costs_one_tart_get_while_its_state_stays_fresh(operator: Operator) -> None:
    status, first = operator.json("GET", f"/vms/{VM}")
    assert status == 200 and first["state"] == "stopped"
    for _ in range(3):  # a dashboard polling past the state's freshness bound
        time.sleep(PAST_STATE_TTL)
        assert operator.json("GET", f"/vms/{VM}")[0] == 200
    lists_before = len(operator.calls("list"))
    outside = operator.spawn_run(VM)  # `tart run` typed by hand
    wait_for(lambda: operator.json("GET", f"/vms/{VM}")[1]["state"] == "running", timeout=10)
    assert len(operator.calls("list")) > lists_before  # the state came from a new `tart list`
    assert gets_of(operator, VM) == 1
    outside.terminate()
    outside.wait(10)


def test_a_patch_is_seen_at_once_and_costs_one_more_tart_get(operator: Operator) -> None:
    operator.json("GET", f"/vms/{VM}")
    status, changed = operator.json("PATCH", f"/vms/{VM}", {"Content-Type": "application/json"},
                                    json.dumps({"cpu": 3}))
    assert status == 200 and changed["cpu"] == 3
    assert operator.json("GET", f"/vms/{VM}")[1]["cpu"] == 3
    assert gets_of(operator, VM) == 2


def test_a_tart_set_typed_by_hand_is_seen_within_the_config_ttl(
        operator_factory: Callable[..., Operator]) -> None:
    operator = operator_factory(args=["--config-ttl", "2"])
    cpu = operator.json("GET", f"/vms/{VM}")[1]["cpu"]
    assert operator.tart("set", VM, "--cpu", str(cpu + 1)).returncode == 0
    wait_for(lambda: operator.json("GET", f"/vms/{VM}")[1]["cpu"] == cpu + 1, timeout=10)


# --- ETag and If-None-Match -------------------------------------------------------------------


def test_get_vms_carries_an_etag_and_a_match_gets_a_304(operator: Operator) -> None:
    status, headers, body = operator.request("GET", "/vms")
    tag = headers["ETag"]
    assert status == 200 and tag.startswith('"') and tag.endswith('"') and body
    status, headers, body = operator.request("GET", "/vms", {"If-None-Match": tag})
    assert (status, body, headers["ETag"]) == (304, b"", tag)
    assert headers["Content-Length"] is None
    status, headers, _ = operator.request("GET", "/vms", {"If-None-Match": '"other"'})
    assert status == 200 and headers["ETag"] == tag


def test_the_detail_carries_an_etag_that_follows_the_vm(operator: Operator) -> None:
    status, headers, body = operator.request("GET", f"/vms/{VM}")
    tag = headers["ETag"]
    assert status == 200 and json.loads(body)["name"] == VM
    assert operator.request("GET", f"/vms/{VM}", {"If-None-Match": tag})[0] == 304
    assert operator.json("PATCH", f"/vms/{VM}", {"Content-Type": "application/json"},
                         json.dumps({"cpu": 3}))[0] == 200
    status, headers, body = operator.request("GET", f"/vms/{VM}", {"If-None-Match": tag})
    assert status == 200 and json.loads(body)["cpu"] == 3
    assert headers["ETag"] != tag
    other = operator.request("GET", "/vms/macos-sequoia-base")[1]["ETag"]
    assert other not in (tag, headers["ETag"])


def test_if_none_match_lists_weak_tags_and_star(operator: Operator) -> None:
    tag = operator.request("GET", "/vms")[1]["ETag"]
    for header in ("*", f"W/{tag}", f'"a", {tag}', f'W/"b",{tag} , "c"'):
        assert operator.request("GET", "/vms", {"If-None-Match": header})[0] == 304, header
    for header in ('"a", "b"', tag[:-2] + '"', "not a tag", f"{tag}x"):
        assert operator.request("GET", "/vms", {"If-None-Match": header})[0] == 200, header


def test_head_answers_as_get_does(operator: Operator) -> None:
    _, got, body = operator.request("GET", f"/vms/{VM}")
    status, headers, head_body = operator.request("HEAD", f"/vms/{VM}")
    assert (status, head_body, headers["ETag"]) == (200, b"", got["ETag"])
    assert headers["Content-Length"] == str(len(body))
    status, headers, _ = operator.request("HEAD", f"/vms/{VM}", {"If-None-Match": got["ETag"]})
    assert (status, headers["ETag"]) == (304, got["ETag"])


def test_only_a_200_is_tagged_or_not_modified(operator: Operator) -> None:
    status, headers, _ = operator.request("GET", "/vms/no-such-vm", {"If-None-Match": "*"})
    assert status == 404 and headers["ETag"] is None
    status, headers, _ = operator.request("GET", "/health", {"If-None-Match": "*"})
    assert status == 200 and headers["ETag"] is None  # a route that does not declare it


def test_the_openapi_document_declares_the_etag_and_the_304(operator: Operator) -> None:
    paths = operator.json("GET", "/openapi.json")[1]["paths"]
    for path in ("/vms", "/vms/{name}"):
        responses = paths[path]["get"]["responses"]
        assert "ETag" in responses["200"]["headers"]
        assert "ETag" in responses["304"]["headers"]
    assert "304" not in paths["/health"]["get"]["responses"]
