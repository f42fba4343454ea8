"""The event stream, end to end: a real operator over loopback
driving the simulator, read as Server-Sent Events by tests/sse_client.py.

Deadlines here are generous bounds on waiting, never timing assertions: the speed goals
(latency of an outside change, watchers' cost, memory) are figures of scripts/bench.py.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable

from conftest import Operator
from sse_client import EventReader
from support import read_until, wait_for

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


def start_seen(op: Operator, reader: EventReader) -> dict[str, object]:
    """Start the VM through the API once ``reader`` is subscribed (its retry came): the
    vm.state event that tells the start."""
    assert reader.next() is not None
    assert op.json("POST", f"/vms/{VM}/start")[0] == 202
    (started,) = states(reader, 1)
    return started


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
    for value in ("abc", "-1", "1.5", "\u00b2", "\u0663", "5" * 5000, "9007199254740992",
                  "00000000000000001"):
        with EventReader(operator.port, headers={"Last-Event-ID": value.encode().decode(
                "latin-1")}) as reader:
            assert reader.status == 400, value
            problem = json.loads(reader.body)
            assert problem["type"] == "/problems/bad-header", value
            assert "Last-Event-ID" in problem["detail"]
    for query in ("x", "%C2%B2", "5" * 5000, "9007199254740992"):
        with EventReader(operator.port, f"/events?last_event_id={query}") as reader:
            assert reader.status == 400, query
            assert json.loads(reader.body)["type"] == "/problems/invalid-parameter"


def test_header_and_query_take_the_same_event_ids(operator: Operator) -> None:
    """Sixteen digits (2**53 - 1, the largest id) are an id in either place."""
    for value in ("9007199254740991", "0", "1796578201123457"):
        with EventReader(operator.port, headers={"Last-Event-ID": value}) as by_header, \
                EventReader(operator.port, f"/events?last_event_id={value}") as by_query:
            assert (by_header.status, by_query.status) == (200, 200), value
            for reader in (by_header, by_query):
                reset = reader.next_event(10)  # no id this process issued
                assert reset is not None and reset.event == "reset", value


def test_ids_rise_across_a_restart_and_an_earlier_processs_id_resets(
        operator_factory: Factory) -> None:
    first = fast(operator_factory)
    with EventReader(first.port) as reader:
        started = start_seen(first, reader)
    first.stop()
    second = operator_factory(args=["--events-heartbeat", "0.2"], tart_home=first.tart_home,
                              state_dir=first.state_dir)
    with EventReader(second.port, headers={"Last-Event-ID": str(started["id"])}) as resumed:
        reset = resumed.next_event(10)
        assert reset is not None and reset.event == "reset", reset
        newest = reset.data["last_id"]
        assert newest > started["id"]  # what the new process issued so far, or just below it
        assert second.json("POST", f"/vms/{VM}/stop")[0] == 200
        live = resumed.next_event(10, "vm.state")
        assert live is not None and live.id == newest + 1 > started["id"]
    with EventReader(second.port, headers={"Last-Event-ID": str(newest)}) as again:
        missed = again.next_event(10)  # an id of this process: resumed, not reset
        assert missed is not None and missed.event == "vm.state" and missed.id == newest + 1


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



# --- what is told ------------------------------------------------------------------------------


def test_start_and_stop_through_the_api_are_told_once_with_cause_api(
        operator_factory: Factory) -> None:
    op = fast(operator_factory)
    with EventReader(op.port) as reader:
        assert reader.next() is not None  # retry: subscribed, the watcher has looked
        assert op.json("POST", f"/vms/{VM}/start")[0] == 202
        assert op.json("POST", f"/vms/{VM}/stop")[0] == 200
        started, stopped = states(reader, 2)
        assert (started["vm"], started["data"]) == (VM, {
            "from": "stopped", "to": "running", "cause": "api", "exit_code": None})
        assert (stopped["vm"], stopped["data"]) == (VM, {
            "from": "running", "to": "stopped", "cause": "api", "exit_code": None})
        assert stopped["id"] > started["id"]
        # the watcher, looking every second meanwhile, reports neither change again
        assert reader.next_event(3.0, "vm.state") is None
    _, history = op.json("GET", f"/vms/{VM}/events")
    assert [e["data"]["to"] for e in history["events"] if e["type"] == "vm.state"] == [
        "running", "stopped"]
    assert history["events"][0] == started


def test_a_suspend_through_the_api_is_told_with_cause_api(operator_factory: Factory) -> None:
    op = fast(operator_factory)
    mac = "macos-sequoia-base"
    with EventReader(op.port, f"/events?vm={mac}") as reader:
        assert reader.next() is not None
        assert op.json("POST", f"/vms/{mac}/start?suspendable=true")[0] == 202
        assert op.json("POST", f"/vms/{mac}/suspend")[0] == 200
        started, suspended = states(reader, 2)
        assert started["data"]["to"] == "running"
        assert suspended["data"] == {"from": "running", "to": "suspended", "cause": "api",
                                     "exit_code": None}
        assert reader.next_event(3.0, "vm.state") is None  # the run's end is not told again


def test_changes_made_outside_are_told_while_anyone_watches(operator_factory: Factory) -> None:
    op = fast(operator_factory)
    with EventReader(op.port) as reader:
        assert reader.next() is not None
        run = op.spawn_run(VM)  # someone typed `tart run` on the host
        (started,) = states(reader, 1)
        assert (started["vm"], started["data"]) == (VM, {
            "from": "stopped", "to": "running", "cause": "outside", "exit_code": None})
        assert op.tart("stop", VM).returncode == 0
        (stopped,) = states(reader, 1)
        assert (stopped["vm"], stopped["data"]) == (VM, {
            "from": "running", "to": "stopped", "cause": "outside", "exit_code": None})
        run.wait(10)

        assert op.tart("clone", VM, "made-outside").returncode == 0
        created = reader.next_event(20, "vm.created")
        assert created is not None
        assert (created.data["vm"], created.data["data"]) == ("made-outside", {"operation": None})
        (first,) = states(reader, 1)
        assert (first["vm"], first["data"]) == ("made-outside", {
            "from": None, "to": "stopped", "cause": "outside", "exit_code": None})
        assert op.tart("delete", "made-outside").returncode == 0
        deleted = reader.next_event(20, "vm.deleted")
        assert deleted is not None
        assert (deleted.data["vm"], deleted.data["data"]) == ("made-outside", {"cause": "outside"})


def test_a_brief_outside_run_a_read_saw_is_told_though_the_poller_missed_it(
        operator_factory: Factory) -> None:
    # the poller looks once at the subscription, then every 5 s: the run lives between two
    # looks, and only the reads' listings see it
    op = fast(operator_factory, "--watch-interval", "5")
    with EventReader(op.port) as reader:
        assert reader.next() is not None
        run = op.spawn_run(VM)
        wait_for(lambda: op.ok("GET", f"/vms/{VM}")["state"] == "running", 20,
                 message=f"{VM} read as running")
        run.send_signal(signal.SIGINT)
        run.wait(10)
        told = [(block.data["vm"], block.data["data"]["from"], block.data["data"]["to"],
                 block.data["data"]["cause"]) for block in
                [reader.next_event(20, "vm.state"), reader.next_event(20, "vm.state")]
                if block is not None]
        assert told == [(VM, "stopped", "running", "outside"), (VM, "running", "stopped", "outside")]


def test_a_run_of_the_operator_that_ends_by_itself_is_told_exited(
        operator_factory: Factory) -> None:
    op = fast(operator_factory)
    with EventReader(op.port) as reader:
        started = start_seen(op, reader)
        assert started["data"]["cause"] == "api"
        assert op.tart("stop", VM).returncode == 0  # the guest went away: the run ends, code 0
        (ended,) = states(reader, 1)
        assert (ended["vm"], ended["data"]) == (VM, {
            "from": "running", "to": "stopped", "cause": "exited", "exit_code": 0})
        assert reader.next_event(3.0, "vm.state") is None  # not told again as outside


def test_create_and_delete_are_told_with_their_operation(operator_factory: Factory) -> None:
    op = fast(operator_factory)
    with EventReader(op.port) as reader:
        assert reader.next() is not None
        status, created_op = op.json("POST", "/vms", body=json.dumps(
            {"name": "made-here", "from": VM}), headers={"Content-Type": "application/json"})
        assert status == 202, created_op
        types: list[str] = []
        ops: dict[str, object] = {}
        while "operation.succeeded" not in types:
            block = reader.next_event(30)
            assert block is not None, types
            types.append(block.event or "")
            if block.event and block.event.startswith("operation."):
                ops[block.event] = block.data["data"]
            if block.event == "vm.created":
                assert block.data["data"] == {"operation": created_op["id"]}
        assert types[0] == "operation.queued"
        assert types.index("operation.started") < types.index("vm.created") < types.index(
            "operation.succeeded")
        assert types[types.index("vm.created") + 1] == "vm.state"
        assert types.count("vm.state") == 1  # created stopped (no start asked)
        _, final = op.json("GET", f"/operations/{created_op['id']}")
        assert ops["operation.succeeded"] == final  # the operation as GET /operations/{id}
        assert op.request("DELETE", "/vms/made-here")[0] == 204
        deleted = reader.next_event(20, "vm.deleted")
        assert deleted is not None
        assert (deleted.data["vm"], deleted.data["data"]) == ("made-here", {"cause": "api"})
        assert reader.next_event(3.0, "vm.created") is None  # the watcher adds nothing


def test_the_vm_filter_shows_one_vms_events(operator_factory: Factory) -> None:
    op = fast(operator_factory)
    other = "macos-sequoia-base"
    with EventReader(op.port, f"/events?vm={VM}") as mine, EventReader(op.port) as everything:
        assert mine.next() is not None and everything.next() is not None
        assert op.json("POST", f"/vms/{other}/start")[0] == 202
        assert op.json("POST", f"/vms/{VM}/start")[0] == 202
        assert [e["vm"] for e in states(everything, 2)] == [other, VM]
        (only,) = states(mine, 1)
        assert only["vm"] == VM
        while (later := mine.next_event(2.0)) is not None:  # its vm.ready, say: only VM's own
            assert later.data["vm"] == VM, later.data
    assert EventReader(op.port, "/events?vm=bad%20name").status == 400


def test_last_event_id_resumes_or_resets(operator_factory: Factory) -> None:
    op = fast(operator_factory, "--events-history", "4")
    with EventReader(op.port) as reader:
        assert reader.next() is not None
        assert op.json("POST", f"/vms/{VM}/start")[0] == 202
        assert op.json("POST", f"/vms/{VM}/stop")[0] == 200
        first, second = states(reader, 2)
    # resumed after the first: the second comes first, then live events
    with EventReader(op.port, headers={"Last-Event-ID": str(first["id"])}) as resumed:
        missed = resumed.next_event(10, "vm.state")  # (a vm.ready may come between them)
        assert missed is not None and missed.id == second["id"] and missed.data == second
    with EventReader(op.port, f"/events?last_event_id={first['id']}") as by_query:
        missed = by_query.next_event(10, "vm.state")
        assert missed is not None and missed.id == second["id"]
    # the history holds 4 events: after four more, the first is gone
    for _ in range(2):
        assert op.json("POST", f"/vms/{VM}/start")[0] == 202
        assert op.json("POST", f"/vms/{VM}/stop")[0] == 200
    newest = op.json("GET", f"/vms/{VM}/events")[1]["events"][-1]["id"]
    with EventReader(op.port, headers={"Last-Event-ID": str(first["id"])}) as late:
        reset = late.next_event(10)
        assert reset is not None and reset.event == "reset" and reset.id is None
        assert reset.data == {"last_id": newest}
        assert op.json("POST", f"/vms/{VM}/start")[0] == 202
        live = late.next_event(10, "vm.state")
        assert live is not None and live.id == newest + 1  # then live events


def test_with_nobody_watching_the_operator_asks_tart_nothing(operator_factory: Factory) -> None:
    op = fast(operator_factory, "--watch-interval", "0.2")
    wait_for(lambda: all(call.finished for call in op.calls("--version")) and op.calls(),
             timeout=10, message="start-up's own call (tart --version) is done")
    before = len(op.calls())
    time.sleep(2.0)  # ten watch intervals, nobody watching, no requests
    assert len(op.calls()) == before
    with EventReader(op.port) as reader:  # somebody watches: the watcher lists
        assert reader.next() is not None
        wait_for(lambda: len(op.calls("list")) > 1, timeout=10,
                 message="the watcher lists while a stream is open")
    # the stream is closed; the server notices at once (its socket reads end of file)
    wait_for(lambda: metric(op, "vm_operator_event_watchers") == 0, timeout=10)
    time.sleep(0.5)  # a look under way when it ended is done
    quiet = len(op.calls())
    time.sleep(2.0)
    assert len(op.calls()) == quiet


def test_a_closed_stream_ends_at_once_and_the_watcher_stops_listing(
        operator_factory: Factory) -> None:
    """No heartbeat for a minute: the close is noticed by the socket's end of file, not by a
    write that fails; from then on nobody watches and Tart is not listed any more."""
    op = operator_factory(args=["--events-heartbeat", "60", "--watch-interval", "0.2"])
    with EventReader(op.port) as reader:
        assert reader.next() is not None
        wait_for(lambda: len(op.calls("list")) > 2, timeout=10,
                 message="the watcher lists while a stream is open")
    wait_for(lambda: metric(op, "vm_operator_event_watchers") == 0, timeout=10,
             message="the closed stream ended (not at its next heartbeat, a minute away)")
    wait_for(lambda: all(call.finished for call in op.calls("list")), timeout=10,
             message="a look under way when the stream ended is done")
    listed = len(op.calls("list"))
    time.sleep(1.0)  # five watch intervals
    assert len(op.calls("list")) == listed


def test_streams_opened_and_closed_give_their_slots_back_at_once(
        operator_factory: Factory) -> None:
    """Open and close as many streams as the limit: none holds its slot after its close."""
    op = operator_factory(args=["--events-heartbeat", "60"])
    for _ in range(128):  # the default --events-max-streams
        with socket.create_connection(("127.0.0.1", op.port), timeout=10) as sock:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = read_until(sock, b"retry: 2000")
            assert head.startswith(b"HTTP/1.1 200 "), head
    wait_for(lambda: metric(op, "vm_operator_event_watchers") == 0, timeout=10,
             message="every closed stream ended")
    with EventReader(op.port) as reader:
        assert reader.status == 200, reader.body
        assert reader.next() is not None


# --- slow readers and many watchers -----------------------------------------------------------


def metric(op: Operator, name: str) -> float:
    """One unlabelled series of GET /metrics."""
    _, _, text = op.request("GET", "/metrics")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not in /metrics")


def test_a_reader_that_does_not_read_is_dropped_and_holds_nothing(
        operator_factory: Factory) -> None:
    op = operator_factory(
        env={"TART_SIM_PULL_SECONDS": "1", "TART_SIM_PROGRESS_INTERVAL": "0.005"},
        args=["--events-queue", "4", "--header-timeout", "2", "--events-heartbeat", "60"])
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # a reader that never reads
    slow.connect(("127.0.0.1", op.port))
    slow.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        with EventReader(op.port) as fast_reader:
            wait_for(lambda: metric(op, "vm_operator_event_watchers") == 2, timeout=10)
            pulls = []
            for ref in ("ghcr.io/cirruslabs/ubuntu:latest", "ghcr.io/cirruslabs/ubuntu:jammy",
                        "ghcr.io/cirruslabs/macos-sonoma-base:latest"):
                status, pull = op.json("POST", "/images", body=json.dumps({"ref": ref}),
                                       headers={"Content-Type": "application/json"})
                assert status == 202, pull
                pulls.append(pull["id"])
            done: set[str] = set()
            while len(done) < len(pulls):  # the reader that reads sees every operation end
                block = fast_reader.next_event(60, "operation.succeeded")
                assert block is not None, f"only {done} of {pulls} succeeded"
                done.add(block.data["data"]["id"])
                assert op.request("GET", "/health", timeout=5)[0] == 200  # the server serves
            assert metric(op, "vm_operator_event_watchers_dropped_total") >= 1
            wait_for(lambda: metric(op, "vm_operator_event_watchers") == 1, timeout=15,
                     message="the dropped reader's stream ended; the reading one lives on")
            assert metric(op, "vm_operator_events_published_total") > 200
    finally:
        slow.close()


def test_many_watchers_cost_tart_what_one_costs(operator_factory: Factory) -> None:
    op = fast(operator_factory, "--watch-interval", "0.25")

    def lists_over(seconds: float) -> int:
        before = len(op.calls("list"))
        time.sleep(seconds)
        return len(op.calls("list")) - before

    with EventReader(op.port) as first:
        assert first.next() is not None
        one = lists_over(2.0)
        readers = [EventReader(op.port) for _ in range(30)]
        try:
            assert all(reader.status == 200 for reader in readers)
            assert metric(op, "vm_operator_event_watchers") == 31
            many = lists_over(2.0)
        finally:
            for reader in readers:
                reader.close()
    assert one >= 2  # the watcher does list while anyone watches ...
    # ... at most once per interval, however many watch (30 watchers of their own would list
    # 240 times in the window); not compared with `one`, which a loaded machine makes vary
    assert many <= 2.0 / 0.25 + 1, (one, many)
