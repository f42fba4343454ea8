"""GET /vms/{name}/ip against a real operator and the simulator: concurrent requests for one
VM share one ``tart ip`` (TART_SIM_CALL_LOG counts them), and the bound's refusal is declared."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from conftest import LOCAL_VMS, Operator

SEQUOIA, SONOMA, UBUNTU = LOCAL_VMS
VM = "ubuntu-runner"  # a Linux guest: no macOS cap

Factory = Callable[..., Operator]


def test_fifty_waits_for_one_vms_address_run_one_tart_ip(operator_factory: Factory) -> None:
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "8"})  # an address 8 s after the start
    assert op.json("POST", f"/vms/{VM}/start")[0] == 202
    answers: list[tuple[int, object]] = []
    lock = threading.Lock()
    go = threading.Barrier(50)

    def ask() -> None:
        go.wait(30)
        answer = op.json("GET", f"/vms/{VM}/ip?wait=60", timeout=90)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=ask) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(answers) == 50
    assert {status for status, _ in answers} == {200}, answers
    assert len({json.dumps(body) for _, body in answers}) == 1  # one address for all
    calls = op.calls("ip")
    assert len(calls) == 1, [call.argv for call in calls]  # 50 before: one process each


def test_the_ip_route_declares_the_bounds_refusal(operator: Operator) -> None:
    _, doc = operator.json("GET", "/openapi.json")
    answers = doc["paths"]["/vms/{name}/ip"]["get"]["responses"]
    assert "(too-many-ip-waits)" in answers["503"]["description"]
    status, page = operator.request("GET", "/problems/too-many-ip-waits")[0::2]
    assert status == 200 and b"Too many waits for IP addresses" in page


# --- a VM that is not running, and one that is ------------------------------------------------


def test_ip_of_a_vm_that_is_not_running_answers_at_once_whatever_the_wait(operator):
    # Without the fix each of these waits the whole ?wait= in `tart ip` (the client's timeout
    # ends the test instead); with it, Tart's `ip` is never asked.
    doc = operator.problem("GET", f"/vms/{SONOMA}/ip?wait=120", 409, "not-running", timeout=20)
    assert SONOMA in doc["detail"]
    operator.ok("POST", f"/vms/{SEQUOIA}/start?suspendable=true", 202)
    operator.ok("POST", f"/vms/{SEQUOIA}/suspend")
    operator.problem("GET", f"/vms/{SEQUOIA}/ip?wait=120", 409, "not-running", timeout=20)
    assert operator.calls("ip") == []
    # stopped outside the API just after the operator saw it running: a wait reads Tart afresh
    operator.ok("POST", f"/vms/{UBUNTU}/start", 202)
    assert operator.ok("GET", f"/vms/{UBUNTU}")["state"] == "running"
    assert operator.tart("stop", UBUNTU).returncode == 0
    operator.problem("GET", f"/vms/{UBUNTU}/ip?wait=120", 409, "not-running", timeout=20)
    # only the readiness look of the detail above (tart ip --wait 0) asked Tart
    assert {c.argv for c in operator.calls("ip")} <= {("ip", "--wait", "0", UBUNTU)}


def test_ip_of_a_running_vm_still_waits_through_tart(operator):
    operator.ok("POST", f"/vms/{SEQUOIA}/start", 202)
    body = operator.ok("GET", f"/vms/{SEQUOIA}/ip?wait=5")
    assert body["ip"] == operator.tart("ip", SEQUOIA).stdout.strip()
    assert [c.argv for c in operator.calls("ip")] == [("ip", "--wait", "5", SEQUOIA)]
