"""``vm-operator exec`` and ``vm-operator run [--rm]`` end to end: the client as a real
subprocess against a real operator driving the simulator.

The command's stdout and stderr become the client's, its exit code the client's; ``-i`` sends
the client's stdin; ``run --rm`` creates a VM, runs the command in it and deletes it, also when
the command fails and when Ctrl-C (SIGINT) interrupts it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

from conftest import OCI_NAME, Operator
from support import CLIENT, REPO_ROOT, cli, client_env, wait_for

VM = "ubuntu-runner"


def local_vms(op: Operator) -> set[str]:
    _, vms = op.json("GET", "/vms")
    return {vm["name"] for vm in vms if vm["source"] == "local"}


def test_exec_passes_output_and_exit_code_through(operator: Operator) -> None:
    assert operator.json("POST", f"/vms/{VM}/start")[0] == 202
    result = cli(operator, "exec", VM, "--", "sh", "-c", "echo out; echo err >&2; exit 9")
    assert (result.returncode, result.stdout, result.stderr) == (9, b"out\n", b"err\n")
    result = cli(operator, "exec", "-i", VM, "--", "tr", "a-z", "A-Z", stdin=b"hello\n")
    assert (result.returncode, result.stdout) == (0, b"HELLO\n")
    result = cli(operator, "exec", VM, "--", "cat", stdin=b"not sent\n")  # no -i: no stdin
    assert (result.returncode, result.stdout) == (0, b"")
    result = cli(operator, "exec", VM, "--", "ls", "--json")  # words after -- are the command's
    assert result.returncode != 0 and b"--json" in result.stderr


def test_run_rm_passes_the_exit_code_through_and_leaves_no_vm(operator: Operator) -> None:
    before = local_vms(operator)
    result = cli(operator, "run", "--rm", "--cpu", "2", "ubuntu-runner", "--",
                 "sh", "-c", "echo from-the-guest; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout == b"from-the-guest\n"
    assert local_vms(operator) == before
    result = cli(operator, "run", "--rm", "--name", "one-off", OCI_NAME, "--", "true")
    assert result.returncode == 0, result.stderr
    assert local_vms(operator) == before


def test_run_rm_with_the_name_of_an_existing_vm_leaves_that_vm_alone(
        operator: Operator) -> None:
    assert operator.json("POST", "/vms/ubuntu-runner/start")[0] == 202
    result = cli(operator, "run", "--rm", "--name", "ubuntu-runner", OCI_NAME, "--", "true")
    assert result.returncode != 0 and b"exists" in result.stderr, result.stderr
    assert operator.detail("ubuntu-runner")["state"] == "running"  # the user's VM, untouched


def test_run_without_rm_keeps_the_vm(operator: Operator) -> None:
    result = cli(operator, "run", "--name", "kept", "ubuntu-runner", "--", "true")
    assert result.returncode == 0, result.stderr
    _, vm = operator.json("GET", "/vms/kept")
    assert vm["state"] == "running"


def test_run_rm_interrupted_by_ctrl_c_still_deletes_its_vm(operator_factory: Any) -> None:
    op = operator_factory()
    before = local_vms(op)
    proc = subprocess.Popen([*CLIENT, "--url", op.url, "run", "--rm", "--name", "doomed",
                             "ubuntu-runner", "--", "sleep", "300"], cwd=REPO_ROOT,
                            env=client_env(VM_OPERATOR_URL=op.url), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    guest = op.tart_home / "vms" / "doomed" / "guest"
    try:
        wait_for(lambda: any(_runs_in(pid, str(guest)) for pid in _pids()),
                 message="the command runs in the new VM")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert local_vms(op) == before
    assert op.json("GET", "/vms/doomed")[0] == 404


def _pids() -> list[str]:
    return [entry for entry in os.listdir("/proc") if entry.isdigit()]


def _runs_in(pid: str, directory: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/cwd") == directory
    except OSError:
        return False
