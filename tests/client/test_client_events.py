"""The client's ``events`` command, end to end: ``python -m vm_operator.client events`` as a real
subprocess, against a stand-in server that drops its stream (the client resumes it with
Last-Event-ID) and against a real operator driving the simulator (restarted under it, refusing
it, telling one VM's events)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import LOCAL_VMS, REPO_ROOT, Operator
from support import (
    CLIENT,
    QuietHandler,
    StandIn,
    cli,
    client_env,
    interrupted,
    reaped,
    succeeded,
    wait_for,
)

Factory = Callable[..., Operator]


# --- a dropped stream is resumed --------------------------------------------------------------


def _event(event_id: int, kind: str, vm: str, data: dict[str, Any]) -> str:
    doc = {"id": event_id, "type": kind, "time": "2026-11-29T18:00:00Z", "vm": vm, "data": data}
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(doc)}\n\n"


class EventServer(StandIn):
    """A loopback stand-in for the operator's ``GET /events`` that drops the stream after two
    events: the first connection gets events 1 and 2 and is closed; the next ones get event 3
    and a ``reset``, then stay open. It records each request's ``Last-Event-ID``."""

    def __init__(self) -> None:
        self.resumed_from: list[str | None] = []
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                outer.resumed_from.append(self.headers.get("Last-Event-ID"))
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if len(outer.resumed_from) == 1:
                    body = ("retry: 100\n\n: heartbeat\n\n"
                            + _event(1, "vm.state", "ci", {"from": "stopped", "to": "running",
                                                           "cause": "api", "exit_code": None})
                            + _event(2, "vm.ready", "ci", {"ip": "192.168.64.2", "port": 22}))
                    self.wfile.write(body.encode())
                    return  # HTTP/1.0: the connection closes, the stream drops
                body = (_event(3, "vm.deleted", "ci", {"cause": "api"})
                        + "event: reset\ndata: {\"last_id\": 9}\n\n")
                self.wfile.write(body.encode())
                self.wfile.flush()
                outer.done.wait(30)

        super().__init__(Handler)


def watch(url: str, out_path: Path, *flags: str) -> subprocess.Popen[bytes]:
    """``vm-operator events FLAGS --url URL``, printing to ``out_path``."""
    with open(out_path, "wb") as sink:
        return subprocess.Popen([*CLIENT, "events", *flags, "--url", url], cwd=REPO_ROOT,
                                env=client_env(), stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.PIPE)


@pytest.mark.parametrize("json_mode", [False, True])
def test_events_resume_a_dropped_stream_with_last_event_id(json_mode: bool,
                                                           tmp_path: Path) -> None:
    server = EventServer()
    extra = ["--json"] if json_mode else []
    out_path = tmp_path / "events.out"
    try:
        with reaped(watch(server.url, out_path, *extra)) as proc:
            wait_for(lambda: out_path.read_bytes().count(b"\n") >= 3, timeout=20,
                     message="three events printed")
            err = interrupted(proc)
    finally:
        server.close()
    assert proc.returncode == 130
    assert server.resumed_from[:2] == [None, "2"]
    lines = out_path.read_text().splitlines()
    if json_mode:
        assert [json.loads(line)["id"] for line in lines] == [1, 2, 3]
    else:
        assert [line.split()[1:3] for line in lines] == [
            ["vm.state", "ci"], ["vm.ready", "ci"], ["vm.deleted", "ci"]]
        assert lines[0].endswith("stopped -> running (api)")
        assert lines[1].endswith("ready at 192.168.64.2:22")
    assert b"reconnecting after event 2" in err
    assert b"events were missed" in err


# --- against the operator ---------------------------------------------------------------------


