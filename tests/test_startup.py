"""Start-up, end to end: the real ``python -m vm_operator`` process and what it does with its
settings before it serves. A setting it cannot honour (an empty token file, a state directory
it cannot write, a bad variable) stops it with ONE line on stderr that starts with
``vm-operator: `` and names the culprit, and a non-zero exit; nothing is left behind.

A refusal is awaited until the process exits, or fails the test at once when the process
prints its ``listening`` line instead (today's bugs made it serve); ``REFUSAL_GUARD`` only
keeps a hung process from hanging the suite.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, SIMULATOR
from support import SYSTEM_PYTHONS, http_request, wait_for

REFUSAL_GUARD = 30.0


def _environment(tmp_path: Path, extra: dict[str, str] | None) -> dict[str, str]:
    """The runner's environment without VM_OPERATOR_*/TART_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TART_", "VM_OPERATOR_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["TART_HOME"] = str(tmp_path / "tart")
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Outcome:
    """How a start-up that had to fail ended."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def start_expecting_refusal(tmp_path: Path, args: list[str], env: dict[str, str] | None = None,
                            *, user: list[str] | None = None, python: str = sys.executable,
                            cwd: Path = REPO_ROOT) -> Outcome:
    """Run ``python -m vm_operator ARGS`` (after ``user``, e.g. a setpriv prefix) to its exit."""
    out_path, err_path = tmp_path / "refusal.stdout", tmp_path / "refusal.stderr"
    argv = [*(user or []), python, "-m", "vm_operator", *args]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, cwd=cwd, env=_environment(tmp_path, env),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
    deadline = time.monotonic() + REFUSAL_GUARD
    try:
        while proc.poll() is None:
            if '"listening"' in out_path.read_text(errors="replace"):
                pytest.fail("vm-operator started serving instead of refusing to start; stderr: "
                            + err_path.read_text(errors="replace"))
            if time.monotonic() > deadline:
                pytest.fail(f"vm-operator neither served nor exited within {REFUSAL_GUARD:g} s")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    return Outcome(proc.returncode, out_path.read_text(errors="replace"),
                   err_path.read_text(errors="replace"))


def assert_refused(outcome: Outcome, *needles: str) -> str:
    """Non-zero exit, and exactly one line on stderr: ``vm-operator: ...`` holding every needle."""
    assert outcome.returncode != 0, outcome
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert len(outcome.stderr_lines) == 1, outcome.stderr
    line = outcome.stderr_lines[0]
    assert line.startswith("vm-operator: "), line
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def base_args(tmp_path: Path) -> list[str]:
    return ["--host", "127.0.0.1", "--port", "0", "--tart", str(SIMULATOR),
            "--state-dir", str(tmp_path / "state")]


# --- a configured token that is empty or unreadable never means "no auth" ------------


@pytest.mark.parametrize("variable", ["VM_OPERATOR_TOKEN_FILE", "VM_OPERATOR_READ_TOKEN_FILE"])
@pytest.mark.parametrize("content", ["", "   ", "\n", "\n\n", " \t\r\n"],
                         ids=["empty", "spaces", "newline", "newlines", "whitespace"])
def test_an_empty_token_file_stops_start_up(tmp_path: Path, variable: str, content: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    outcome = start_expecting_refusal(tmp_path, base_args(tmp_path), {variable: str(token_file)})
    assert_refused(outcome, variable, str(token_file), "empty")


@pytest.mark.parametrize("variable", ["VM_OPERATOR_TOKEN", "VM_OPERATOR_READ_TOKEN"])
@pytest.mark.parametrize("value", ["", "  ", "\n"], ids=["empty", "spaces", "newline"])
def test_a_token_variable_set_but_blank_stops_start_up(tmp_path: Path, variable: str,
                                                       value: str) -> None:
    outcome = start_expecting_refusal(tmp_path, base_args(tmp_path), {variable: value})
    assert_refused(outcome, variable, "empty")


def test_a_token_file_that_is_not_text_stops_start_up(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_bytes(b"\xff\xfe" + b"\x80" * 32)
    outcome = start_expecting_refusal(tmp_path, base_args(tmp_path),
                                      {"VM_OPERATOR_TOKEN_FILE": str(token_file)})
    assert_refused(outcome, "VM_OPERATOR_TOKEN_FILE", str(token_file))


def test_a_token_file_that_is_a_directory_stops_start_up(tmp_path: Path) -> None:
    outcome = start_expecting_refusal(tmp_path, base_args(tmp_path),
                                      {"VM_OPERATOR_READ_TOKEN_FILE": str(tmp_path)})
    assert_refused(outcome, "VM_OPERATOR_READ_TOKEN_FILE", "cannot read")


def test_a_short_token_file_is_named_as_the_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("short\n")
    outcome = start_expecting_refusal(tmp_path, base_args(tmp_path),
                                      {"VM_OPERATOR_TOKEN_FILE": str(token_file)})
    line = assert_refused(outcome, f"VM_OPERATOR_TOKEN_FILE ({token_file})", "shorter than 16")
    assert "short\n" not in line and ": short" not in line  # the secret itself is never echoed


def test_a_good_token_file_turns_authentication_on(operator_factory: Any, tmp_path: Path) -> None:
    """The control: a token file with its trailing newline is read, and enforced."""
    token = "a-token-of-some-length-0123456789"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    op = operator_factory(env={"VM_OPERATOR_TOKEN_FILE": str(token_file)})
    listening = next(r for r in op.log_records() if r.get("event") == "listening")
    assert listening["auth"] is True
    assert op.request("GET", "/vms")[0] == 401
    assert op.request("GET", "/vms", {"Authorization": f"Bearer {token}"})[0] == 200


def test_tart_processes_never_carry_the_tokens(operator_factory: Any) -> None:
    """The tokens are the operator's: a VM's `tart run` (and every other Tart process) gets the
    operator's environment without them."""
    token, read_token = "a-token-of-some-length-0123456789", "a-read-token-of-some-length-0123"
    op = operator_factory(env={"VM_OPERATOR_TOKEN": token, "VM_OPERATOR_READ_TOKEN": read_token})
    auth = {"Authorization": f"Bearer {token}"}
    status, _headers, body = op.request("POST", "/vms/macos-sequoia-base/start", auth)
    assert status == 202, body
    _status, vm = op.json("GET", "/vms/macos-sequoia-base", auth)
    environ = Path(f"/proc/{vm['last_run']['pid']}/environ").read_bytes().split(b"\0")
    assert any(entry.startswith(b"TART_HOME=") for entry in environ)  # the rest is passed on
    assert not [entry for entry in environ if token.encode() in entry
                or read_token.encode() in entry]


