"""Docker tier: what the image and its containers promise, asserted precisely.

The shell scripts (tests/test-docker-vm-operations.sh,
tests/test-vm-operator-integration.sh) walk the API the way a user would; this
module checks what shell cannot check well: the image's user, labels and
health-check configuration from ``docker image inspect``, time to healthy, a
hardened read-only container that still starts and stops VMs, the time and
exit code of ``docker stop``, zombie-free process tables after many start/stop
cycles, and what the image does *not* carry.

Why skip rather than fail without an engine: most developer machines run the
unit tests with no Docker at all. CI sets ``VM_OPERATOR_REQUIRE_DOCKER=1`` so a
broken engine there is a failure, never a silent skip.

Containers are reached only through ports published on 127.0.0.1 or through
``docker exec``; never a container IP. Every subprocess gets an argument list
and a timeout.
"""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import free_port

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the probe's unit tests import the checkout's package
    sys.path.insert(0, str(ROOT))
healthcheck = importlib.import_module("vm_operator.platform.healthcheck")

DOCKERFILE = ROOT / "docker" / "vm-operator" / "Dockerfile"
SIMULATOR = ROOT / "bin" / "tart-simulator"  # runs the image's vm_operator.simulator
BUILD_LOCAL_BASE = ROOT / "scripts" / "build-local-base.sh"
LOCAL_BASE = "vm-operator-base:bookworm"
IMAGE_VERSION = "0.0.0-pytest"
UID_GID = "10001:10001"
RUN_ID = str(os.getpid())
CONTAINER_SEQ = itertools.count()  # unique container names across the session
HEALTHY_WITHIN_S = 30.0
STOP_WITHIN_S = 5.0
VM = "macos-sequoia-base"
Completed = subprocess.CompletedProcess[str]
HARDENING = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges")

# --------------------------------------------------------------------- helpers


def docker(*args: str, timeout: float = 60, check: bool = False) -> Completed:
    """Run the docker CLI with an argument list (never a shell) and a timeout."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                            check=False)
    if check and result.returncode != 0:
        command = " ".join(args)
        raise AssertionError(f"docker {command} -> {result.returncode}: {result.stderr.strip()}")
    return result


def engine_problem() -> str | None:
    """Why Docker cannot be used here, or None when the engine answers."""
    if shutil.which("docker") is None:
        return "no docker client on PATH"
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if result.returncode != 0:
        reason = result.stderr.strip()[:160]
        return f"no Docker engine reachable ({reason}); run scripts/docker-provision.sh"
    return None


def http(method: str, url: str, timeout: float = 20) -> tuple[int, str, Any]:
    """One request: (status, content type, parsed JSON body or the text)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
            ctype = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, ctype, raw = exc.code, exc.headers.get("Content-Type", ""), exc.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, ctype, json.loads(text)
    except ValueError:
        return status, ctype, text


def report(config: pytest.Config, text: str) -> None:
    """Show a measurement even under output capture (plain `pytest -q`), not only with -s."""
    line = f"[docker tier] {text}"
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write(f"\n{line}\n")


def wait_until(predicate: Callable[[], bool], seconds: float, step: float = 0.2) -> float | None:
    """Poll until predicate() holds: the seconds it took, or None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    return None


def docker_time(text: str) -> float:
    """Seconds since the epoch from Docker's RFC 3339 (nanosecond) timestamps."""
    head, _, frac = text.rstrip("Z").partition(".")
    whole = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp()
    return whole + float("0." + (frac[:6] or "0"))


@dataclass
class Container:
    """A container of the image and the 127.0.0.1 port published for its 8082."""

    cid: str
    port: int
    started: float = field(default_factory=time.monotonic)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str, Any]:
        return http("GET", self.url(path))

    def post(self, path: str) -> tuple[int, str, Any]:
        return http("POST", self.url(path))

    def exec(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.cid, *args, timeout=timeout)

    def inspect(self) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(docker("inspect", self.cid, check=True).stdout)
        return data[0]

    def vm_state(self, name: str) -> str | None:
        status, _, body = self.get(f"/vms/{name}")
        return body.get("state") if status == 200 and isinstance(body, dict) else None

    def logs(self) -> str:
        result = docker("logs", "--tail", "40", self.cid)
        return result.stdout + result.stderr


