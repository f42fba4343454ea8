"""What a serving operator holds in memory: ``vm-operator serve`` started for real on the
simulator, asked for its ``sys.modules`` once it listens and has answered a request. The
command-line client (its parsers, HTTP client, renderers and records) is for client commands
only: a server never imports it, nor the ``importlib.resources`` machinery (and ``zipfile``)
for the dashboard's few files; the TOML parser only with a tokens file or ``--config`` to read,
``difflib`` only to name the setting an unknown variable was meant to be."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO_ROOT, free_port, http_request, kill_tart_processes, reaped, wait_for

SIMULATOR = REPO_ROOT / "bin" / "tart-simulator"

# ``python -m vm_operator`` as __main__.py runs it, with one addition made before the package
# is imported: SIGUSR1 writes the sorted names of sys.modules, whole, to the file in argv[1].
SERVE_AND_TELL = """\
import json, os, signal, sys

def tell(signum, frame):
    with open(sys.argv[1] + ".part", "w") as out:
        json.dump(sorted(sys.modules), out)
    os.replace(sys.argv[1] + ".part", sys.argv[1])

signal.signal(signal.SIGUSR1, tell)
from vm_operator.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def listening_port(stdout: Path) -> int | None:
    for line in stdout.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "listening":
            return int(record["port"])
    return None


def serving_modules(tmp_path: Path) -> set[str]:
    """The modules of an operator serving the simulator's demo VMs, after its first request."""
    tart_home, told = tmp_path / "tart", tmp_path / "modules.json"
    guest_port = str(free_port())  # the readiness probe's: loopback, never a real sshd
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TART_", "VM_OPERATOR_"))}
    env.update({"PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
                "PYTHONPATH": str(REPO_ROOT), "TART_HOME": str(tart_home),
                "TART_SIM_SEED": "demo", "TART_SIM_GUEST_PORT": guest_port,
                "VM_OPERATOR_READY_PORT": guest_port})
    argv = [sys.executable, "-c", SERVE_AND_TELL, str(told), "serve", "--host", "127.0.0.1",
            "--port", "0", "--tart", str(SIMULATOR), "--state-dir", str(tmp_path / "state")]
    stdout = tmp_path / "operator.stdout"
    try:
        with open(stdout, "wb") as out, reaped(subprocess.Popen(
                argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.PIPE, start_new_session=True)) as proc:
            port = wait_for(lambda: listening_port(stdout) or proc.poll() is not None,
                            message="the operator's listening line")
            assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")
            status, _, _ = http_request(int(port), "GET", "/health")
            assert status == 200
            proc.send_signal(signal.SIGUSR1)
            wait_for(told.exists, message="the operator's modules")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    finally:
        kill_tart_processes(tart_home)
    modules: list[str] = json.loads(told.read_text())
    return set(modules)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return serving_modules(tmp_path_factory.mktemp("serve"))


def test_a_serving_operator_runs_without_the_client(served: set[str]) -> None:
    assert {"vm_operator.cli", "vm_operator.edge.server", "vm_operator.api.dashboard"} <= served
    client = sorted(name for name in served
                    if name == "vm_operator.client" or name.startswith("vm_operator.client."))
    assert client == []


def test_a_serving_operator_reads_the_dashboard_without_the_resource_readers(
        served: set[str]) -> None:
    assert "vm_operator.api.dashboard" in served
    assert not served & {"importlib.resources", "zipfile"}


def test_a_serving_operator_without_files_to_read_or_unknown_variables_holds_no_parser_for_them(
        served: set[str]) -> None:
    assert "vm_operator.config" in served
    assert not served & {"tomllib", "difflib"}



def test_a_serving_operator_never_looks_its_own_address_up(served: set[str]) -> None:
    # http.server's bind asks DNS for the name of the address (socket.getfqdn), which loads
    # the IDNA codec and can stall start-up on a host without DNS
    assert "vm_operator.edge.server" in served
    assert not served & {"encodings.idna", "stringprep"}
