"""The declarative file, end to end: a real operator with ``--config`` over the Tart
simulator — applied at start-up, on SIGHUP and by POST /config/reload — and ``vm-operator plan``
run as a real process against it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, Operator
from support import wait_for

Factory = Callable[..., Operator]
EXAMPLE = REPO_ROOT / "examples" / "vms.toml"
LINUX = "ubuntu-runner"  # a seeded Linux VM: its clones do not count against the macOS cap
JSON = {"Content-Type": "application/json"}


def vm(op: Operator, name: str) -> dict[str, Any] | None:
    status, doc = op.json("GET", f"/vms/{name}")
    if status == 404:
        return None
    assert status == 200, doc
    return doc  # type: ignore[no-any-return]


def state(op: Operator, name: str) -> str | None:
    doc = vm(op, name)
    return None if doc is None else str(doc["state"])


def with_config(factory: Factory, path: Path, text: str, **kwargs: Any) -> Operator:
    path.write_text(text)
    return factory(args=["--config", str(path)], **kwargs)


def records(op: Operator, event: str) -> list[dict[str, Any]]:
    return [record for record in op.log_records() if record.get("event") == event]


def linux(name: str, **settings: object) -> str:
    """A [vms.NAME] table of a clone of the seeded Linux VM."""
    lines = [f"[vms.{name}]", f'from = "{LINUX}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n\n"


def plan(op_url: str, path: Path) -> tuple[int, str, str]:
    """``vm-operator plan FILE --url URL`` as a process: exit code, stdout, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VM_OPERATOR_", "TART_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run([sys.executable, "-m", "vm_operator", "plan", str(path), "--url", op_url],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, check=False)
    return done.returncode, done.stdout, done.stderr


def reload(op: Operator) -> tuple[int, Any]:
    return op.json("POST", "/config/reload")


# --- start-up ---------------------------------------------------------------------------------