Starter = Callable[..., Container]  # the start_container fixture's factory
Serve = Callable[[int], int]  # the health_server fixture's factory


def published_port(cid: str) -> int:
    """The host port Docker published on 127.0.0.1 for the container's 8082/tcp."""
    out = docker("port", cid, "8082/tcp", check=True).stdout
    for line in out.splitlines():
        if line.startswith("127.0.0.1:"):
            return int(line.rsplit(":", 1)[1])
    raise AssertionError(f"8082 is not published on 127.0.0.1: {out!r}")


def answers(container: Container) -> bool:
    try:
        http("GET", container.url("/health"), timeout=2)
        return True
    except OSError:
        return False


def zombies(container: Container) -> list[str]:
    """Processes in state Z inside the container, read from /proc/*/stat."""
    out = container.exec("sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null").stdout
    found = []
    for line in out.splitlines():
        head, sep, tail = line.rpartition(")")
        if sep and tail.split()[:1] == ["Z"]:
            found.append(head + ")")
    return found


def start_stop(container: Container, name: str) -> None:
    """One full cycle through the API, waiting for each state change."""
    status, _, body = container.post(f"/vms/{name}/start")
    assert status == 202, body
    assert wait_until(lambda: container.vm_state(name) == "running", 20), container.logs()
    status, _, body = container.post(f"/vms/{name}/stop")
    assert status == 200, body
    assert wait_until(lambda: container.vm_state(name) == "stopped", 20), container.logs()


# -------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip with the reason, or fail under VM_OPERATOR_REQUIRE_DOCKER=1, without an engine."""
    problem = engine_problem()
    if problem is None:
        return
    if os.environ.get("VM_OPERATOR_REQUIRE_DOCKER") == "1":
        pytest.fail(f"VM_OPERATOR_REQUIRE_DOCKER=1 but {problem}")
    pytest.skip(f"Docker tier skipped: {problem}")


@pytest.fixture(scope="session")
def image(docker_engine: None, pytestconfig: pytest.Config) -> Iterator[str]:
    """Build the image once per session (BASE_IMAGE from env, default the local base)."""
    base = os.environ.get("BASE_IMAGE", LOCAL_BASE)
    if base == LOCAL_BASE and docker("image", "inspect", base).returncode != 0:
        built = subprocess.run([str(BUILD_LOCAL_BASE)], capture_output=True, text=True,
                               timeout=900, check=False)
        assert built.returncode == 0, f"cannot build {LOCAL_BASE}: {built.stderr[-800:]}"
    tag = f"vm-operator-pytest:{RUN_ID}"
    started = time.monotonic()
    result = docker("build", "-q", "-f", str(DOCKERFILE), "--build-arg", f"BASE_IMAGE={base}",
                    "--build-arg", f"VERSION={IMAGE_VERSION}", "-t", tag, str(ROOT), timeout=900)
    if result.returncode != 0:
        pytest.fail(f"docker build failed: {result.stderr.strip()[-1500:]}")
    report(pytestconfig, f"built {tag} on {base} in {time.monotonic() - started:.1f} s")
    yield tag
    docker("rmi", "-f", tag)


@pytest.fixture(scope="session")
def image_config(image: str) -> dict[str, Any]:
    """`docker image inspect` of the built image."""
    data: list[dict[str, Any]] = json.loads(docker("image", "inspect", image, check=True).stdout)
    return data[0]


@pytest.fixture
def start_container(image: str) -> Iterator[Starter]:
    """Factory: `docker run -d` the image, simulator mounted unless told not to; removed after."""
    cids: list[str] = []

    def start(*run_args: str, simulator: bool = True) -> Container:
        mounts: tuple[str, ...] = ()
        if simulator:
            # Anonymous volume for the Tart home: it starts as the image's dir
            # (owned by the service user) and `docker rm -v` removes it.
            mounts = ("-v", f"{SIMULATOR}:/app/bin/tart-binary:ro",
                      "-v", "/home/vmoperator/.tart", "-e", "TART_SIM_SEED=demo")
        name = f"vmop-pytest-{RUN_ID}-{next(CONTAINER_SEQ)}"
        result = docker("run", "-d", "--name", name, "-p", "127.0.0.1::8082",
                        *mounts, *run_args, image, check=True)
        cids.append(result.stdout.strip())
        container = Container(result.stdout.strip(), published_port(name))
        assert wait_until(lambda: answers(container), 20) is not None, container.logs()
        return container

    yield start
    for cid in cids:
        docker("rm", "-f", "-v", cid)


