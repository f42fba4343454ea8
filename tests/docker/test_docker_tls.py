"""The real image with TLS on: a certificate made by ``vm-operator tls init`` on the host, its two
files mounted read-only where compose's secrets put them, ``VM_OPERATOR_TLS_CERT``/``_KEY`` set as
README "TLS in compose" says. The image's own HEALTHCHECK must turn ``healthy`` over HTTPS; curl
with the certificate gets 200, plain HTTP gets no API answer; the CLI works with ``--ca-file``.

The key stays mode 0600, owned by the host user; the container's user (UID 10001) reads it through
the ACL the README's recipe adds (``setfacl -m u:10001:r``). Without it the operator stops at
start-up naming its UID and that fix. Ports are published on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import test_docker_tier as tier
from support import run_client
from test_docker_tier import (
    CONTAINER_SEQ,
    ROOT,
    RUN_ID,
    SIMULATOR,
    VM,
    docker,
    docker_test,
    published_port,
    wait_until,
)

docker_engine, image = tier.docker_engine, tier.image  # the tier's fixtures, by their names
HEALTHY_WITHIN_S = 60.0
SECRETS = "/run/secrets"


def tls_init(directory: Path) -> tuple[Path, Path]:
    """``vm-operator tls init`` run on the host, as a user would: (cert.pem, key.pem)."""
    made = subprocess.run([sys.executable, "-m", "vm_operator", "tls", "init", "--dir",
                           str(directory)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert made.returncode == 0, made.stderr
    return directory / "cert.pem", directory / "key.pem"


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, timeout=30, check=False)


def run_with_tls(image: str, cert: Path, key: Path) -> str:
    """``docker run -d`` the image with the two files mounted read-only; its name."""
    name = f"vmop-pytest-{RUN_ID}-{next(CONTAINER_SEQ)}"
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::8082",
           "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
           "--security-opt", "no-new-privileges",
           "-v", f"{SIMULATOR}:/app/bin/tart-binary:ro", "-v", "/home/vmoperator/.tart",
           "-e", "TART_SIM_SEED=demo",
           "-v", f"{cert}:{SECRETS}/vm_operator_tls_cert:ro",
           "-v", f"{key}:{SECRETS}/vm_operator_tls_key:ro",
           "-e", f"VM_OPERATOR_TLS_CERT={SECRETS}/vm_operator_tls_cert",
           "-e", f"VM_OPERATOR_TLS_KEY={SECRETS}/vm_operator_tls_key",
           image, check=True)
    return name


def logs(name: str) -> str:
    result = docker("logs", "--tail", "40", name)
    return result.stdout + result.stderr


@docker_test
def test_image_serves_https_and_its_health_check_passes_with_tls_on(
        image: str, tmp_path: Path) -> None:
    if shutil.which("setfacl") is None or shutil.which("curl") is None:
        pytest.fail("the TLS container test needs setfacl and curl (scripts/test.sh installs them)")
    cert, key = tls_init(tmp_path / "tls")
    assert key.stat().st_mode & 0o777 == 0o600  # tls init's mode, kept: only an ACL is added
    subprocess.run(["setfacl", "-m", "u:10001:r", str(key)], timeout=30, check=True)
    name = run_with_tls(image, cert, key)
    try:
        def health() -> str:
            return docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()

        assert wait_until(lambda: health() == "healthy", HEALTHY_WITHIN_S, step=0.5) is not None, (
            f"not healthy ({health()}):\n{logs(name)}")
        state = json.loads(docker("inspect", name, check=True).stdout)[0]
        assert state["RestartCount"] == 0
        assert state["Config"]["User"] == "10001:10001"
        assert all(entry["ExitCode"] == 0 for entry in state["State"]["Health"]["Log"][-1:])
        port = published_port(name)

        secure = curl("--cacert", str(cert), "-o", "/dev/null", "-w", "%{http_code}",
                      f"https://127.0.0.1:{port}/health")
        assert (secure.returncode, secure.stdout) == (0, "200"), secure.stderr
        unchecked = curl(f"https://127.0.0.1:{port}/health")  # no CA: the certificate is refused
        assert unchecked.returncode == 60, unchecked.stderr
        plain = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/health")
        assert plain.returncode != 0 and plain.stdout == "000", (plain.stdout, plain.stderr)

        listed = run_client("--url", f"https://127.0.0.1:{port}", "--ca-file", str(cert),
                            "--json", "vms")
        assert listed.returncode == 0, listed.stderr
        assert VM in {vm["name"] for vm in json.loads(listed.stdout)}, listed.stdout
    finally:
        docker("rm", "-f", "-v", name)


@docker_test
def test_unreadable_tls_key_stops_start_up_naming_the_uid(image: str, tmp_path: Path) -> None:
    """tls init's key as it is (mode 0600, the host user's): the container's user cannot read it;
    the operator says so in one line, with its UID and the fix (README: Security)."""
    cert, key = tls_init(tmp_path / "tls")
    name = run_with_tls(image, cert, key)
    try:
        assert wait_until(lambda: docker("inspect", "-f", "{{.State.Running}}", name)
                          .stdout.strip() == "false", 20) is not None
        exit_code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
        stderr = docker("logs", name).stderr
    finally:
        docker("rm", "-f", "-v", name)
    assert exit_code != "0"
    lines = [line for line in stderr.splitlines() if "cannot read" in line]
    wanted = (f"vm-operator: VM_OPERATOR_TLS_KEY: cannot read {SECRETS}/vm_operator_tls_key: "
              "Permission denied; the operator runs as UID 10001 (GID 10001): let that user read "
              "the file, e.g. on the host `setfacl -m u:10001:r FILE` (README: Security)")
    assert lines == [wanted], stderr
