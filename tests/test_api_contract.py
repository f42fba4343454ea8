"""The API's contract where issue 9 found it broken (items 8, 13 and 16), end to end: a real
operator over loopback HTTP driving the Tart simulator, each test in its own TART_HOME.

- suspend: a precondition (not started suspendable) is a 409 that says how to fix it, never a
  502; suspending a suspended VM is unchanged, like start and stop;
- OCI images: every action that needs a local VM answers the same 409 ``oci-image``;
- /openapi.json tells the truth: the name schema states the rules the server applies, every
  operation has an operationId, and ``/ip?wait=`` answers at once for a VM that is not running.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from conftest import LOCAL_VMS, OCI_NAME, Operator, wait_for

SEQUOIA, SONOMA, UBUNTU = LOCAL_VMS
OCI_PATH = quote(OCI_NAME, safe="")
PROBLEM = "application/problem+json"
NOT_SUSPENDABLE_TITLE = "The VM was not started suspendable"


def problem(op: Operator, method: str, path: str, status: int, slug: str, **kw: Any) -> dict[str, Any]:
    """Assert a problem document with this status whose type names this slug; return it."""
    got, headers, body = op.request(method, path, **kw)
    assert got == status, f"{method} {path}: expected {status}, got {got}: {body[:600]!r}"
    assert headers.get_content_type() == PROBLEM, headers.get("Content-Type")
    doc = json.loads(body)
    assert doc["status"] == status and re.search(rf"\b{slug}$", doc["type"]), doc
    assert doc["title"] and doc["detail"], doc
    return doc


def ok(op: Operator, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    got, headers, body = op.request(method, path, **kw)
    assert got == status, f"{method} {path}: expected {status}, got {got}: {body[:600]!r}"
    assert headers.get_content_type() == "application/json", headers.get("Content-Type")
    return json.loads(body)


def tart_state(op: Operator, name: str) -> str:
    """The VM's state as Tart itself says, asked directly."""
    out = op.tart("list", "--format", "json")
    assert out.returncode == 0, out.stderr
    return {entry["Name"]: entry["State"] for entry in json.loads(out.stdout)}[name]


# --- item 8: suspend ------------------------------------------------------------------------


def test_suspend_of_a_vm_the_operator_started_without_suspendable_is_409(operator):
    ok(operator, "POST", f"/vms/{SEQUOIA}/start", 202)
    doc = problem(operator, "POST", f"/vms/{SEQUOIA}/suspend", 409, "not-suspendable")
    assert doc["title"] == NOT_SUSPENDABLE_TITLE
    assert "stop it" in doc["detail"] and "/start?suspendable=true" in doc["detail"], doc
    # known from the run's own record: Tart is not asked, the VM runs on
    assert operator.calls("suspend") == []
    assert tart_state(operator, SEQUOIA) == "running"
    assert ok(operator, "GET", f"/vms/{SEQUOIA}")["last_run"]["suspendable"] is False


def test_suspend_of_a_vm_started_outside_without_suspendable_maps_tarts_refusal(operator):
    operator.spawn_run(SEQUOIA)  # `tart run` typed by someone, without --suspendable
    wait_for(lambda: tart_state(operator, SEQUOIA) == "running")
    doc = problem(operator, "POST", f"/vms/{SEQUOIA}/suspend", 409, "not-suspendable")
    assert doc["title"] == NOT_SUSPENDABLE_TITLE
    assert "not started with --suspendable" in doc["detail"], doc  # Tart's own words
    assert "/start?suspendable=true" in doc["detail"], doc
    assert len(operator.calls("suspend")) == 1


def test_start_suspendable_on_a_vm_running_without_it_is_409_stop_first(operator):
    ok(operator, "POST", f"/vms/{SEQUOIA}/start", 202)
    doc = problem(operator, "POST", f"/vms/{SEQUOIA}/start?suspendable=true", 409, "not-suspendable")
    assert "stopped first" in doc["detail"], doc
    assert len(operator.calls("run")) == 1
    # a plain start of it is still unchanged
    assert ok(operator, "POST", f"/vms/{SEQUOIA}/start")["changed"] is False
    # the fix the detail gives works
    ok(operator, "POST", f"/vms/{SEQUOIA}/stop")
    ok(operator, "POST", f"/vms/{SEQUOIA}/start?suspendable=true", 202)
    again = ok(operator, "POST", f"/vms/{SEQUOIA}/start?suspendable=true")
    assert again["changed"] is False and again["state"] == "running"
    suspended = ok(operator, "POST", f"/vms/{SEQUOIA}/suspend")
    assert suspended["state"] == "suspended" and suspended["changed"] is True