docker_test = pytest.mark.docker

# ---------------------------------------------------------- image configuration


@docker_test
def test_image_runs_as_fixed_non_root_user(image: str, image_config: dict[str, Any]) -> None:
    assert image_config["Config"]["User"] == UID_GID
    ident = docker("run", "--rm", "--entrypoint", "id", image, check=True).stdout.strip()
    assert ident.startswith("uid=10001(vmoperator) gid=10001(vmoperator)"), ident
    home = docker("run", "--rm", "--entrypoint", "sh", image, "-c",
                  'echo "$HOME"; stat -c "%u:%g" /home/vmoperator/.tart /var/lib/vm-operator',
                  check=True).stdout.split()
    assert home == ["/home/vmoperator", UID_GID, UID_GID]


@docker_test
def test_image_labels(image_config: dict[str, Any]) -> None:
    labels = image_config["Config"]["Labels"] or {}
    assert labels.get("org.opencontainers.image.title") == "vm-operator"
    assert labels.get("org.opencontainers.image.description")
    assert labels.get("org.opencontainers.image.source", "").startswith("https://")
    assert labels.get("org.opencontainers.image.version") == IMAGE_VERSION
    assert labels.get("org.opencontainers.image.licenses") == "MIT"


@docker_test
def test_image_healthcheck_entrypoint_env(image_config: dict[str, Any]) -> None:
    config = image_config["Config"]
    health = config["Healthcheck"]
    assert health["Test"] == ["CMD", "python3", "-m", "vm_operator.platform.healthcheck"]
    assert 0 < health["Interval"] <= 30 * 10**9
    assert 0 < health["Timeout"] <= 10 * 10**9
    assert health["Retries"] >= 1
    assert config["Entrypoint"] == ["python3", "-m", "vm_operator"]
    assert "8082/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["VM_OPERATOR_HOST"] == "0.0.0.0"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["VM_OPERATOR_STATE_DIR"]


@docker_test
def test_image_carries_only_the_package(
    image: str, image_config: dict[str, Any], pytestconfig: pytest.Config
) -> None:
    listing = docker("run", "--rm", "--entrypoint", "sh", image, "-c", "ls -A /app", check=True)
    assert sorted(listing.stdout.split()) == ["bin", "vm_operator"]
    found = docker("run", "--rm", "--entrypoint", "sh", image, "-c",
                   "find / -xdev \\( -name tart-simulator -o -name 'test_*.py' -path '*/app/*' "
                   "-o -name .git -o -name tests -path '/app/*' \\) -print; "
                   "command -v curl wget gcc cc make || true", check=True).stdout.split()
    assert found == [], f"image carries {found}"
    assert docker("run", "--rm", "--entrypoint", "sh", image, "-c", "ls -A /app/bin",
                  check=True).stdout.strip() == "", "/app/bin must be empty (the Tart mount point)"
    size_mb = image_config["Size"] / 1e6
    report(pytestconfig, f"image size {size_mb:.1f} MB")
    assert size_mb < 400


@docker_test
def test_image_package_carries_the_simulator(image: str) -> None:
    # The same simulator as a pip-installed operator's: a module of the package, nothing else.
    version = docker("run", "--rm", "--entrypoint", "python3", image, "-m", "vm_operator.simulator",
                     "--version", check=True)
    assert version.stdout == "2.31.0\n"
    usage = docker("run", "--rm", "--entrypoint", "python3", image, "-m", "vm_operator.simulator",
                   "--help", check=True)
    assert "TART_SIM_SEED" in usage.stdout and "suspend" in usage.stdout


@docker_test
def test_image_has_the_ssh_client_for_the_tart_transport(image: str) -> None:
    # The SSH transport (VM_OPERATOR_TART_SSH) is how a Linux container reaches Tart on a Mac.
    result = docker("run", "--rm", "--entrypoint", "ssh", image, "-V")
    assert result.returncode == 0 and "OpenSSH" in result.stderr, result.stderr


