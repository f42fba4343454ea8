"""The SSH transport: Tart on another host through the ``ssh`` client (vm_operator/tart/ssh.py).

Two halves:

- pure: the ssh command line (options, ``--``, one remote string in which every word is
  quoted), target parsing, the classification of ssh's own failures, settings, and the
  mapping to problems;
- for real: a throw-away Debian ``sshd`` on 127.0.0.1 (tests/sshd_env.py) whose user has the
  Tart simulator as ``tart``; the API suite runs through it from a native operator process
  and from the container image with ``--network host`` (all traffic stays on loopback).
  Hostile VM names (quotes, ``$()``, backticks, ``;``) go all the way through list, detail,
  start, logs and stop, and the marker files they would create never appear.

Without ``sshd`` (or root) the real half skips with the reason; ``VM_OPERATOR_REQUIRE_SSH=1``
(CI) turns that into a failure. The container variant also needs a Docker engine
(``VM_OPERATOR_REQUIRE_DOCKER=1`` makes its absence a failure) and an image with the OpenSSH
client.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sshd_env
from conftest import REPO_ROOT
from support import http_request, wait_for

from vm_operator.config import CONTAINER_TART, load_config
from vm_operator.edge.errors import problem_for
from vm_operator.edge.problems import PROBLEM_BASE
from vm_operator.store.state import StateStore
from vm_operator.tart.commands import Tart
from vm_operator.tart.errors import (
    TartCommandError,
    TartHostUnreachable,
    TartUnavailable,
    TransportError,
    command_error,
)
from vm_operator.tart.local import LocalTransport
from vm_operator.tart.names import VmName
from vm_operator.tart.ssh import SshTransport, classify
from vm_operator.tart.ssh_commands import (
    LAUNCH_SCRIPT,
    TART_SCRIPT,
    remote_command,
    remote_log_path,
    script_words,
    ssh_argv,
    tart_argv,
)
from vm_operator.tart.ssh_settings import SshSettings, parse_target, ssh_settings
from vm_operator.wiring import build_tart

REQUIRE_SSH = os.environ.get("VM_OPERATOR_REQUIRE_SSH") == "1"
REQUIRE_DOCKER = os.environ.get("VM_OPERATOR_REQUIRE_DOCKER") == "1"
SEQUOIA = "macos-sequoia-base"
SONOMA = "macos-sonoma-xcode"
TOKEN = uuid.uuid4().hex[:10]
# Would create /tmp/vmop-pwned-TOKEN-N if any part of them ever ran as shell code.
HOSTILE_NAMES = [
    f"a';touch /tmp/vmop-pwned-{TOKEN}-1;'",
    f"$(touch /tmp/vmop-pwned-{TOKEN}-2)",
    f"x;touch${{IFS}}/tmp/vmop-pwned-{TOKEN}-3",
    f"`touch /tmp/vmop-pwned-{TOKEN}-4`",
    f'q"$(touch /tmp/vmop-pwned-{TOKEN}-5)"',
    f"x|touch${{IFS}}/tmp/vmop-pwned-{TOKEN}-6",
    f"x&&touch${{IFS}}/tmp/vmop-pwned-{TOKEN}-7",
    f"x\\';touch${{IFS}}/tmp/vmop-pwned-{TOKEN}-8;#",
    "x;id",
]
# Slash-free, so the simulator accepts them as LOCAL VM names: these get cloned and then
# listed, inspected, started, logged and stopped through the API. `cd;` first, so that a
# command that did run would land in the remote user's (writable) home.
HOSTILE_LOCAL = [
    f"q';cd;touch${{IFS}}pwned-{TOKEN}-a;'",
    f"$(cd;touch${{IFS}}pwned-{TOKEN}-b)",
    f"x;cd;touch${{IFS}}pwned-{TOKEN}-c",
    f'd"`cd;touch${{IFS}}pwned-{TOKEN}-d`"',
]


def settings(**overrides: Any) -> SshSettings:
    base: dict[str, Any] = {"destination": "me@mac.example", "port": 2222, "key": "/keys/id",
                            "known_hosts": "/keys/known_hosts", "connect_timeout": 4}
    return SshSettings(**{**base, **overrides})


def option_values(argv: list[str]) -> dict[str, str]:
    found = {}
    for flag, value in itertools.pairwise(argv):
        if flag == "-o":
            key, _, val = value.partition("=")
            found[key] = val
    return found


# ============================================================== pure: the command line


def test_ssh_argv_has_every_safety_option_and_one_remote_string() -> None:
    argv = ssh_argv(settings(), ["tart", "list", "--format", "json"])
    assert argv[0] == "ssh"
    options = option_values(argv)
    assert options["BatchMode"] == "yes"
    assert options["ConnectTimeout"] == "4"
    assert options["StrictHostKeyChecking"] == "yes"
    assert options["UserKnownHostsFile"] == "/keys/known_hosts"
    assert options["GlobalKnownHostsFile"] == "/dev/null"
    assert options["IdentitiesOnly"] == "yes"
    assert options["ControlMaster"] == "no" and options["UpdateHostKeys"] == "no"
    assert argv[argv.index("-i") + 1] == "/keys/id"
    assert argv[argv.index("-p") + 1] == "2222"
    assert "-T" in argv
    # `--` ends ssh's options before the destination; then exactly ONE command string.
    assert argv[-3:-1] == ["--", "me@mac.example"]
    assert argv[-1] == "tart list --format json"


@pytest.mark.parametrize("word", [*HOSTILE_NAMES, *HOSTILE_LOCAL, "", "a b", "new\nline", "-rf",
                                  "*", "~", "$HOME", "it's", '"', "\\", "a\\'b"])
def test_every_remote_word_survives_the_remote_shell_as_one_word(word: str) -> None:
    command = ssh_argv(settings(), ["tart", "get", word, "--format", "json"])[-1]
    assert shlex.split(command) == ["tart", "get", word, "--format", "json"]
    # ... and a real POSIX shell agrees (printf shows each argument on its own line, NUL-ended).
    out = subprocess.run(["/bin/sh", "-c", f"printf '%s\\0' {remote_command([word, 'end'])}"],
                         capture_output=True, timeout=10, check=True)
    assert out.stdout == word.encode() + b"\0end\0"


def test_tart_calls_run_a_fixed_script_with_values_as_parameters() -> None:
    argv = tart_argv(settings(tart="/opt/homebrew/bin/tart"), ["stop", HOSTILE_NAMES[0]])
    words = shlex.split(argv[-1])
    assert words == ["/bin/sh", "-c", TART_SCRIPT, "vm-operator", "/opt/homebrew/bin/tart",
                     "stop", HOSTILE_NAMES[0]]
    assert HOSTILE_NAMES[0] not in TART_SCRIPT and "/opt/homebrew/bin" in TART_SCRIPT


def test_paths_with_spaces_and_percent_are_escaped_for_ssh() -> None:
    argv = ssh_argv(settings(known_hosts="/Users/me/Application Support/kh%1", key="/k/a%b"), ["x"])
    assert option_values(argv)["UserKnownHostsFile"] == '"/Users/me/Application Support/kh%%1"'
    assert argv[argv.index("-i") + 1] == "/k/a%%b"


def test_without_key_or_known_hosts_ssh_uses_its_defaults() -> None:
    argv = ssh_argv(settings(key=None, known_hosts=None), ["x"])
    assert "-i" not in argv
    assert "UserKnownHostsFile" not in option_values(argv)
    assert option_values(argv)["StrictHostKeyChecking"] == "yes"


@pytest.mark.parametrize(("value", "port", "expected"), [
    ("me@host.docker.internal", None, ("me@host.docker.internal", 22)),
    ("me@mac.local:2222", None, ("me@mac.local", 2222)),
    ("mac.local", 2200, ("mac.local", 2200)),
    ("me@10.0.0.5:22", 22, ("me@10.0.0.5", 22)),
    ("me@[::1]:2022", None, ("me@::1", 2022)),
    ("first.last@h", None, ("first.last@h", 22)),
])
def test_parse_target(value: str, port: int | None, expected: tuple[str, int]) -> None:
    assert parse_target(value, port) == expected


@pytest.mark.parametrize("value", [
    "-oProxyCommand=touch /tmp/x", "me@-oProxyCommand=x", "me@", "@host", "me@host:0",
    "me@host:99999", "me@host:ssh", "me@ho st", "me;id@host", "me@host;id", "me@[::1", "me@[zz]:1",
    "me@host:22", "",
])
def test_parse_target_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_target(value, 2200 if value == "me@host:22" else None)


def test_settings_check_files(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_text("k")
    made = ssh_settings("me@h", key=str(key), known_hosts=str(key), connect_timeout=7)
    assert (made.key, made.known_hosts, made.connect_timeout) == (str(key), str(key), 7)
    with pytest.raises(ValueError, match="does not exist"):
        ssh_settings("me@h", key=str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="characters"):
        ssh_settings("me@h", known_hosts=str(tmp_path / "$(id)"))
    with pytest.raises(ValueError):
        ssh_settings("me@h", tart="-rf")


def test_remote_log_path_is_flat_and_bounded() -> None:
    assert remote_log_path("ghcr.io/a/b:latest") == ".vm-operator/logs/ghcr.io%2Fa%2Fb%3Alatest.log"
    assert remote_log_path("a';x;'") == ".vm-operator/logs/a%27%3Bx%3B%27.log"
    long = remote_log_path("é" * 255)
    assert len(long.rsplit("/", 1)[1]) < 255 and long != remote_log_path("é" * 254 + "e")


def test_launch_script_takes_every_value_as_a_parameter() -> None:
    words = script_words(LAUNCH_SCRIPT, remote_log_path(HOSTILE_NAMES[1]), "tart", "run", HOSTILE_NAMES[1])
    assert words[:4] == ["/bin/sh", "-c", LAUNCH_SCRIPT, "vm-operator"]
    assert "nohup" in LAUNCH_SCRIPT and "</dev/null" in LAUNCH_SCRIPT and "&" in LAUNCH_SCRIPT
    assert HOSTILE_NAMES[1] not in LAUNCH_SCRIPT


# ============================================================== pure: ssh's failures


UNREACHABLE = (503, "tart-host-unreachable")
NO_KEY = ("No ED25519 host key is known for [h]:22 and you have requested strict checking.\n"
          "Host key verification failed.")


@pytest.mark.parametrize(("code", "stderr", "status", "slug"), [
    (255, "ssh: connect to host 10.0.0.5 port 22: Connection refused", *UNREACHABLE),
    (255, "ssh: connect to host 10.0.0.5 port 22: Connection timed out", *UNREACHABLE),
    (255, "Connection timed out during banner exchange", *UNREACHABLE),
    (255, "ssh: Could not resolve hostname nope: Name or service not known", *UNREACHABLE),
    (255, "kex_exchange_identification: read: Connection reset by peer", *UNREACHABLE),
    (255, NO_KEY, 502, "ssh-host-key"),
    (255, "@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @", 502, "ssh-host-key"),
    (255, "me@h: Permission denied (publickey).", 502, "ssh-auth-failed"),
    (255, "something new", 502, "ssh-failed"),
    (127, "sh: 1: tart: not found", 503, "tart-unavailable"),
    (126, "sh: 1: /opt/tart: Permission denied", 503, "tart-unavailable"),
])
def test_ssh_failures_become_clear_problems(code: int, stderr: str, status: int, slug: str) -> None:
    from vm_operator.tart.parse import error_message

    error = classify(settings(), TartCommandError(error_message(stderr, code), code))
    assert isinstance(error, TransportError) and isinstance(error, TartUnavailable)
    problem = problem_for(error)
    assert (problem.status, problem.slug) == (status, slug)
    assert "me@mac.example:2222" in problem.detail


@pytest.mark.parametrize(("message", "code", "status"), [
    ('the specified VM "x" does not exist', 2, 404),
    ('VM "x" is already running!', 2, 409),
    ("The number of VMs exceeds the system limit", 1, 409),
])
def test_tart_refusals_pass_through_unchanged(message: str, code: int, status: int) -> None:
    exc = command_error(message, code)
    assert classify(settings(), exc) is exc
    assert problem_for(exc).status == status


def test_a_missing_ssh_client_is_a_503(tmp_path: Path) -> None:
    runner = build_tart(settings(key=None, known_hosts=None, ssh=str(tmp_path / "no-ssh")),
                        "tart", {}, 5, StateStore(tmp_path))
    with pytest.raises(TransportError) as caught:
        runner.list_vms()
    assert problem_for(caught.value).status == 503 and "openssh-client" in caught.value.detail
    assert runner.locate()[1] is False


class ScriptedRunner:
    """Stands in for SshTransport.remote: the waiter's answers, in order."""

    timeout = 1.0

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)

    def remote(self, label: str, words: list[str], timeout: float | None = None) -> str:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.mark.parametrize(("answers", "code", "line"), [  # code None: ended, exit code unknown
    (["running\n", "0\n[tart-sim] VM x shut down\n"], 0, "[tart-sim] VM x shut down"),
    (["1\nbooting\nThe number of VMs exceeds the system limit\n"], 1,
     "The number of VMs exceeds the system limit"),
    (["130\n"], -2, ""),  # sh's 128+SIGINT is Popen's -2
    (["gone\nhalf a line"], None, "half a line"),
    ([TartHostUnreachable("down"), "running\n", "2\nerr\n"], 2, "err"),
])
def test_the_waiter_reports_code_and_message(answers: list[str | Exception], code: int,
                                             line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from vm_operator.tart import ssh as transport

    monkeypatch.setattr(transport.time, "sleep", lambda seconds: None)  # the retry back-off
    ended: dict[str, str] = {}
    run = transport.RemoteRun(ScriptedRunner(*answers), "log", 42, "vm", ended)  # type: ignore[arg-type]
    assert run.wait() == code
    assert ended == {"vm": line}


# ============================================================== pure: settings


def test_config_reads_the_transport_settings(tmp_path: Path) -> None:
    key, known = tmp_path / "key", tmp_path / "known"
    key.write_text("k")
    known.write_text("h")
    env = {"VM_OPERATOR_TART_SSH": "me@host.docker.internal", "VM_OPERATOR_SSH_PORT": "2222",
           "VM_OPERATOR_SSH_KEY": str(key), "VM_OPERATOR_SSH_KNOWN_HOSTS": str(known),
           "VM_OPERATOR_SSH_CONNECT_TIMEOUT": "3", "VM_OPERATOR_TART": CONTAINER_TART}
    config = load_config([], env)
    assert config.ssh == SshSettings("me@host.docker.internal", 2222, str(key), str(known), 3, "tart")
    # --tart names Tart on the host; the image's container path never does.
    assert load_config(["--tart", "/opt/homebrew/bin/tart"], env).ssh.tart == "/opt/homebrew/bin/tart"
    assert load_config([], {}).ssh is None
    assert load_config(["--tart-ssh", "mac:2022"], {}).ssh == SshSettings("mac", 2022)


@pytest.mark.parametrize("argv", [
    ["--tart-ssh", "me@h", "--ssh-key", "/nonexistent/key"],
    ["--tart-ssh", "-oProxyCommand=x"],
    ["--tart-ssh", "me@h:22", "--ssh-port", "23"],
    ["--tart-ssh", "me@h", "--ssh-connect-timeout", "0"],
    ["--tart-ssh", "me@h", "--demo"],
])
def test_config_refuses_bad_transport_settings(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        load_config(argv, {})


# ============================================================== for real: sshd on loopback


def _require(reason: str) -> None:
    if REQUIRE_SSH:
        pytest.fail(f"VM_OPERATOR_REQUIRE_SSH=1 but {reason}")
    pytest.skip(f"SSH transport tier skipped: {reason}")


@pytest.fixture(scope="module")
def sshd() -> Iterator[sshd_env.SshdEnv]:
    reason = sshd_env.unavailable_reason()
    if reason:
        _require(reason)
    server = sshd_env.create()
    try:
        yield server
    finally:
        server.cleanup()


def direct_runner(server: sshd_env.SshdEnv, **overrides: Any) -> Tart:
    made = ssh_settings(server.target, key=str(server.key), known_hosts=str(server.known_hosts),
                        connect_timeout=sshd_env.CONNECT_TIMEOUT)
    if overrides:
        made = SshSettings(**{**made.__dict__, **overrides})
    return Tart(SshTransport(made, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                             sshd_env.TART_TIMEOUT))


def markers(server: sshd_env.SshdEnv) -> list[str]:
    found = [str(p) for p in Path("/tmp").glob(f"vmop-pwned-{TOKEN}-*")]
    found += [str(p) for p in server.home.glob(f"pwned-{TOKEN}-*")]
    found += [str(p) for p in Path("/").glob(f"pwned-{TOKEN}-*")]
    return found


@pytest.fixture
def host(sshd: sshd_env.SshdEnv) -> Iterator[sshd_env.SshdEnv]:
    """The shared sshd; every test leaves all its VMs stopped and no marker files behind."""
    yield sshd
    runner = direct_runner(sshd)
    for vm in runner.list_vms():
        if vm["state"] != "stopped":
            try:
                runner.transport.call(["stop", "--timeout", "2", vm["name"]], 15)
            except TartCommandError:
                pass
    assert markers(sshd) == [], "a hostile name ran as shell code on the host"


# --- operators: native process, or the container image with --network host -----------


class ContainerOperator:
    """`docker run --network host` of the image, configured for the sshd; .request like Operator."""

    def __init__(self, image: str, server: sshd_env.SshdEnv, workdir: Path,
                 env: dict[str, str]) -> None:
        self.port = sshd_env.free_port()
        self.name = f"vmop-ssh-pytest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        workdir.mkdir(parents=True, exist_ok=True)
        # The service user (UID 10001) must read the key: ssh accepts a key readable by
        # others only when another user owns it, as here (root, 0644; a Docker secret is 0444).
        key = workdir / "container_key"
        shutil.copy(server.key, key)
        os.chmod(key, 0o644)
        settings_env = {**server.settings_env(), **env}
        known = settings_env["VM_OPERATOR_SSH_KNOWN_HOSTS"]
        settings_env.update({"VM_OPERATOR_SSH_KEY": "/run/secrets/vm-operator-ssh-key",
                             "VM_OPERATOR_SSH_KNOWN_HOSTS": "/run/secrets/vm-operator-known-hosts",
                             "VM_OPERATOR_HOST": "127.0.0.1", "VM_OPERATOR_PORT": str(self.port)})
        args = ["docker", "run", "-d", "--name", self.name, "--network", "host",
                "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
                "--security-opt", "no-new-privileges",
                "-v", f"{key}:/run/secrets/vm-operator-ssh-key:ro",
                "-v", f"{known}:/run/secrets/vm-operator-known-hosts:ro"]
        for item in settings_env.items():
            args += ["-e", "=".join(item)]
        result = subprocess.run([*args, image], capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stderr
        wait_for(self._answers, timeout=30, interval=0.2, message=f"container {self.name} serves")

    def _answers(self) -> bool:
        try:
            return self.request("GET", "/health", timeout=2)[0] == 200
        except OSError:
            return False

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None, timeout: float = 60) -> tuple[int, Any, bytes]:
        return http_request(self.port, method, path, headers, body, timeout)

    def json(self, method: str, path: str, timeout: float = 60) -> tuple[int, Any]:
        status, _, data = self.request(method, path, timeout=timeout)
        return status, (json.loads(data) if data else None)

    def logs(self) -> str:
        out = subprocess.run(["docker", "logs", "--tail", "50", self.name], capture_output=True,
                             text=True, timeout=30, check=False)
        return out.stdout + out.stderr

    def close(self) -> None:
        subprocess.run(["docker", "rm", "-f", "-v", self.name], capture_output=True, timeout=60,
                       check=False)


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                              capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    return None if info.returncode == 0 else f"no Docker engine ({info.stderr.strip()[:160]})"


@pytest.fixture(scope="module")
def ssh_image(sshd: sshd_env.SshdEnv) -> Iterator[str]:
    """The image built from docker/vm-operator/Dockerfile; it must carry the ssh client."""
    problem = _docker_problem()
    if problem:
        if REQUIRE_DOCKER:
            pytest.fail(f"VM_OPERATOR_REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(f"container variant skipped: {problem}")
    prebuilt = os.environ.get("VM_OPERATOR_SSH_TEST_IMAGE")  # an image built elsewhere
    if prebuilt:
        yield prebuilt
        return
    base = os.environ.get("BASE_IMAGE", "vm-operator-base:bookworm")
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True, timeout=30,
                      check=False).returncode != 0:
        built = subprocess.run([str(REPO_ROOT / "scripts" / "build-local-base.sh")],
                               capture_output=True, text=True, timeout=900, check=False)
        assert built.returncode == 0, f"cannot build {base}: {built.stderr[-800:]}"
    tag = f"vm-operator-ssh-pytest:{os.getpid()}"
    build = subprocess.run(
        ["docker", "build", "-q", "-f", str(REPO_ROOT / "docker" / "vm-operator" / "Dockerfile"),
         "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(REPO_ROOT)],
        capture_output=True, text=True, timeout=900, check=False)
    if build.returncode != 0:
        pytest.fail(f"docker build failed: {build.stderr.strip()[-1500:]}")
    try:
        probe = subprocess.run(["docker", "run", "--rm", "--entrypoint", "ssh", tag, "-V"],
                               capture_output=True, text=True, timeout=60, check=False)
        if probe.returncode != 0:
            reason = ("the image has no OpenSSH client: docker/vm-operator/Dockerfile must "
                      "install openssh-client")
            if REQUIRE_SSH:
                pytest.fail(f"VM_OPERATOR_REQUIRE_SSH=1 but {reason}")
            pytest.skip(f"container variant skipped: {reason}")
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120, check=False)


Start = Callable[..., Any]


@pytest.fixture(params=["native", "container"])
def start_operator(request: pytest.FixtureRequest, host: sshd_env.SshdEnv,
                   operator_factory: Callable[..., Any], tmp_path: Path) -> Iterator[Start]:
    """Factory: an operator driving the sshd's Tart, as a process here or in the image."""
    containers: list[ContainerOperator] = []
    image = request.getfixturevalue("ssh_image") if request.param == "container" else None

    def start(env: dict[str, str] | None = None) -> Any:
        if image is None:
            return operator_factory(env={**host.settings_env(), **(env or {})},
                                    args=["--tart", os.environ.get("VM_OPERATOR_TEST_REMOTE_TART",
                                                                   "tart")])
        made = ContainerOperator(image, host, tmp_path / f"c{len(containers)}", env or {})
        containers.append(made)
        return made

    try:
        yield start
    finally:
        for made in containers:
            made.close()


def slug(problem: dict[str, Any]) -> str:
    """The problem's kind, from its type URI (PROBLEM_BASE + slug)."""
    assert problem["type"].startswith(PROBLEM_BASE), problem
    return str(problem["type"][len(PROBLEM_BASE):])


def path_of(name: str, suffix: str = "") -> str:
    return f"/vms/{quote(name, safe='')}{suffix}"


def remote_ps(pid: int) -> dict[str, str]:
    """/proc status of a process on "the host" (the same machine here)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


# --- the API through the transport ---------------------------------------------------------


def test_list_and_detail(start_operator: Start) -> None:
    op = start_operator()
    status, vms = op.json("GET", "/vms")
    assert status == 200, vms
    assert {vm["name"] for vm in vms} >= {SEQUOIA, SONOMA, "ubuntu-runner"}
    status, vm = op.json("GET", path_of(SEQUOIA))
    assert status == 200, vm
    assert (vm["os"], vm["cpu"], vm["state"]) == ("darwin", 4, "stopped")
    status, problem = op.json("GET", path_of("no-such-vm"))
    assert (status, slug(problem)) == (404, "vm-not-found")
    status, health = op.json("GET", "/health")
    assert status == 200 and health["tart"]["path"].startswith("ssh://")
    assert wait_for(lambda: op.json("GET", "/health")[1]["tart"]["version"] == "2.31.0", timeout=20)
    assert op.json("GET", "/ready")[0] == 200


def test_start_is_detached_confirmed_logged_and_stopped(start_operator: Start,
                                                        host: sshd_env.SshdEnv) -> None:
    op = start_operator()
    status, vm = op.json("POST", path_of(SEQUOIA, "/start"))
    assert status == 202, vm
    assert vm["state"] == "running" and vm["changed"] is True
    # The remote launch is a Tart call like any other in /metrics.
    metrics = op.request("GET", "/metrics")[2].decode()
    assert 'vm_operator_tart_calls_total{command="run",outcome="ok"} 1\n' in metrics
    run = op.json("GET", path_of(SEQUOIA))[1]["last_run"]
    pid = run["pid"]
    # The wrapper around `tart run` on the host outlived the SSH session that started it:
    # alive, and no longer a child of any sshd.
    time.sleep(1.0)
    status_fields = remote_ps(pid)
    parent = Path(f"/proc/{status_fields['PPid']}/comm").read_text().strip()
    assert parent != "sshd", f"tart run is still attached to its SSH session ({status_fields})"
    assert op.json("GET", path_of(SEQUOIA))[1]["state"] == "running"
    # Its output is a file on the host, read back through ssh.
    log = host.home / ".vm-operator" / "logs" / f"{SEQUOIA}.log"
    assert f"starting VM {SEQUOIA}" in log.read_text()
    status, _, body = op.request("GET", path_of(SEQUOIA, "/logs"))
    assert status == 200 and f"[tart-sim] starting VM {SEQUOIA}" in body.decode()
    # Already running: 200, nothing launched.
    status, again = op.json("POST", path_of(SEQUOIA, "/start"))
    assert (status, again["changed"]) == (200, False)
    status, stopped = op.json("POST", path_of(SEQUOIA, "/stop?timeout=5"))
    assert (status, stopped["state"]) == (200, "stopped"), stopped
    # The end of the remote run was noticed: exit code 0, written by the wrapper.
    last = wait_for(lambda: op.json("GET", path_of(SEQUOIA))[1]["last_run"]["finished_at"] and
                    op.json("GET", path_of(SEQUOIA))[1]["last_run"], timeout=20)
    assert (last["exit_code"], last["error"]) == (0, None)
    assert (host.home / ".vm-operator" / "logs" / f"{SEQUOIA}.log.exit").read_text().strip() == "0"


def test_hostile_names_never_run_on_the_host(start_operator: Start, host: sshd_env.SshdEnv) -> None:
    op = start_operator()
    for name in HOSTILE_NAMES:
        for method, suffix in (("GET", ""), ("POST", "/start"), ("POST", "/stop"),
                               ("GET", "/logs"), ("GET", "/ip"), ("POST", "/suspend")):
            status, _, body = op.request(method, path_of(name, suffix))
            assert status in (400, 404), (name, suffix, status, body[:300])
    status, _, _ = op.request("GET", path_of(f"x; touch /tmp/vmop-pwned-{TOKEN}-9"))
    assert status == 400  # whitespace is refused before anything runs
    assert markers(host) == []


def test_hostile_local_vms_go_through_the_whole_lifecycle(start_operator: Start,
                                                          host: sshd_env.SshdEnv) -> None:
    runner = direct_runner(host)
    existing = {vm["name"] for vm in runner.list_vms()}
    for name in HOSTILE_LOCAL:
        if name not in existing:
            runner.transport.call(["clone", "ubuntu-runner", name], 30)
    op = start_operator()
    names = {vm["name"] for vm in op.json("GET", "/vms")[1]}
    assert set(HOSTILE_LOCAL) <= names
    for name in HOSTILE_LOCAL[:2]:  # two at a time: the cap of running VMs is 2
        status, vm = op.json("GET", path_of(name))
        assert (status, vm["name"], vm["os"]) == (200, name, "linux"), vm
        status, vm = op.json("POST", path_of(name, "/start"))
        assert (status, vm["name"], vm["state"]) == (202, name, "running"), vm
        status, _, body = op.request("GET", path_of(name, "/logs"))
        assert status == 200 and f"starting VM {name} " in body.decode()
    for name in HOSTILE_LOCAL[:2]:
        status, vm = op.json("POST", path_of(name, "/stop?timeout=5"))
        assert (status, vm["state"]) == (200, "stopped"), vm
    # Each name reached Tart as exactly one argument, byte for byte.
    calls = [shlex.split(line.split(" ", 3)[3]) for line in host.call_log.read_text().splitlines()
             if len(line.split(" ", 3)) == 4]
    for name in HOSTILE_LOCAL[:2]:
        assert ["run", "--no-graphics", name] in calls
        assert ["stop", "--timeout", "5", name] in calls
    assert markers(host) == []


def test_host_key_mismatch_is_a_prompt_502(start_operator: Start, host: sshd_env.SshdEnv) -> None:
    op = start_operator({"VM_OPERATOR_SSH_KNOWN_HOSTS": str(host.wrong_known_hosts)})
    started = time.monotonic()
    status, problem = op.json("GET", "/vms")
    assert time.monotonic() - started < 10
    assert (status, slug(problem)) == (502, "ssh-host-key"), problem
    assert "Host key verification failed" in problem["detail"]
    assert op.json("GET", "/ready")[0] == 503
    health = op.json("GET", "/health")[1]
    assert (health["status"], health["tart"]["available"]) == ("degraded", False)
    assert "VM_OPERATOR_TART_SSH" in health["message"]  # advice for the transport in use


def test_sshd_down_is_a_prompt_503(start_operator: Start, host: sshd_env.SshdEnv) -> None:
    closed = sshd_env.free_port()  # nothing listens there
    op = start_operator({"VM_OPERATOR_TART_SSH": f"{host.user}@127.0.0.1:{closed}"})
    started = time.monotonic()
    status, problem = op.json("POST", path_of(SEQUOIA, "/start"))
    assert time.monotonic() - started < 10
    assert (status, slug(problem)) == (503, "tart-host-unreachable"), problem
    assert "Connection refused" in problem["detail"]


def test_vms_outlive_the_container_over_ssh(host: sshd_env.SshdEnv, ssh_image: str,
                                            tmp_path: Path) -> None:
    """README "What survives the operator": over SSH `tart run` runs on the host, detached, so a
    VM keeps running when the container stops and is removed; the next container takes over."""
    first = ContainerOperator(ssh_image, host, tmp_path / "first", {})
    try:
        status, vm = first.json("POST", path_of(SEQUOIA, "/start"))
        assert status == 202, vm
        pid = first.json("GET", path_of(SEQUOIA))[1]["last_run"]["pid"]
        stop = subprocess.run(["docker", "stop", "-t", "10", first.name], capture_output=True,
                              text=True, timeout=60, check=False)
        assert stop.returncode == 0, stop.stderr
    finally:
        first.close()  # and removed
    states = {vm["name"]: vm["state"] for vm in direct_runner(host).list_vms()}
    assert states[SEQUOIA] == "running"  # Tart on the host still runs it
    assert remote_ps(pid)["State"][0] in "RS"  # and so does the process the container started
    second = ContainerOperator(ssh_image, host, tmp_path / "second", {})
    try:
        assert second.json("GET", path_of(SEQUOIA))[1]["state"] == "running"
        status, vm = second.json("POST", path_of(SEQUOIA, "/stop?timeout=5"))
        assert (status, vm["state"]) == (200, "stopped"), vm
    finally:
        second.close()


# --- native only: failures of the remote run, restarts, edge cases ----------------------------


@pytest.fixture
def native(host: sshd_env.SshdEnv, operator_factory: Callable[..., Any]) -> Callable[..., Any]:
    def start(env: dict[str, str] | None = None, args: list[str] | None = None) -> Any:
        return operator_factory(env={**host.settings_env(), **(env or {})},
                                args=["--tart", "tart", *(args or [])])
    return start


def test_a_remote_tart_run_that_fails_says_why(native: Callable[..., Any],
                                               host: sshd_env.SshdEnv) -> None:
    """The third macOS guest: Tart's own refusal comes back from the host's log, with its
    exit code, noticed by the remote waiter."""
    runner = direct_runner(host)
    if "macos-third" not in {vm["name"] for vm in runner.list_vms()}:
        runner.transport.call(["clone", SEQUOIA, "macos-third"], 30)
    op = native(args=["--max-running", "0"])  # let Tart itself refuse
    for name in (SEQUOIA, SONOMA):
        assert op.json("POST", path_of(name, "/start"))[0] == 202
    started = time.monotonic()
    status, problem = op.json("POST", path_of("macos-third", "/start"))
    assert time.monotonic() - started < 15
    assert (status, slug(problem)) == (409, "vm-limit"), problem
    assert problem["detail"] == "The number of VMs exceeds the system limit"
    assert problem["tart_exit_code"] == 1
    last = op.json("GET", path_of("macos-third"))[1]["last_run"]
    assert last["exit_code"] == 1 and "exceeds the system limit" in last["error"]


def test_vms_outlive_the_operator_and_a_new_one_takes_over(native: Callable[..., Any]) -> None:
    first = native()
    assert first.json("POST", path_of(SEQUOIA, "/start"))[0] == 202
    assert first.stop()[0] == 0
    second = native(args=["--state-dir", str(first.state_dir)])
    assert second.json("GET", path_of(SEQUOIA))[1]["state"] == "running"
    status, _, body = second.request("GET", path_of(SEQUOIA, "/logs"))  # read on the host
    assert status == 200 and f"starting VM {SEQUOIA}" in body.decode()
    assert second.json("POST", path_of(SEQUOIA, "/stop?timeout=5"))[1]["state"] == "stopped"


def test_a_restarted_operator_learns_the_exit_code_from_the_host(native: Callable[..., Any],
                                                                 host: sshd_env.SshdEnv) -> None:
    """The run outlived the operator that launched it; the next one waits on it the same way
    and reads its real exit code from the host's .exit file."""
    first = native()
    assert first.json("POST", path_of(SEQUOIA, "/start"))[0] == 202
    started = first.json("GET", path_of(SEQUOIA))[1]["last_run"]
    assert first.stop()[0] == 0
    second = native(args=["--state-dir", str(first.state_dir)])
    assert second.json("GET", path_of(SEQUOIA))[1]["last_run"] == started  # still running
    assert second.json("POST", path_of(SEQUOIA, "/stop?timeout=5"))[0] == 200
    last = wait_for(lambda: second.json("GET", path_of(SEQUOIA))[1]["last_run"]["finished_at"]
                    and second.json("GET", path_of(SEQUOIA))[1]["last_run"], timeout=20)
    assert (last["exit_code"], last["exit_code_known"], last["error"]) == (0, True, None)
    assert last["pid"] == started["pid"]


def test_logs_tail_through_ssh_and_earlier_logs_kept_on_the_host(native: Callable[..., Any],
                                                                 host: sshd_env.SshdEnv) -> None:
    op = native()
    for _ in range(2):
        assert op.json("POST", path_of(SEQUOIA, "/start"))[0] == 202
        assert op.json("POST", path_of(SEQUOIA, "/stop?timeout=5"))[0] == 200
    status, headers, body = op.request("GET", path_of(SEQUOIA, "/logs?tail=1"))
    assert status == 200 and body == f"[tart-sim] VM {SEQUOIA} shut down\n".encode(), body
    assert headers["Vm-Operator-Log-Truncated"] == "false"
    logs = host.home / ".vm-operator" / "logs"
    whole = (logs / f"{SEQUOIA}.log").read_bytes()
    assert int(headers["Vm-Operator-Log-Omitted-Bytes"]) == len(whole) - len(body)
    assert f"starting VM {SEQUOIA}" in (logs / f"{SEQUOIA}.log.1").read_text()  # the first run


def test_logs_of_a_vm_never_started_are_404(native: Callable[..., Any]) -> None:
    status, problem = native().json("GET", path_of("ubuntu-runner-never", "/logs"))
    assert (status, slug(problem)) == (404, "no-logs")


def test_tart_missing_on_the_host_is_a_503(native: Callable[..., Any]) -> None:
    op = native(args=["--tart", "/nonexistent/tart"])
    status, problem = op.json("GET", "/vms")
    assert (status, slug(problem)) == (503, "tart-unavailable"), problem
    assert "/nonexistent/tart" in problem["detail"] and "not found" in problem["detail"]


def test_a_refused_key_is_a_502(native: Callable[..., Any], host: sshd_env.SshdEnv,
                                tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    sshd_env.keygen(stranger)
    status, problem = native({"VM_OPERATOR_SSH_KEY": str(stranger)}).json("GET", "/vms")
    assert (status, slug(problem)) == (502, "ssh-auth-failed"), problem


def test_a_host_that_never_answers_fails_within_the_connect_timeout(
        native: Callable[..., Any], host: sshd_env.SshdEnv) -> None:
    """TCP accepted, no SSH banner ever: ConnectTimeout (3 s here) ends it, not the client."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        op = native({"VM_OPERATOR_TART_SSH": f"{host.user}@127.0.0.1:{port}",
                     "VM_OPERATOR_SSH_CONNECT_TIMEOUT": "3"})
        started = time.monotonic()
        status, problem = op.json("GET", "/vms")
        elapsed = time.monotonic() - started
    assert (status, slug(problem)) == (503, "tart-host-unreachable"), problem
    assert 2.5 < elapsed < 9, elapsed


def test_concurrent_requests_through_ssh(native: Callable[..., Any]) -> None:
    op = native({"VM_OPERATOR_CACHE_TTL": "0"})  # every request spawns its own ssh
    results: list[int] = []

    def get() -> None:
        results.append(op.json("GET", "/vms")[0])

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [200] * 8


# --- the runner and launcher directly: arguments arrive intact ------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_arguments_reach_tart_intact(host: sshd_env.SshdEnv, name: str) -> None:
    runner = direct_runner(host)
    with pytest.raises(TartCommandError) as caught:
        runner.get(name)
    assert caught.value.message == f'the specified VM "{name}" does not exist'
    assert caught.value.exit_code == 2
    # The detached launch path too: the run fails on the host, its log says so exactly.
    launcher = runner.transport
    assert isinstance(launcher, SshTransport)
    run = launcher.launch(name, ["run", "--no-graphics", name])
    assert run.wait() == 2
    message = f'the specified VM "{name}" does not exist'
    assert launcher.last_log_line(name) == message  # brought back by the waiter
    assert message in (launcher.read_log(name) or b"").decode()  # and read from the host
    assert markers(host) == []


def test_remote_calls_that_are_not_tart(host: sshd_env.SshdEnv) -> None:
    transport = direct_runner(host).transport
    assert isinstance(transport, SshTransport)
    assert transport.remote("probe", ["printf", "%s", "$(id)"]) == "$(id)"
    assert transport.read_log("never-started-anywhere") is None
    assert isinstance(LocalTransport("tart", StateStore(host.home)).locate(), tuple)


def test_which_vm_carries_a_name_reads_alike_over_ssh_and_here(host: sshd_env.SshdEnv) -> None:
    """The identity of a VM's directory (GNU stat on this Linux "Mac"): the same answer from the
    host over SSH and from a local stat of the same directory; another one once the VM is
    deleted and cloned again; none for a name no VM carries; a hostile name is only a name."""
    runner = direct_runner(host)
    here = Tart(LocalTransport("tart", StateStore(host.home),
                               {"PATH": os.environ.get("PATH", ""), "TART_HOME": str(host.tart_home)}))
    runner.transport.call(["clone", SEQUOIA, "carried"], 30)
    first = runner.vm_identity(VmName("carried"))
    assert first is not None and first == here.vm_identity(VmName("carried"))
    runner.transport.call(["delete", "carried"])
    assert runner.vm_identity(VmName("carried")) is None
    runner.transport.call(["clone", SEQUOIA, "carried"], 30)
    again = runner.vm_identity(VmName("carried"))
    assert again is not None and again != first  # another directory, even on a reused inode
    runner.transport.call(["rename", "carried", "carried-too"])
    assert runner.vm_identity(VmName("carried-too")) == again  # renamed: the same VM
    for name in HOSTILE_NAMES:
        if "/" not in name:  # Tart.vm_identity never hands a name with one to the transport
            assert runner.transport.vm_identity(name) is None
    assert markers(host) == []


def test_the_run_logs_of_a_gone_vm_are_removed_from_the_host(host: sshd_env.SshdEnv) -> None:
    transport = direct_runner(host).transport
    assert isinstance(transport, SshTransport)
    run = transport.launch("gone-vm", ["run", "--no-graphics", "gone-vm"])
    assert run.wait() == 2  # no such VM: Tart says so in the log
    logs = host.home / ".vm-operator" / "logs"
    assert (logs / "gone-vm.log").exists() and (logs / "gone-vm.log.exit").exists()
    transport.forget_log("gone-vm")
    assert sorted(p.name for p in logs.iterdir() if p.name.startswith("gone-vm.")) == []
    assert transport.read_log("gone-vm") is None
