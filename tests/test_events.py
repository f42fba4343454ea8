"""The event stream, end to end (issue 13, "An event stream"): a real operator over loopback
driving the simulator, read as Server-Sent Events by tests/sse_client.py.

Deadlines here are generous bounds on waiting, never timing assertions: the speed goals
(latency of an outside change, watchers' cost, memory) are figures of scripts/bench.py.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable

from conftest import Operator, wait_for
from sse_client import EventReader

TOKEN = "full-access-token-0123456789abcdef"
READ_TOKEN = "read-only-token-0123456789abcdef"
VM = "ubuntu-runner"  # a Linux guest: no macOS slot cap in the way

Factory = Callable[..., Operator]


def fast(factory: Factory, *args: str, env: dict[str, str | None] | None = None) -> Operator:
    """An operator whose quiet streams beat every 0.2 s."""
    return factory(env=env, args=["--events-heartbeat", "0.2", *args])


def states(reader: EventReader, count: int, timeout: float = 20.0) -> list[dict[str, object]]:
    """The next ``count`` vm.state events' JSON."""
    found = []
    for _ in range(count):
        block = reader.next_event(timeout, "vm.state")
        assert block is not None, f"only {found} of {count} vm.state events arrived"
        found.append(block.data)
    return found


# --- the stream itself ------------------------------------------------------------------------


def test_the_stream_opens_with_retry_then_beats_while_quiet(operator_factory: Factory) -> None:
    op = fast(operator_factory)
    with EventReader(op.port) as reader:
        assert reader.status == 200
        assert reader.headers["Content-Type"].startswith("text/event-stream")
        assert reader.headers["Cache-Control"] == "no-store"
        first = reader.next()
        assert first is not None and first.fields == {"retry": "2000"}
        beat = reader.next()
        assert beat is not None and beat.comments == ["heartbeat"] and not beat.fields


def test_the_document_declares_the_stream(operator: Operator) -> None:
    _, doc = operator.json("GET", "/openapi.json")
    stream = doc["paths"]["/events"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {p["name"] for p in stream["parameters"]} == {"vm", "last_event_id"}
    assert "503" in stream["responses"] and "401" in stream["responses"]
    assert "/vms/{name}/events" in doc["paths"]


def test_tokens_guard_the_stream_as_every_get(operator_factory: Factory) -> None:
    op = fast(operator_factory, env={"VM_OPERATOR_TOKEN": TOKEN,
                                     "VM_OPERATOR_READ_TOKEN": READ_TOKEN})
    with EventReader(op.port) as anonymous:
        assert anonymous.status == 401
        assert json.loads(anonymous.body)["type"] == "/problems/unauthorized"
    with EventReader(op.port, headers={"Authorization": f"Bearer {TOKEN}x"}) as wrong:
        assert wrong.status == 401
    with EventReader(op.port, headers={"Authorization": f"Bearer {READ_TOKEN}"}) as reader:
        assert reader.status == 200
        assert reader.next() is not None
    assert op.request("GET", f"/vms/{VM}/events")[0] == 401
    assert op.request("GET", f"/vms/{VM}/events",
                      {"Authorization": f"Bearer {READ_TOKEN}"})[0] == 200


def test_streams_past_the_limit_get_a_prompt_503(operator_factory: Factory) -> None:
    op = fast(operator_factory, "--events-max-streams", "2")
    with EventReader(op.port) as one, EventReader(op.port) as two:
        assert (one.status, two.status) == (200, 200)
        with EventReader(op.port) as three:
            assert three.status == 503
            assert three.headers["Retry-After"] == "5"
            assert json.loads(three.body)["type"] == "/problems/too-many-streams"
        assert op.request("GET", "/vms")[0] == 200  # the other requests are served
    # the slots come back when streams end
    def accepted() -> bool:
        with EventReader(op.port) as again:
            return again.status == 200

    wait_for(accepted, timeout=10, message="a stream is accepted again once the others closed")


def test_a_bad_last_event_id_is_refused(operator: Operator) -> None:
    for value in ("abc", "-1", "1.5"):
        with EventReader(operator.port, headers={"Last-Event-ID": value}) as reader:
            assert reader.status == 400, value
            assert json.loads(reader.body)["type"] == "/problems/bad-header"
    with EventReader(operator.port, "/events?last_event_id=x") as reader:
        assert reader.status == 400


def test_shutdown_with_open_streams_is_prompt(operator_factory: Factory) -> None:
    op = operator_factory(args=["--events-heartbeat", "60"])  # nothing would end them soon
    readers = [EventReader(op.port) for _ in range(5)]
    try:
        for reader in readers:
            assert reader.status == 200 and reader.next() is not None
        code, _ = op.stop(signal.SIGTERM, timeout=10)  # fails the test if not prompt
        assert code == 0
        for reader in readers:  # each stream was ended by the server, not left hanging
            assert reader.ended.wait(5)
    finally:
        for reader in readers:
            reader.close()
    stopped = [r for r in op.log_records() if r.get("event") == "stopped"]
    assert stopped and stopped[0]["unfinished_requests"] == 0  # ended, not abandoned


# --- a VM's history ------------------------------------------------------------------------------


def test_a_vms_history_is_404_only_when_nobody_knows_it(operator: Operator) -> None:
    status, body = operator.json("GET", f"/vms/{VM}/events")
    assert (status, body) == (200, {"events": []})
    status, body = operator.json("GET", "/vms/no-such-vm/events")
    assert status == 404 and body["type"] == "/problems/vm-not-found"