def test_start_suspendable_of_a_linux_vm_is_409_not_502(operator):
    # Tart refuses --suspendable for Linux guests (a usage error, exit 64): the client's request
    # cannot be met, Tart did not fail
    doc = problem(operator, "POST", f"/vms/{UBUNTU}/start?suspendable=true", 409, "suspend-unsupported")
    assert "only suspend macOS VMs" in doc["detail"], doc
    assert tart_state(operator, UBUNTU) == "stopped"
    ok(operator, "POST", f"/vms/{UBUNTU}/start", 202)


def test_suspend_of_a_suspended_vm_is_200_unchanged(operator):
    ok(operator, "POST", f"/vms/{SEQUOIA}/start?suspendable=true", 202)
    first = ok(operator, "POST", f"/vms/{SEQUOIA}/suspend")
    assert first["state"] == "suspended" and first["changed"] is True
    again = ok(operator, "POST", f"/vms/{SEQUOIA}/suspend")
    assert again["state"] == "suspended" and again["changed"] is False
    assert len(operator.calls("suspend")) == 1
    assert tart_state(operator, SEQUOIA) == "suspended"
    # a stopped VM is still a precondition failure of its own
    problem(operator, "POST", f"/vms/{SONOMA}/suspend", 409, "not-running")


# --- item 13: OCI images ------------------------------------------------------------------------


def test_every_action_on_an_oci_image_is_409_oci_image(operator):
    detail = ok(operator, "GET", f"/vms/{OCI_PATH}")
    assert detail["source"] == "oci" and detail["name"] == OCI_NAME
    titles = set()
    for method, action in (("POST", "start"), ("POST", "stop"), ("POST", "suspend"),
                           ("GET", "ip"), ("GET", "ip?wait=30"), ("GET", "logs")):
        doc = problem(operator, method, f"/vms/{OCI_PATH}/{action}", 409, "oci-image")
        assert OCI_NAME in doc["detail"] and "tart clone" in doc["detail"], (action, doc)
        titles.add(doc["title"])
    assert len(titles) == 1, titles
    assert [c for c in operator.calls() if c.command not in ("--version", "list", "get")] == []


def test_logs_of_an_unknown_vm_and_of_a_vm_never_started_are_404(operator):
    doc = problem(operator, "GET", "/vms/no-such-vm/logs", 404, "no-logs")
    assert "no-such-vm" in doc["detail"]
    problem(operator, "GET", f"/vms/{SONOMA}/logs", 404, "no-logs")
    # a valid name whose state folder would be longer than a file name (found by schemathesis)
    long_name = quote("0/" * 127 + "0", safe="")
    problem(operator, "GET", f"/vms/{long_name}/logs", 404, "no-logs")


# --- item 16: /openapi.json tells the truth -------------------------------------------------------


def test_ip_of_a_vm_that_is_not_running_answers_at_once_whatever_the_wait(operator):
    # Without the fix each of these waits the whole ?wait= in `tart ip` (the client's timeout
    # ends the test instead); with it, Tart's `ip` is never asked.
    doc = problem(operator, "GET", f"/vms/{SONOMA}/ip?wait=120", 409, "not-running", timeout=20)
    assert SONOMA in doc["detail"]
    ok(operator, "POST", f"/vms/{SEQUOIA}/start?suspendable=true", 202)
    ok(operator, "POST", f"/vms/{SEQUOIA}/suspend")
    problem(operator, "GET", f"/vms/{SEQUOIA}/ip?wait=120", 409, "not-running", timeout=20)
    assert operator.calls("ip") == []
    # stopped outside the API just after the operator saw it running: a wait reads Tart afresh
    ok(operator, "POST", f"/vms/{UBUNTU}/start", 202)
    assert ok(operator, "GET", f"/vms/{UBUNTU}")["state"] == "running"
    assert operator.tart("stop", UBUNTU).returncode == 0
    problem(operator, "GET", f"/vms/{UBUNTU}/ip?wait=120", 409, "not-running", timeout=20)
    # only the readiness look of the detail above (tart ip --wait 0) asked Tart
    assert {c.argv for c in operator.calls("ip")} <= {("ip", "--wait", "0", UBUNTU)}


def test_ip_of_a_running_vm_still_waits_through_tart(operator):
    ok(operator, "POST", f"/vms/{SEQUOIA}/start", 202)
    body = ok(operator, "GET", f"/vms/{SEQUOIA}/ip?wait=5")
    assert body["ip"] == operator.tart("ip", SEQUOIA).stdout.strip()
    assert [c.argv for c in operator.calls("ip")] == [("ip", "--wait", "5", SEQUOIA)]


