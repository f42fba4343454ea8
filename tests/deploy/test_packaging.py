"""An installed operator (`pip install .` into a fresh virtualenv) is complete: its `--demo` runs
the simulator shipped inside the package, and `tart-simulator` is a console script.

The checkout's package files are copied first, so that the build leaves nothing in the checkout,
and the installed operator runs from an unrelated directory with no PYTHONPATH: nothing of the
checkout can be used by accident. Like any `pip install .`, the build fetches its backend
(setuptools, per pyproject's build-system) from the package index or pip's cache.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from support import http_request, wait_for


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the checkout installed by pip (not editable)."""
    root = tmp_path_factory.mktemp("pip-install")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / "vm_operator", source / "vm_operator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    venv = root / "venv"
    if importlib.util.find_spec("pip") is None:  # no pip here: give the venv its own
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=env)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
    else:  # faster: this interpreter's pip installs into the new venv (pip >= 22.3)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=300, env=env)
        pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    # What a user runs: an ordinary build, its build backend (setuptools) fetched by pip.
    installed = subprocess.run([*pip, "install", "-q", "--no-deps", "--disable-pip-version-check",
                                str(source)],
                               capture_output=True, text=True, timeout=600, check=False, env=env,
                               cwd=root)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


def clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "TART_", "VM_OPERATOR_"))}
    env["TMPDIR"] = str(tmp)
    return env


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory with no vm_operator in it, and a TMPDIR to watch."""
    (tmp_path / "cwd").mkdir()
    (tmp_path / "tmp").mkdir()
    return tmp_path


@pytest.fixture
def demo(venv: Path, elsewhere: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The installed `vm-operator --demo --port 0`, started from an unrelated directory."""
    with open(elsewhere / "demo.stdout", "wb") as out, open(elsewhere / "demo.stderr", "wb") as err:
        proc = subprocess.Popen([str(venv / "bin" / "vm-operator"), "--demo", "--port", "0"],
                                cwd=elsewhere / "cwd", env=clean_env(elsewhere / "tmp"),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def listening_port(proc: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> int:
    def port() -> int | None:
        assert proc.poll() is None, f"the demo exited {proc.returncode}: {stderr.read_text()}"
        for line in stdout.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"listening"' in line:
                return int(json.loads(line)["port"])
        return None

    found: int = wait_for(port, timeout=30, message="the installed demo prints its listening line")
    return found


def test_installed_operator_runs_the_demo(venv: Path, demo: subprocess.Popen[bytes],
                                          elsewhere: Path) -> None:
    package = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import vm_operator; print(vm_operator.__file__)"],
                             cwd=elsewhere / "cwd", env=clean_env(elsewhere / "tmp"),
                             capture_output=True, text=True, timeout=30, check=True)
    assert package.stdout.startswith(str(venv)), package.stdout  # the installed copy
    port = listening_port(demo, elsewhere / "demo.stdout", elsewhere / "demo.stderr")
    status, _, body = http_request(port, "GET", "/vms")
    assert status == 200, body
    names = {vm["name"] for vm in json.loads(body)}
    assert {"macos-sequoia-base", "ubuntu-runner"} <= names
    # A start launches the packaged simulator's `tart run`, detached, and confirms it.
    status, _, body = http_request(port, "POST", "/vms/ubuntu-runner/start")
    assert status == 202, body
    # The dashboard's files are package data: the installed operator serves them.
    for path, kind in (("/", "text/html"), ("/ui/app.js", "text/javascript"),
                       ("/ui/style.css", "text/css")):
        status, headers, body = http_request(port, "GET", path)
        assert status == 200 and headers["Content-Type"].startswith(kind) and body, path
    health = json.loads(http_request(port, "GET", "/health")[2])
    assert health["tart"]["available"] is True
    assert Path(health["tart"]["path"]).is_relative_to(elsewhere / "tmp")  # the demo's own wrapper
    # Ctrl-C: the demo stops its VMs and removes its temporary Tart home.
    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=20) == 0
    assert list((elsewhere / "tmp").iterdir()) == []


def test_installed_console_script_and_module(venv: Path, elsewhere: Path) -> None:
    env = {**clean_env(elsewhere / "tmp"), "TART_HOME": str(elsewhere / "tart"),
           "TART_SIM_SEED": "demo"}
    for argv in ([str(venv / "bin" / "tart-simulator")],
                 [str(venv / "bin" / "python"), "-m", "vm_operator.simulator"]):
        version = subprocess.run([*argv, "--version"], cwd=elsewhere / "cwd", env=env,
                                 capture_output=True, text=True, timeout=30, check=False)
        assert (version.returncode, version.stdout) == (0, "2.31.0\n"), version.stderr
        usage = subprocess.run([*argv, "--help"], cwd=elsewhere / "cwd", env=env,
                               capture_output=True, text=True, timeout=30, check=False)
        assert usage.returncode == 0 and "TART_SIM_RUN_DELAY" in usage.stdout
        listed = subprocess.run([*argv, "list", "--format", "json"], cwd=elsewhere / "cwd",
                                env=env, capture_output=True, text=True, timeout=30, check=False)
        assert "ubuntu-runner" in {vm["Name"] for vm in json.loads(listed.stdout)}
        unknown = subprocess.run([*argv, "frobnicate"], cwd=elsewhere / "cwd", env=env,
                                 capture_output=True, text=True, timeout=30, check=False)
        assert unknown.returncode == 64 and unknown.stderr.startswith("Error: ")


def test_installed_client_talks_to_the_demo(venv: Path, demo: subprocess.Popen[bytes],
                                            elsewhere: Path) -> None:
    """The client sub-package is installed with the rest (pyproject lists it)."""
    port = listening_port(demo, elsewhere / "demo.stdout", elsewhere / "demo.stderr")
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "vm_operator.client", "vms",
                             "--json", "--url", f"http://127.0.0.1:{port}"],
                            cwd=elsewhere / "cwd", env=clean_env(elsewhere / "tmp"),
                            capture_output=True, text=True, timeout=30, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "ubuntu-runner" in {vm["name"] for vm in json.loads(listed.stdout)}