@docker_test
def test_healthcheck_probe_exit_codes(image: str, start_container: Starter) -> None:
    # Nothing listening: the probe must fail fast with 1, not hang.
    started = time.monotonic()
    idle = docker("run", "--rm", "--entrypoint", "python3", image, "-m", "vm_operator.platform.healthcheck")
    assert idle.returncode == 1
    assert time.monotonic() - started < 15
    container = start_container()
    assert container.exec("python3", "-m", "vm_operator.platform.healthcheck").returncode == 0


# ------------------------------------------------------------------ containers


@docker_test
def test_reaches_healthy_in_time(start_container: Starter, pytestconfig: pytest.Config) -> None:
    container = start_container()
    took = wait_until(lambda: container.inspect()["State"]["Health"]["Status"] == "healthy",
                      HEALTHY_WITHIN_S + 5)
    state = container.inspect()["State"]
    assert took is not None, f"not healthy: {state['Health']}\n{container.logs()}"
    passing = [docker_time(p["End"]) for p in state["Health"]["Log"] if p["ExitCode"] == 0]
    since_start = min(passing) - docker_time(state["StartedAt"])
    report(pytestconfig, f"healthy {since_start:.2f} s after start (first passing probe)")
    assert since_start < HEALTHY_WITHIN_S


@docker_test
def test_without_tart_degraded_but_healthy(start_container: Starter) -> None:
    container = start_container(simulator=False)
    status, _, body = container.get("/health")
    assert (status, body["status"], body["tart"]["available"]) == (200, "degraded", False)
    status, ctype, body = container.get("/vms")
    assert status == 503
    assert ctype.split(";")[0] == "application/problem+json"
    assert "/app/bin/tart-binary" in body["detail"]
    assert container.exec("python3", "-m", "vm_operator.platform.healthcheck").returncode == 0


