"""The client's commands over operations, images and the host, end to end: ``python -m
vm_operator.client`` as a real subprocess against a real operator driving the simulator.

create and images pull follow their operation: the simulator's knobs make a pull slow
(TART_SIM_PULL_SECONDS, TART_SIM_PROGRESS_INTERVAL) or stall it at a percentage
(TART_SIM_PULL_HANG), so the progress lines on stderr can be read, and a stalled pull cancelled.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest
from conftest import LOCAL_VMS, OCI_NAME, REPO_ROOT, Operator
from support import (
    CLIENT,
    api,
    cli,
    client_env,
    columns_of,
    free_port,
    interrupted,
    reaped,
    run_client,
    succeeded,
    wait_for,
)

UBUNTU = "ghcr.io/cirruslabs/ubuntu:latest"  # in the registry, not in the demo's cache
SLOW_PULL = {"TART_SIM_PULL_SECONDS": "1.5", "TART_SIM_PROGRESS_INTERVAL": "0.1"}
FAST_PULL = {"TART_SIM_PULL_SECONDS": "0.3", "TART_SIM_PROGRESS_INTERVAL": "0.05"}
STALLED_PULL = {**FAST_PULL, "TART_SIM_PULL_HANG": "40"}

Factory = Callable[..., Operator]


def percentages(stderr: bytes, stage: str = "pulling") -> list[int]:
    lines = re.findall(rf"^{stage}: ([0-9]+)%$", stderr.decode(), re.MULTILINE)
    return [int(value) for value in lines]


def popen(op: Operator, *args: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLIENT, *args, "--url", op.url], cwd=REPO_ROOT, env=client_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)


def operations(op: Operator) -> list[dict[str, Any]]:
    listed = api(op, "GET", "/operations")
    assert isinstance(listed, list)
    return listed


def running_operation(op: Operator) -> dict[str, Any]:
    """The one operation of ``op``, once its stalled pull shows 40 %."""
    return wait_for(lambda: next((doc for doc in operations(op) if doc["progress"] == 40), None),
                    timeout=20, message="the pull stalled at 40%")


# --- create ----------------------------------------------------------------------------------


def test_create_follows_the_pull_with_rising_percentages_to_100(operator_factory: Factory) -> None:
    op = operator_factory(env=SLOW_PULL)
    result = cli(op, "create", "ci", "--from", UBUNTU, "--cpu", "3", "--memory", "4096",
                 "--display", "1280x800")
    assert succeeded(result) == "created ci\n"
    seen = percentages(result.stderr)
    assert seen == sorted(seen) and len(set(seen)) >= 3, result.stderr  # rising, seen on the way
    assert any(0 < value < 100 for value in seen), seen
    assert seen[-1] == 100 and seen.count(100) == 1
    stages = [line for line in result.stderr.decode().splitlines() if line.endswith("...")]
    # every phase, in the operation's order (told by the event stream: none is missed)
    assert stages == ["queued...", "cloning...", "pulling...", "configuring..."], stages
    detail = api(op, "GET", "/vms/ci")
    assert (detail["cpu"], detail["memory_mb"], detail["display"]) == (3, 4096, "1280x800")
    assert detail["state"] == "stopped"


def test_create_json_is_the_finished_operation_and_start_starts_it(operator: Operator) -> None:
    result = cli(operator, "create", "copy", "--from", "ubuntu-runner", "--start", "--json")
    doc = json.loads(succeeded(result))
    assert doc["state"] == "succeeded" and doc["kind"] == "create" and doc["vm"] == "copy"
    assert doc == api(operator, "GET", f"/operations/{doc['id']}")
    assert api(operator, "GET", "/vms/copy")["state"] == "running"
    made = succeeded(cli(operator, "create", "copy2", "--from", "ubuntu-runner", "--start"))
    assert made == "created and started copy2\n"


def test_create_draws_a_bar_on_a_terminal(operator_factory: Factory) -> None:
    op = operator_factory(env=SLOW_PULL)
    main, secondary = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(main, 4096)
            except OSError:  # EIO once the last writer closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = popen(op, "create", "tty", "--from", UBUNTU, stderr=secondary)
        os.close(secondary)
        out, _ = proc.communicate(timeout=60)
        reader.join(10)
    finally:
        os.close(main)
    assert proc.returncode == 0 and out == b"created tty\n"
    drawn = b"".join(chunks).decode()
    frames = [frame for frame in drawn.replace("\n", "\r").split("\r") if "[" in frame]
    assert len(frames) >= 3, drawn  # redrawn in place, not one line per percentage
    assert any(re.search(r"\[#+-+\]\s+[0-9]+%", frame) for frame in frames), frames  # partial
    assert frames[-1].rstrip().endswith("[" + "#" * frames[-1].count("#") + "] 100%")
    assert not re.search(r"^pulling: [0-9]+%", drawn, re.MULTILINE)  # no plain lines there


def test_a_failed_create_exits_1_with_the_problem(operator_factory: Factory) -> None:
    op = operator_factory(env=FAST_PULL)
    missing = cli(op, "create", "nope", "--from", "ghcr.io/cirruslabs/no-such-image:latest")
    assert missing.returncode == 1 and missing.stdout == b""
    assert re.search(rb"^vm-operator: create nope failed: [0-9]{3} [a-z-]+: ", missing.stderr,
                     re.MULTILINE)
    failed = [doc for doc in operations(op) if doc["vm"] == "nope"]
    assert failed and failed[0]["state"] == "failed"
    taken = cli(op, "create", "ubuntu-runner", "--from", UBUNTU)  # refused before it is queued
    assert taken.returncode == 1
    assert taken.stderr.startswith(b"vm-operator: 409 vm-exists: ")


def test_an_operation_that_timed_out_exits_4(operator_factory: Factory) -> None:
    """tart set hangs past the operator's Tart timeout: the create fails with a 504
    tart-timeout, and the client says it timed out."""
    op = operator_factory(env={"TART_SIM_HANG": "set"}, args=["--tart-timeout", "1"])
    result = cli(op, "create", "slow", "--from", "ubuntu-runner", "--cpu", "2")
    assert result.returncode == 4, result.stderr
    assert b"create slow failed: 504 tart-timeout: " in result.stderr


def test_detach_prints_the_operation_id(operator_factory: Factory) -> None:
    op = operator_factory(env=FAST_PULL)
    op_id = succeeded(cli(op, "create", "later", "--from", UBUNTU, "--detach")).strip()
    assert api(op, "GET", f"/operations/{op_id}")["vm"] == "later"
    doc = wait_for(lambda: (d := api(op, "GET", f"/operations/{op_id}"))["finished_at"] and d,
                   timeout=20, message="the create ended")
    assert doc["state"] == "succeeded"


def test_ctrl_c_stops_following_not_the_operation(operator_factory: Factory) -> None:
    op = operator_factory(env=STALLED_PULL)
    proc = popen(op, "create", "held", "--from", UBUNTU)
    with reaped(proc):
        doc = running_operation(op)
        err = interrupted(proc)
    assert proc.returncode == 130
    assert f"vm-operator ops cancel {doc['id']}".encode() in err
    assert api(op, "GET", f"/operations/{doc['id']}")["state"] == "running"  # it goes on


def test_following_an_operation_cancelled_elsewhere_exits_1(operator_factory: Factory) -> None:
    op = operator_factory(env=STALLED_PULL)
    proc = popen(op, "images", "pull", UBUNTU)
    with reaped(proc):
        doc = running_operation(op)
        assert op.json("POST", f"/operations/{doc['id']}/cancel")[0] in (200, 202)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and out == b""
    assert f"the operation {doc['id']} was cancelled".encode() in err


# --- delete, set -----------------------------------------------------------------------------


def test_delete_and_delete_force(operator: Operator) -> None:
    assert succeeded(cli(operator, "delete", "macos-sonoma-xcode")) == "deleted macos-sonoma-xcode\n"
    assert operator.json("GET", "/vms/macos-sonoma-xcode")[0] == 404
    succeeded(cli(operator, "start", "ubuntu-runner"))
    running = cli(operator, "delete", "ubuntu-runner")
    assert running.returncode == 1 and running.stderr.startswith(b"vm-operator: 409 ")
    forced = cli(operator, "delete", "ubuntu-runner", "--force", "--timeout", "5", "--json")
    assert forced.returncode == 0 and forced.stdout == b""  # 204: no JSON to print
    assert operator.json("GET", "/vms/ubuntu-runner")[0] == 404
    again = cli(operator, "delete", "ubuntu-runner")
    assert again.returncode == 1 and b"404 vm-not-found" in again.stderr


def test_set_changes_a_stopped_vm(operator: Operator) -> None:
    lines = succeeded(cli(operator, "set", "ubuntu-runner", "--cpu", "3", "--memory", "3072",
                   "--display", "1024x768")).splitlines()
    shown = {key: value.strip() for key, value in (line.split(":  ", 1) for line in lines)}
    assert (shown["cpu"], shown["memory"], shown["display"]) == ("3", "3072 MB", "1024x768")
    detail = api(operator, "GET", "/vms/ubuntu-runner")
    assert (detail["cpu"], detail["memory_mb"], detail["display"]) == (3, 3072, "1024x768")
    as_json = json.loads(succeeded(cli(operator, "set", "ubuntu-runner", "--disk", "60", "--json")))
    detail = api(operator, "GET", "/vms/ubuntu-runner")
    assert as_json["disk_gb"] == 60 == detail["disk_gb"]
    assert as_json == {key: detail[key] for key in as_json}  # the server's answer, as sent
    succeeded(cli(operator, "start", "ubuntu-runner"))
    refused = cli(operator, "set", "ubuntu-runner", "--cpu", "2")
    assert refused.returncode == 1 and refused.stderr.startswith(b"vm-operator: 409 ")


# --- images --------------------------------------------------------------------------------------


def test_images_pull_shows_progress_then_lists_it(operator_factory: Factory) -> None:
    op = operator_factory(env=SLOW_PULL)
    result = cli(op, "images", "pull", UBUNTU)
    assert succeeded(result) == f"pulled {UBUNTU}\n"
    seen = percentages(result.stderr)
    assert seen == sorted(seen) and len(set(seen)) >= 3 and seen[-1] == 100, result.stderr
    listed = json.loads(succeeded(cli(op, "images", "--json")))
    assert listed == api(op, "GET", "/images")
    assert UBUNTU in [image["ref"] for image in listed]
    lines = succeeded(cli(op, "images")).splitlines()
    assert list(columns_of(lines[0])) == ["REF", "KIND", "DISK", "SIZE", "ACCESSED"]
    refs = [line.split()[0] for line in lines[1:]]
    assert refs == [image["ref"] for image in listed]
    ubuntu = next(line for line in lines if line.startswith(UBUNTU + " "))
    image = next(image for image in listed if image["ref"] == UBUNTU)
    assert f" {image['disk_gb']} GB" in ubuntu and " tag " in ubuntu


def test_images_rm_and_prune(operator_factory: Factory) -> None:
    op = operator_factory(env=FAST_PULL)
    succeeded(cli(op, "images", "pull", UBUNTU))
    assert succeeded(cli(op, "images", "rm", UBUNTU)) == f"removed {UBUNTU}\n"
    assert UBUNTU not in [image["ref"] for image in api(op, "GET", "/images")]
    missing = cli(op, "images", "rm", UBUNTU)
    assert missing.returncode == 1 and missing.stderr.startswith(b"vm-operator: 404 ")
    assert OCI_NAME in [image["ref"] for image in api(op, "GET", "/images")]
    pruned = json.loads(succeeded(cli(op, "images", "prune", "--space-budget", "0", "--json")))
    assert pruned["kind"] == "prune" and pruned["state"] == "succeeded"
    assert api(op, "GET", "/images") == []
    assert succeeded(cli(op, "images")) == ""  # nothing to list: said on stderr
    assert set(LOCAL_VMS) <= {vm["name"] for vm in api(op, "GET", "/vms")}  # VMs untouched


# --- ops -----------------------------------------------------------------------------------------


def test_ops_list_get_and_cancel_a_stalled_pull(operator_factory: Factory) -> None:
    op = operator_factory(env=STALLED_PULL)
    op_id = succeeded(cli(op, "images", "pull", UBUNTU, "--detach")).strip()
    running_operation(op)
    lines = succeeded(cli(op, "ops")).splitlines()
    spans = columns_of(lines[0])
    assert list(spans) == ["ID", "KIND", "TARGET", "STATE", "PHASE", "PROGRESS", "CREATED"]
    row = next(line for line in lines if line.startswith(op_id))
    assert row.split()[1:6] == ["pull", UBUNTU, "running", "pulling", "40%"]
    assert json.loads(succeeded(cli(op, "ops", "--json"))) == operations(op)
    got = succeeded(cli(op, "ops", "get", op_id)).splitlines()
    assert f"id:                {op_id}" in got and "progress:          40%" in got
    assert json.loads(succeeded(cli(op, "ops", "get", op_id, "--json")))["progress"] == 40
    cancelled = cli(op, "ops", "cancel", op_id)
    assert succeeded(cancelled).startswith((f"cancelled {op_id}", "cancel requested"))
    doc = wait_for(lambda: (d := api(op, "GET", f"/operations/{op_id}"))["finished_at"] and d,
                   timeout=20, message="the cancelled pull ended")
    assert doc["state"] == "cancelled"
    again = cli(op, "ops", "cancel", op_id)
    assert again.returncode == 1 and again.stderr.startswith(b"vm-operator: 409 ")
    unknown = cli(op, "ops", "get", "no-such-operation")
    assert unknown.returncode == 1 and b"404 operation-not-found" in unknown.stderr


# --- host ----------------------------------------------------------------------------------------


def test_host_json_and_pairs(operator: Operator) -> None:
    doc = json.loads(succeeded(cli(operator, "host", "--json")))
    expected = api(operator, "GET", "/host")
    for key in ("tart", "tart_home", "macos_guests", "operations"):
        assert doc[key] == expected[key], key
    assert doc["disk"]["total_bytes"] == expected["disk"]["total_bytes"]
    lines = succeeded(cli(operator, "host")).splitlines()
    shown = {key: value.strip() for key, value in (line.split(":  ", 1) for line in lines)}
    assert shown["tart version"] == expected["tart"]["version"]
    assert shown["tart home"] == expected["tart_home"]
    limit = expected["macos_guests"]["limit"]
    assert shown["macOS guests running"] == (
        f"{expected['macos_guests']['running']} ({'no limit' if limit is None else f'of {limit}'})")
    assert shown["operations"].startswith("0 running, 0 queued")


# --- exit codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("args, why", [
    (["create", "x"], "--from"),                                    # --from missing
    (["create", "x", "--from", "y", "--cpu", "0"], "--cpu"),        # out of range
    (["create", "x", "--from", "y", "--memory", "256"], "--memory"),
    (["create", "x", "--from", "y", "--display", "big"], "WIDTHxHEIGHT"),
    (["create", "x", "--from", "y", "--restart", "sometimes"], "on-failure"),
    (["set", "x"], "give at least one of"),                         # nothing to set
    (["set", "x", "--disk", "0"], "--disk"),
    (["delete", "x", "--timeout", "5"], "--timeout goes with --force"),
    (["images", "pull"], "REF"),                                    # REF missing
    (["images", "prune"], "--older-than DAYS, --space-budget GB"),  # no criterion
    (["images", "rm", "r", "--older-than", "3"], "unrecognized arguments: --older-than"),
    (["ops", "get"], "ID"),
    (["ops", "cancel", "bad/id"], "an operation id is"),
    (["start", "x", "--wait", "forever"], "'ready'"),
    (["start", "x", "--timeout", "5"], "--timeout goes with --wait ready"),
    (["start", "x", "--wait", "ready", "--timeout", "901"], "from 1 to 900"),
    (["events", "--vm", ""], "a VM name cannot be empty"),
    (["host", "extra"], "unrecognized arguments: extra"),
])
def test_exit_2_usage_of_the_operation_commands(args: list[str], why: str) -> None:
    """Refused before anything is sent (the URL is a closed port), saying what is wrong."""
    result = run_client(*args, "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == b""
    assert why in result.stderr.decode() and "COMMAND: invalid choice" not in result.stderr.decode()


@pytest.mark.parametrize("args", [
    ["create", "x", "--from", "ubuntu-runner"], ["delete", "x"], ["set", "x", "--cpu", "2"],
    ["images"], ["images", "pull", UBUNTU], ["images", "rm", UBUNTU],
    ["images", "prune", "--older-than", "1"], ["ops"], ["ops", "get", "abc"],
    ["ops", "cancel", "abc"], ["host"], ["events"], ["start", "x", "--wait", "ready"],
])
def test_exit_3_unreachable_for_every_operation_command(args: list[str]) -> None:
    result = run_client(*args, "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert b"refused" in result.stderr


def test_every_command_is_in_the_readme() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Command-line client"):]
    section = section[:section.index("\n## ", 3)]
    from vm_operator.client.main import TABLE

    for command in TABLE:
        assert f"| `{command.name}" in section, command.name
        for action in command.actions:
            assert f"| `{command.name} {action.name}" in section, (command.name, action.name)
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |"):
        assert code in section, code


# --- start --wait ready ---------------------------------------------------------------------------


def test_start_wait_ready_answers_once_the_guest_accepts_connections(
        operator_factory: Factory) -> None:
    """The guest has its address 1 s after it starts and accepts connections 1 s later; the
    1 s request timeout alone would give up (exit 4): --timeout 30 adds its wait to it."""
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "1", "TART_SIM_SSH_DELAY": "1"})
    result = cli(op, "start", "ubuntu-runner", "--wait", "ready", "--timeout", "30",
                 "--request-timeout", "1")
    detail = api(op, "GET", "/vms/ubuntu-runner")
    assert detail["ready"] is True and detail["ip"]
    assert succeeded(result) == f"ubuntu-runner is ready at {detail['ip']}\n"
    again = json.loads(succeeded(cli(op, "start", "ubuntu-runner", "--wait", "ready", "--json")))
    assert again["ready"] is True and again["changed"] is False and again["ip"] == detail["ip"]


def test_start_wait_ready_that_times_out_exits_4(operator_factory: Factory) -> None:
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "0", "TART_SIM_SSH_DELAY": "60"})
    result = cli(op, "start", "ubuntu-runner", "--wait", "ready", "--timeout", "2")
    assert result.returncode == 4 and result.stdout == b""
    assert result.stderr.startswith(b"vm-operator: 504 ready-timeout: ")
    assert api(op, "GET", "/vms/ubuntu-runner")["state"] == "running"  # left running


# --- restart policies (the desired state) ---------------------------------------------------------


def test_create_and_set_give_the_restart_policy(operator: Operator) -> None:
    """The document declares restart policies (create's and PATCH's ``restart``), and the
    client's create and set give them: a missing feature fails here, it is not skipped."""
    document = api(operator, "GET", "/openapi.json")
    assert '"restart"' in json.dumps(document), "the API declares no restart policy"
    succeeded(cli(operator, "create", "keeper", "--from", "ubuntu-runner", "--restart", "always"))
    assert api(operator, "GET", "/vms/keeper")["spec"]["restart"] == "always"
    shown = json.loads(succeeded(cli(operator, "set", "keeper", "--restart", "on-failure", "--json")))
    assert api(operator, "GET", "/vms/keeper")["spec"]["restart"] == "on-failure"
    assert shown["name"] == "keeper"