def test_start_up_applies_the_example_fleet(operator_factory: Factory, tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    shutil.copy(EXAMPLE, path)
    op = operator_factory(args=["--config", str(path)])
    wait_for(lambda: state(op, "macos-ci") == "running", timeout=30, message="macos-ci runs")
    wait_for(lambda: state(op, "macos-dev") == "stopped", timeout=30, message="macos-dev made")
    ci, dev = vm(op, "macos-ci"), vm(op, "macos-dev")
    assert ci is not None and dev is not None
    assert (ci["cpu"], ci["memory_mb"], ci["disk_gb"]) == (4, 8192, 50)
    assert (dev["cpu"], dev["memory_mb"], dev["disk_gb"]) == (4, 8192, 60)
    assert ci["spec"]["source"] == dev["spec"]["source"] == "config"
    assert (ci["spec"]["desired"], ci["spec"]["restart"]) == ("running", "always")
    assert dev["spec"]["desired"] == "stopped"
    (applied,) = records(op, "config-applied")
    assert applied["cause"] == "start-up" and len(applied["steps"]) == 2
    code, out, err = plan(op.url, path)  # applied: nothing left to do
    assert (code, out.strip()) == (0, f"nothing to do: the VMs are as {path} says"), err


@pytest.mark.parametrize("how", ["flag", "variable"])
def test_a_config_file_that_cannot_be_read_stops_start_up(tmp_path: Path, how: str) -> None:
    missing = tmp_path / "nowhere.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VM_OPERATOR_", "TART_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    argv = [sys.executable, "-m", "vm_operator", "--port", "0", "--state-dir", str(tmp_path / "s")]
    if how == "flag":
        argv += ["--config", str(missing)]
    else:
        env["VM_OPERATOR_CONFIG"] = str(missing)
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == (2 if how == "flag" else 1)
    where = "--config" if how == "flag" else "VM_OPERATOR_CONFIG"
    assert f"{where}: cannot read {missing}: No such file or directory" in done.stderr
    assert done.stdout == ""  # it never listened


# --- SIGHUP -----------------------------------------------------------------------------------


def test_sighup_applies_the_changed_file(operator_factory: Factory, tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    op = with_config(operator_factory, path, linux("a", cpu=2, desired="stopped"))
    wait_for(lambda: state(op, "a") == "stopped", timeout=30, message="a created")
    path.write_text(linux("a", cpu=3, desired="running", restart="always") + linux("b"))
    op.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: state(op, "a") == "running", timeout=30, message="a started")
    wait_for(lambda: state(op, "b") == "stopped", timeout=30, message="b created")
    a = vm(op, "a")
    assert a is not None and a["cpu"] == 3
    assert (a["spec"]["desired"], a["spec"]["restart"], a["spec"]["source"]) == (
        "running", "always", "config")
    causes = [record["cause"] for record in records(op, "config-applied")]
    assert causes == ["start-up", "SIGHUP"]
    assert op.proc.poll() is None  # SIGHUP reloads; it does not end the operator


def test_sighup_with_a_broken_file_keeps_the_previous_state(operator_factory: Factory,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    op = with_config(operator_factory, path, linux("a", desired="running"))
    wait_for(lambda: state(op, "a") == "running", timeout=30, message="a runs")
    # the broken file also says stopped: none of it may be applied
    path.write_text('[vms.a]\nfrom = "ubuntu-runner"\ndesired = "stopped"\ncpus = 4\n')
    op.proc.send_signal(signal.SIGHUP)
    refused = wait_for(lambda: records(op, "config-refused"), timeout=10,
                       message="the refusal is logged")
    assert (refused[0]["line"], refused[0]["key"]) == (4, "vms.a.cpus")
    assert "unknown key" in refused[0]["error"]
    a = vm(op, "a")
    assert a is not None and a["state"] == "running"
    assert (a["spec"]["desired"], a["spec"]["source"]) == ("running", "config")
    assert [r["cause"] for r in records(op, "config-applied")] == ["start-up"]
    assert op.proc.poll() is None
    # fixed, it applies
    path.write_text(linux("a", desired="stopped"))
    op.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: state(op, "a") == "stopped", timeout=30, message="a stopped by the file")


# --- POST /config/reload ----------------------------------------------------------------------


def test_post_config_reload_answers_the_plan_it_applied(operator_factory: Factory,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    op = with_config(operator_factory, path, linux("a", desired="stopped"))
    wait_for(lambda: state(op, "a") == "stopped", timeout=30, message="a created")
    cpu = vm(op, "a")["cpu"]  # type: ignore[index]
    path.write_text(linux("a", cpu=cpu + 1, desired="running") + linux("b"))
    status, doc = reload(op)
    assert status == 200, doc
    assert doc["file"] == str(path) and doc["cause"] == "api"
    steps = [(s["kind"], s["vm"], s["outcome"]) for s in doc["steps"]]
    assert steps == [("set", "a", "done"), ("create", "b", "queued"), ("start", "a", "desired")]
    assert doc["steps"][0]["step"] == f"set a: cpu {cpu} -> {cpu + 1}"
    assert doc["steps"][1]["operation"].startswith("/operations/")
    wait_for(lambda: state(op, "a") == "running", timeout=30, message="a started")
    wait_for(lambda: state(op, "b") == "stopped", timeout=30, message="b created")
    assert vm(op, "a")["cpu"] == cpu + 1  # type: ignore[index]
    # refused: a problem document with the line and the key; nothing changed
    path.write_text(linux("a", desired="stopped") + "[vms.b]\nfrom = 'x'\nmemory_mb = 1\n")
    status, doc = reload(op)
    assert status == 422, doc
    assert doc["type"] == "/problems/config-refused"
    assert (doc["line"], doc["key"]) == (7, "vms.b.memory_mb")
    assert state(op, "a") == "running"
    assert vm(op, "a")["spec"]["desired"] == "running"  # type: ignore[index]


def test_post_config_reload_without_a_file_is_409(operator: Operator) -> None:
    status, doc = reload(operator)
    assert status == 409, doc
    assert doc["type"] == "/problems/no-config"


def test_a_running_vm_gets_its_new_resources_at_its_next_stop(operator_factory: Factory,
                                                               tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    op = with_config(operator_factory, path, linux("a", cpu=2, desired="running"))
    wait_for(lambda: state(op, "a") == "running", timeout=30, message="a runs")
    path.write_text(linux("a", cpu=3, desired="running"))
    status, doc = reload(op)
    assert status == 200, doc
    (step,) = doc["steps"]
    assert (step["kind"], step["outcome"]) == ("set", "deferred")
    assert step["step"] == ("set a: cpu 2 -> 3 (the VM is running: its resources change at "
                            "its next stop)")
    assert vm(op, "a")["cpu"] == 2  # type: ignore[index]
    status, _ = op.json("POST", "/vms/a/stop")
    assert status == 200
    wait_for(lambda: vm(op, "a")["cpu"] == 3, timeout=30,  # type: ignore[index]
             message="the deferred change made once a stopped")


# --- prune ------------------------------------------------------------------------------------


def test_prune_deletes_only_what_the_file_created_and_still_owns(operator_factory: Factory,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    op = with_config(operator_factory, path, linux("keep") + linux("gone") + linux("touched"))
    for name in ("keep", "gone", "touched"):
        wait_for(lambda name=name: state(op, name) == "stopped", timeout=30,
                 message=f"{name} created")
    status, _, _ = op.request("POST", "/vms", JSON, json.dumps({"name": "api-made",
                                                                "from": LINUX}))
    assert status == 202
    wait_for(lambda: state(op, "api-made") == "stopped", timeout=30, message="api-made created")
    status, _ = op.json("POST", "/vms/touched/stop")  # the API wrote its spec last
    assert status == 200
    # without prune, a VM left out of the file stays
    path.write_text(linux("keep"))
    status, doc = reload(op)
    assert (status, doc["steps"]) == (200, [])
    assert state(op, "gone") == "stopped"
    # with prune, only the one the file created and still owns goes
    path.write_text("prune = true\n" + linux("keep"))
    code, out, err = plan(op.url, path)
    assert (code, out.splitlines()) == (2, [
        "delete gone (not in the file, prune = true, created by the operator from the file)"]), err
    status, doc = reload(op)
    assert status == 200, doc
    assert [(s["kind"], s["vm"], s["outcome"]) for s in doc["steps"]] == [
        ("delete", "gone", "done")]
    assert state(op, "gone") is None
    status, history = op.json("GET", "/vms/gone/events")
    assert status == 200, history
    deleted = [e["data"] for e in history["events"] if e["type"] == "vm.deleted"]
    assert deleted == [{"cause": "config"}]  # the file deleted it, and the stream says so
    for name in ("keep", "touched", "api-made", LINUX):
        assert state(op, name) == "stopped", name


# --- vm-operator plan -------------------------------------------------------------------------


def test_plan_of_each_kind_of_change(operator: Operator, tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    now = vm(operator, LINUX)
    assert now is not None and now["state"] == "stopped"
    cpu = now["cpu"]
    cases = [
        # (file, exit code, stdout lines)
        (linux(LINUX), 0, [f"nothing to do: the VMs are as {path} says"]),
        (linux("new", cpu=2, desired="running"), 2,
         [f"create new from {LINUX}: cpu 2, desired running"]),
        (linux(LINUX, cpu=cpu + 1), 2, [f"set {LINUX}: cpu {cpu} -> {cpu + 1}"]),
        (linux(LINUX, desired="running"), 2, [f"start {LINUX} (it is stopped)"]),
        (linux(LINUX, desired="stopped", restart="on-failure"), 2,
         [f"set {LINUX}: desired unset -> stopped, restart unset -> on-failure"]),
    ]
    for text, code, lines in cases:
        path.write_text(text)
        assert plan(operator.url, path)[:2] == (code, "\n".join(lines) + "\n"), text
    # nothing was done
    assert state(operator, "new") is None
    after = vm(operator, LINUX)
    assert after is not None and (after["state"], after["cpu"], after["spec"]) == (
        "stopped", cpu, None)
    # a running VM: stop, and a set that waits for its next stop
    status, _ = operator.json("POST", f"/vms/{LINUX}/start")
    assert status in (200, 202)
    path.write_text(linux(LINUX, cpu=cpu + 1, desired="stopped"))
    assert plan(operator.url, path)[:2] == (2, (
        f"stop {LINUX} (it is running)\n"
        f"set {LINUX}: cpu {cpu} -> {cpu + 1} (the VM is running: its resources change at its "
        "next stop)\n"))
    assert state(operator, LINUX) == "running"


def test_plan_refuses_a_broken_file_with_its_line_and_key(operator: Operator,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    path.write_text('prune = false\n\n[vms.ci]\nfrom = "ubuntu-runner"\nauto_start = true\n')
    code, out, err = plan(operator.url, path)
    assert (code, out) == (1, "")
    assert f"{path}: line 5, key vms.ci.auto_start: unknown key" in err
    path.write_text('[vms.ci]\nfrom = "ubuntu-runner"\ncpu = \n')
    code, out, err = plan(operator.url, path)
    assert (code, out) == (1, "")
    assert "line 3, key vms.ci.cpu: not valid TOML" in err


def test_plan_without_an_operator_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "vms.toml"
    path.write_text(linux("a"))
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = plan(f"http://127.0.0.1:{port}", path)
    assert (code, out) == (3, "")
    assert "refused" in err