@docker_test
def test_read_only_hardened_container_serves_and_runs_vms(start_container: Starter) -> None:
    container = start_container(*HARDENING)
    host = container.inspect()["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert container.exec("touch", "/app/probe").returncode != 0, "root fs must be read-only"
    assert container.exec("touch", "/tmp/probe").returncode == 0, "/tmp must be writable (tmpfs)"
    status, _, body = container.get("/vms")
    assert status == 200 and VM in {vm["name"] for vm in body}
    start_stop(container, VM)
    status, _, _ = container.get(f"/vms/{VM}/logs")
    assert status == 200


@docker_test
@pytest.mark.parametrize("init", [True, False], ids=["with-init", "python-as-pid1"])
def test_docker_stop_is_graceful_and_fast(
    start_container: Starter, init: bool, pytestconfig: pytest.Config
) -> None:
    container = start_container(*HARDENING, *(("--init",) if init else ()))
    status, _, _ = container.post(f"/vms/{VM}/start")  # a running VM must not hold up the stop
    assert status == 202
    assert wait_until(lambda: container.vm_state(VM) == "running", 20)
    started = time.monotonic()
    result = docker("stop", "-t", "10", container.cid, timeout=30)
    took = time.monotonic() - started
    exit_code = container.inspect()["State"]["ExitCode"]
    how = "--init" if init else "python as PID 1"
    report(pytestconfig, f"docker stop ({how}) took {took:.2f} s, exit code {exit_code}")
    assert result.returncode == 0
    assert exit_code == 0, container.logs()
    assert took < STOP_WITHIN_S


@docker_test
@pytest.mark.parametrize("init", [True, False], ids=["with-init", "python-as-pid1"])
def test_no_zombies_after_start_stop_cycles(start_container: Starter, init: bool) -> None:
    container = start_container(*(("--init",) if init else ()))
    for _ in range(4):
        start_stop(container, VM)
        start_stop(container, "ubuntu-runner")
    # Reaping is asynchronous: allow a moment, then demand an empty list.
    wait_until(lambda: not zombies(container), 5)
    assert zombies(container) == []


@docker_test
def test_vms_end_with_the_container_and_come_back_when_desired(start_container: Starter) -> None:
    """README "What survives the operator": with a mounted Tart binary, `tart run` is a process of
    the container, so `docker stop` ends the VMs. When the container comes back (same Tart home
    and state), a VM started through the API is desired running, so the reconciler starts it
    again (README "Desired state": the reboot story); one stopped through the API stays stopped."""
    container = start_container()
    status, _, body = container.post(f"/vms/{VM}/start")
    assert status == 202, body
    assert container.vm_state(VM) == "running"
    status, _, first = container.get(f"/vms/{VM}")
    assert status == 200 and first["spec"]["desired"] == "running", first
    docker("stop", "-t", "10", container.cid, timeout=30, check=True)
    docker("start", container.cid, check=True)
    back = Container(container.cid, published_port(container.cid))  # a new host port, maybe
    assert wait_until(lambda: answers(back), 20) is not None, back.logs()
    # the run ended with the container; a new one, the reconciler's, runs the VM again
    assert wait_until(lambda: back.vm_state(VM) == "running", 30) is not None, back.logs()
    status, _, again = back.get(f"/vms/{VM}")
    assert status == 200 and again["last_run"]["started_at"] > first["last_run"]["started_at"]
    status, _, body = back.post(f"/vms/{VM}/stop")
    assert status == 200, body
    docker("restart", "-t", "10", container.cid, timeout=30, check=True)
    third = Container(container.cid, published_port(container.cid))
    assert wait_until(lambda: answers(third), 20) is not None, third.logs()
    assert third.vm_state(VM) == "stopped"  # desired stopped: not brought back
    listed = third.exec("/app/bin/tart-binary", "list", "--format", "json")  # Tart agrees
    assert {vm["Name"]: vm["State"] for vm in json.loads(listed.stdout)}[VM] == "stopped"


@docker_test
def test_unreadable_token_file_stops_start_up_naming_the_uid(image: str, tmp_path: Path) -> None:
    """A token file mounted with its host mode 600 (another owner): the container user cannot read
    it, and the operator says so in one line, with its UID and the fix (README: Tokens in compose)."""
    token = tmp_path / "token.txt"
    token.write_text("t" * 32 + "\n")
    token.chmod(0o600)
    name = f"vmop-pytest-{RUN_ID}-{next(CONTAINER_SEQ)}"
    try:
        docker("run", "-d", "--name", name, "-v", f"{token}:/run/secrets/token:ro",
               "-e", "VM_OPERATOR_TOKEN_FILE=/run/secrets/token", image, check=True)
        assert wait_until(lambda: docker("inspect", "-f", "{{.State.Running}}", name)
                          .stdout.strip() == "false", 20) is not None
        exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        logs = docker("logs", name)
        lines = [line for line in logs.stderr.splitlines() if "cannot read" in line]
    finally:
        docker("rm", "-f", "-v", name)
    assert exit_code != "0"
    wanted = ("vm-operator: cannot read VM_OPERATOR_TOKEN_FILE (/run/secrets/token): Permission "
              "denied; the operator runs as UID 10001 (GID 10001): let that user read the file, "
              "e.g. on the host `setfacl -m u:10001:r FILE` (README: Tokens in compose)")
    assert lines == [wanted], logs.stderr


# ------------------------------------------------- the probe itself (no Docker)


class _Handler(BaseHTTPRequestHandler):
    """Answers /health with the status code the test server was given."""

    def do_GET(self) -> None:
        code = self.server.code if self.path == "/health" else 404  # type: ignore[attr-defined]
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[Serve]:
    """Factory: a loopback server answering /health with a given code; returns its port."""
    servers: list[HTTPServer] = []

    def serve(code: int) -> int:
        server = HTTPServer(("127.0.0.1", 0), _Handler)
        server.code = code  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("code", "healthy"), [(200, True), (503, False), (500, False)])
def test_probe_maps_status_to_health(health_server: Serve, code: int, healthy: bool) -> None:
    assert healthcheck.check(port=health_server(code)) is healthy


def test_probe_fails_when_nothing_listens(health_server: Serve) -> None:
    port = health_server(200)
    assert healthcheck.check(port=port)
    closed = free_port()
    assert healthcheck.check(port=closed, timeout=1) is False


def test_probe_reads_port_from_env(monkeypatch: pytest.MonkeyPatch, health_server: Serve) -> None:
    port = health_server(200)
    monkeypatch.setenv("VM_OPERATOR_PORT", str(port))
    assert healthcheck.probe_port() == port
    assert healthcheck.main() == 0
    monkeypatch.setenv("VM_OPERATOR_PORT", "not-a-port")
    assert healthcheck.probe_port() == healthcheck.DEFAULT_PORT