# --- a state directory that cannot be written stops start-up, naming it --------------


def test_a_state_dir_under_a_plain_file_stops_start_up(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a directory")
    state = plain / "state"
    outcome = start_expecting_refusal(tmp_path, [*base_args(tmp_path), "--state-dir", str(state)])
    assert_refused(outcome, str(state), "cannot be written")


def test_a_state_dir_that_is_a_plain_file_stops_start_up(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("not a directory")
    outcome = start_expecting_refusal(tmp_path, [*base_args(tmp_path), "--state-dir", str(plain)])
    assert_refused(outcome, str(plain), "not a directory")


@dataclass(frozen=True)
class OtherUser:
    """How to run the operator as the unprivileged user ``nobody`` (root can write anywhere, so
    a directory root cannot write needs another user): the ``setpriv`` prefix, an interpreter
    that user can run, and a copy of the checkout's package and simulator that user can read,
    made in a world-traversable directory: the checkout itself may lie under a directory only
    root can enter (CI clones into a ``mktemp -d`` folder)."""

    prefix: list[str]
    python: str
    checkout: Path

    @property
    def simulator(self) -> Path:
        return self.checkout / "bin" / "tart-simulator"

    @property
    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.checkout)}


def _readable_copy(where: Path) -> Path:
    """The package and the simulator's wrapper, copied under ``where`` (0755 directories,
    0644 files, the wrapper 0755), whatever the checkout's own modes and location."""
    checkout = where / "checkout"
    shutil.copytree(REPO_ROOT / "vm_operator", checkout / "vm_operator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (checkout / "bin").mkdir()
    shutil.copy(SIMULATOR, checkout / "bin" / SIMULATOR.name)
    for path in [checkout, *checkout.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path.parent.name == "bin" else 0o644)
    return checkout


def _as_nobody(where: Path) -> OtherUser:
    """Fails (never skips) when this machine cannot run the operator as ``nobody``."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root and setpriv (util-linux) is missing: cannot drop to nobody "
                    "(apt-get install util-linux)")
    prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    checkout = _readable_copy(where)
    tried = []
    for python in dict.fromkeys([os.path.realpath(sys.executable), *SYSTEM_PYTHONS]):
        if not os.path.exists(python):
            continue
        probe = subprocess.run([*prefix, python, "-m", "vm_operator", "--help"],
                               cwd=where, env={**os.environ, "PYTHONPATH": str(checkout)},
                               capture_output=True, timeout=60, check=False)
        if probe.returncode == 0:
            return OtherUser(prefix, python, checkout)
        tried.append(f"{python}: {probe.stderr.decode(errors='replace').strip()[-300:]}")
    pytest.fail("the user nobody can run no Python with vm_operator "
                f"(install python3 >= 3.11 where every user can run it): {'; '.join(tried)}")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory outside pytest's (root-only) tmp tree that another user can traverse."""
    path = Path(tempfile.mkdtemp(prefix="vmop-startup-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_state_dir_the_user_cannot_write_stops_start_up(shared_dir: Path) -> None:
    state = shared_dir / "state"
    state.mkdir()
    if os.geteuid() == 0:
        # the directory stays root's and 0755: nobody may not write it
        nobody = _as_nobody(shared_dir)
        user, python, tart, env = nobody.prefix, nobody.python, nobody.simulator, nobody.env
    else:
        user, python, tart, env = [], sys.executable, SIMULATOR, {}
        state.chmod(0o555)
    args = ["--host", "127.0.0.1", "--port", "0", "--tart", str(tart), "--state-dir", str(state)]
    outcome = start_expecting_refusal(shared_dir, args, {"HOME": str(shared_dir), **env},
                                      user=user, python=python, cwd=shared_dir)
    assert_refused(outcome, str(state), "cannot be written", "Permission denied")
    assert list(state.iterdir()) == []  # the probe left nothing behind


def test_a_new_state_dir_is_created_private(operator_factory: Any, tmp_path: Path) -> None:
    """The control: a state directory that does not exist yet is made (0700) and start-up goes on."""
    state = tmp_path / "deep" / "state"
    op = operator_factory(state_dir=state)
    assert op.request("GET", "/health")[0] == 200
    assert state.is_dir() and (state.stat().st_mode & 0o777) == 0o700
    assert [p.name for p in state.iterdir() if p.name.startswith(".write-probe")] == []


def test_a_state_dir_of_another_tart_home_stops_start_up_naming_both(operator_factory: Any,
                                                                      tmp_path: Path) -> None:
    state = tmp_path / "shared-state"
    first = operator_factory(state_dir=state)  # its TART_HOME is another than the one below
    assert first.stop()[0] == 0
    outcome = start_expecting_refusal(tmp_path, [*base_args(tmp_path), "--state-dir", str(state)])
    line = assert_refused(outcome, str(state), str(first.tart_home.resolve()),
                          str((tmp_path / "tart").resolve()), "state directory of its own")
    assert "--state-dir unset" in line
    again = operator_factory(state_dir=state, tart_home=first.tart_home)  # its own home: fine
    assert again.request("GET", "/health")[0] == 200


# --- a demo that cannot start leaves no Tart home behind ------------------------------


def _demo_homes(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("vm-operator-demo-"))


def test_a_demo_that_cannot_listen_removes_its_tart_home(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = start_expecting_refusal(
            tmp_path, ["--demo", "--host", "127.0.0.1", "--port", str(port)], {"TMPDIR": str(tmp)})
    assert_refused(outcome, "cannot listen", str(port))
    assert _demo_homes(tmp) == []


def test_a_demo_removes_its_tart_home_when_stopped(tmp_path: Path) -> None:
    """The control: the demo serves its VMs from a throw-away home, gone after SIGTERM."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out_path = tmp_path / "demo.stdout"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "vm_operator", "--demo", "--host",
                                 "127.0.0.1", "--port", "0"], cwd=REPO_ROOT,
                                env=_environment(tmp_path, {"TMPDIR": str(tmp)}),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        def listening() -> dict[str, Any] | None:
            for line in out_path.read_text(errors="replace").splitlines():
                if '"listening"' in line:
                    record: dict[str, Any] = json.loads(line)
                    return record
            assert proc.poll() is None, "the demo exited before listening"
            return None

        record = wait_for(listening, timeout=15, message="the demo's listening line")
        assert len(_demo_homes(tmp)) == 1
        status, _, body = http_request(int(record["port"]), "GET", "/vms")
        assert status == 200 and any(vm["name"] == "macos-sequoia-base" for vm in json.loads(body))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert _demo_homes(tmp) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# --- every variable is validated alike ---------------------------------------------


@pytest.mark.parametrize("value", ["off", "OFF", "no", "0", "False"])
def test_access_log_off_means_off(operator_factory: Any, value: str) -> None:
    op = operator_factory(env={"VM_OPERATOR_ACCESS_LOG": value})
    assert op.request("GET", "/health")[0] == 200
    assert op.request("GET", "/vms")[0] == 200
    op.stop()
    assert [r for r in op.log_records() if "method" in r] == []
    assert any(r.get("event") == "stopped" for r in op.log_records())  # the log itself is there


def test_access_log_on_still_logs_requests(operator_factory: Any) -> None:
    op = operator_factory(env={"VM_OPERATOR_ACCESS_LOG": "On"})
    assert op.request("GET", "/vms")[0] == 200
    wait_for(lambda: [r for r in op.log_records() if r.get("path") == "/vms"],
             message="an access log line for GET /vms")


@pytest.mark.parametrize(("variable", "value"), [
    ("VM_OPERATOR_ACCESS_LOG", "maybe"),
    ("VM_OPERATOR_MAX_RUNNING", "-1"),
    ("VM_OPERATOR_CACHE_TTL", "soon"),
    ("VM_OPERATOR_HOST", "not a host"),
    ("VM_OPERATOR_CORS_ORIGINS", "https://dash.example/"),
])
def test_a_bad_variable_stops_start_up_naming_it(tmp_path: Path, variable: str,
                                                 value: str) -> None:
    outcome = start_expecting_refusal(tmp_path, ["--tart", str(SIMULATOR), "--state-dir",
                                                 str(tmp_path / "state"), "--port", "0"],
                                      {variable: value})
    line = assert_refused(outcome, f"{variable}:")
    assert "argument --" not in line and "usage:" not in outcome.stderr


# --- words ----------------------------------------------------------------------------


def test_a_bad_port_variable_is_named_as_the_variable(tmp_path: Path) -> None:
    outcome = start_expecting_refusal(tmp_path, ["--tart", str(SIMULATOR), "--state-dir",
                                                 str(tmp_path / "state")],
                                      {"VM_OPERATOR_PORT": "abc"})
    line = assert_refused(outcome, "VM_OPERATOR_PORT", "'abc'")
    assert "--port" not in line


def test_a_bad_port_flag_is_still_named_as_the_flag(tmp_path: Path) -> None:
    outcome = start_expecting_refusal(tmp_path, ["--port", "abc"], {"VM_OPERATOR_PORT": "8082"})
    assert outcome.returncode != 0
    assert "argument --port" in outcome.stderr and "VM_OPERATOR_PORT" not in outcome.stderr


def test_help_explains_the_token_variables(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vm_operator", "serve", "--help"], cwd=REPO_ROOT,
                          env=_environment(tmp_path, None), capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0
    for variable in ("VM_OPERATOR_TOKEN ", "VM_OPERATOR_TOKEN_FILE", "VM_OPERATOR_READ_TOKEN ",
                     "VM_OPERATOR_READ_TOKEN_FILE"):
        assert variable in proc.stdout, variable
    assert "Authorization: Bearer" in proc.stdout and "read" in proc.stdout


def test_a_missing_tart_natively_gets_install_advice(operator_factory: Any) -> None:
    op = operator_factory(args=["--tart", "/nonexistent/tart"], seed=False)
    status, problem = op.json("GET", "/vms")
    assert status == 503 and problem["type"].endswith("tart-unavailable"), problem
    assert "brew install cirruslabs/cli/tart" in problem["detail"]
    assert "--tart" in problem["detail"] and "VM_OPERATOR_TART" in problem["detail"]
    assert "/app/bin/tart-binary" not in problem["detail"]
    warning = wait_for(lambda: next((r for r in op.log_records()
                                     if r.get("event") == "tart-unavailable"), None),
                       message="the tart-unavailable warning (written after listening)")
    assert "brew install cirruslabs/cli/tart" in warning["message"]
    assert "/app/bin/tart-binary" not in warning["message"]


def test_a_misspelled_variable_is_warned_about_with_the_likely_name(operator_factory: Any) -> None:
    op = operator_factory(env={"VM_OPERATOR_MAX_RUNING": "1"})
    assert op.request("GET", "/health")[0] == 200
    warnings = [r for r in op.log_records() if r.get("event") == "unknown-variable"]
    assert warnings == [{"level": "warning", "event": "unknown-variable",
                         "variable": "VM_OPERATOR_MAX_RUNING",
                         "did_you_mean": "VM_OPERATOR_MAX_RUNNING"}]