def connected(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds an established TCP connection to loopback ``port``
    (from /proc: its socket inodes, and /proc/net/tcp's remote port and state)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                return True
    return False


def restart_under(proc: subprocess.Popen[bytes], first: Operator, operator_factory: Factory,
                  args: list[str]) -> Operator:
    """Stop ``first`` under a client watching it and start its successor on the same port,
    state and Tart home: the successor, once the client watches it."""
    wait_for(lambda: connected(proc.pid, first.port), timeout=20, message="the client watches")
    first.stop()
    wait_for(lambda: not connected(proc.pid, first.port), timeout=20,
             message="the stream dropped")
    second = operator_factory(args=[*args, "--port", str(first.port)],
                              tart_home=first.tart_home, state_dir=first.state_dir)
    wait_for(lambda: connected(proc.pid, second.port), timeout=30,
             message="the client watches the restarted operator")
    return second


def test_events_follows_the_operator_across_its_restart(operator_factory: Factory,
                                                        tmp_path: Path) -> None:
    """The client holds a stream; the operator restarts on the same port; the client
    reconnects by itself and holds a stream of the new operator."""
    args = ["--events-heartbeat", "0.2"]
    first = operator_factory(args=args)
    with reaped(watch(first.url, tmp_path / "events.out")) as proc:
        restart_under(proc, first, operator_factory, args)
        assert proc.poll() is None, proc.communicate()
        err = interrupted(proc)
    assert proc.returncode == 130
    assert b"the event stream dropped; reconnecting" in err


def test_events_across_a_restart_says_what_was_missed_and_never_goes_back(
        operator_factory: Factory, tmp_path: Path) -> None:
    """The client resumes from the first process's last event with the restarted operator:
    that id is none of the new process's, so the stream says reset (what happened while the
    operator was down is not silently lost), and the new events' ids are higher still."""
    args = ["--events-heartbeat", "0.2"]
    vm = LOCAL_VMS[2]  # a Linux guest: no macOS cap
    first = operator_factory(args=args)
    out_path = tmp_path / "events.out"

    def printed() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out_path.read_text().splitlines()]

    with reaped(watch(first.url, out_path, "--json")) as proc:
        wait_for(lambda: connected(proc.pid, first.port), timeout=20, message="the client watches")
        assert first.json("POST", f"/vms/{vm}/start")[0] == 202
        wait_for(lambda: any(e["type"] == "vm.state" for e in printed()), timeout=20,
                 message="the start is printed")
        second = restart_under(proc, first, operator_factory, args)
        assert second.json("POST", f"/vms/{vm}/stop")[0] == 200
        wait_for(lambda: [e["data"].get("to") for e in printed() if e["type"] == "vm.state"]
                 == ["running", "stopped"], timeout=20, message="the stop is printed")
        err = interrupted(proc)
    assert proc.returncode == 130
    assert b"events were missed" in err, err
    ids = [event["id"] for event in printed()]
    assert ids == sorted(set(ids)), ids  # rising across the restart, none twice


def test_events_refused_exits_1(operator_factory: Factory) -> None:
    guarded = operator_factory(env={"VM_OPERATOR_TOKEN": "events-test-token-0123456789"})
    result = cli(guarded, "events")
    assert result.returncode == 1 and result.stderr.startswith(b"vm-operator: 401 ")


def test_events_prints_a_line_per_event_of_the_vm_asked_for(operator_factory: Factory,
                                                           tmp_path: Path) -> None:
    """vm.ready is published once per run; --vm leaves out another VM's, which comes first."""
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "0", "TART_SIM_SSH_DELAY": "0"})
    sinks = {mode: tmp_path / f"events{mode}.out" for mode in ("", "--json")}
    procs = []
    for mode, path in sinks.items():
        with open(path, "wb") as sink:
            procs.append(subprocess.Popen(
                [*CLIENT, "events", "--vm", "ubuntu-runner", *([mode] if mode else []),
                 "--url", op.url], cwd=REPO_ROOT, env=client_env(), stdin=subprocess.DEVNULL,
                stdout=sink, stderr=subprocess.PIPE))
    try:
        for proc in procs:
            wait_for(lambda proc=proc: connected(proc.pid, op.port), timeout=20,
                     message="the client watches")
        succeeded(cli(op, "start", "macos-sequoia-base", "--wait", "ready"))
        succeeded(cli(op, "start", "ubuntu-runner", "--wait", "ready"))
        for path in sinks.values():
            wait_for(lambda path=path: b"vm.ready" in path.read_bytes(), timeout=20,
                     message="vm.ready printed")
        for proc in procs:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 130
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    published = [json.loads(line) for line in sinks["--json"].read_text().splitlines()]
    ready = [doc for doc in published if doc["type"] == "vm.ready"]
    assert len(ready) == 1 and ready[0]["vm"] == "ubuntu-runner"
    assert {doc["vm"] for doc in published} == {"ubuntu-runner"}
    lines = sinks[""].read_text().splitlines()
    assert len(lines) == len(published)
    line = next(line for line in lines if " vm.ready " in line)
    assert line.split()[2] == "ubuntu-runner"
    assert line.endswith(f"ready at {ready[0]['data']['ip']}:{ready[0]['data']['port']}")