def test_every_operation_has_a_unique_camel_case_operation_id(operator):
    doc = ok(operator, "GET", "/openapi.json")
    ids = [operation.get("operationId") for item in doc["paths"].values()
           for method, operation in item.items()
           if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}]
    assert ids and all(isinstance(i, str) and re.fullmatch(r"[a-z][a-zA-Z0-9]*", i) for i in ids), ids
    assert len(set(ids)) == len(ids), ids
    assert {"listVms", "getVm", "startVm", "stopVm", "suspendVm"} <= set(ids), ids


def published_name_schema(doc: dict[str, Any]) -> dict[str, Any]:
    schemas = [param["schema"] for item in doc["paths"].values() for operation in item.values()
               for param in operation.get("parameters", []) if param["in"] == "path"
               and param["name"] in ("name", "ref")]  # an image is named as a VM is
    from vm_operator.api import ROUTES
    from vm_operator.api.params import VM_NAME

    declared = sum(param.type is VM_NAME for route in ROUTES for param in route.path)
    assert len(schemas) == declared >= 6, schemas
    assert all(schema == schemas[0] for schema in schemas), schemas
    return schemas[0]


# Names the tester sent (C1 controls, unassigned code points), Unicode that looks like ASCII,
# and names at each edge of the rules.
SAMPLES = ["macos-ci", "ghcr.io/org/img:tag", "a/-b", "...", ".x", "a" * 255, "!~$'`;&|",
           "next\u0085line", "x\u0088", "unassigned\u0378", "Ünïcödé-vm", "\u0430pple", "e\u0301",
           "has space", "-rf", "a//b", "a/./b", "a/..", "a" * 256, "tab\tx", "del\x7f"]


def test_the_name_schema_states_the_rules_the_server_applies(operator):
    schema = published_name_schema(ok(operator, "GET", "/openapi.json"))
    assert schema["type"] == "string" and schema["minLength"] == 1 and schema["maxLength"] == 255
    pattern = schema["pattern"]
    disagree = []
    for name in SAMPLES:
        # JSON Schema's (ECMA-262) reading of an anchored pattern is Python's fullmatch
        allowed = len(name) <= schema["maxLength"] and re.fullmatch(pattern, name) is not None
        for method, template in (("GET", "/vms/{}"), ("POST", "/vms/{}/suspend"),
                                 ("DELETE", "/images/{}")):
            status, _, body = operator.request(method, template.format(quote(name, safe="")))
            if (status != 400) != allowed:
                disagree.append(f"{name!a}: schema allows={allowed}, {method} -> {status} {body[:160]!r}")
    assert not disagree, "\n".join(disagree)
    assert [c for c in operator.calls() if c.command not in ("--version", "list", "get")] == []


# --- query booleans and the start's timeout: accepted as their texts say ----------------------

README = Path(__file__).resolve().parents[1] / "README.md"


def test_a_boolean_query_value_is_exactly_one_of_the_words_its_refusal_names(operator):
    for name, path in (("suspendable", f"/vms/{SEQUOIA}/start"), ("force", f"/vms/{SONOMA}")):
        method = "POST" if name == "suspendable" else "DELETE"
        for value in ("1", "0", "TRUE", "False", "yes", "on", ""):
            doc = problem(operator, method, f"{path}?{name}={value}", 400, "invalid-parameter")
            assert doc["detail"] == f"{name} must be true or false", doc
    assert [c for c in operator.calls() if c.command in ("run", "stop", "delete")] == []
    ok(operator, "POST", f"/vms/{SEQUOIA}/start?suspendable=false", 202)
    assert "--suspendable" not in operator.calls("run")[0].argv
    assert operator.request("DELETE", f"/vms/{SONOMA}?force=true")[0] == 204


def test_the_start_timeout_is_checked_without_wait_ready_and_bounds_nothing_there(operator):
    for value in ("0", "901", "abc"):
        doc = problem(operator, "POST", f"/vms/{SEQUOIA}/start?timeout={value}", 400,
                      "invalid-parameter")
        assert "timeout" in doc["detail"], doc
    assert operator.calls("run") == []
    ok(operator, "POST", f"/vms/{SEQUOIA}/start?timeout=1", 202)  # started: not bounded by it
    start = ok(operator, "GET", "/openapi.json")["paths"]["/vms/{name}/start"]["post"]
    said = next(p["description"] for p in start["parameters"] if p["name"] == "timeout")
    row = next(line for line in README.read_text().splitlines()
               if line.startswith("| `POST /vms/{name}/start` |"))
    for text in (said, row):  # the document and the README say the same, and what is done
        assert "ignored" not in text.lower(), text
        assert "checked" in text.lower() and "bounds nothing" in text, text
