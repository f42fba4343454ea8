"""TLS where the operator ships: the container's health check speaks HTTPS to an operator
with TLS on (and presents a client certificate to one that asks for it), and the launchd
agent's plist carries the TLS settings as the server's own variables."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from certificates import authority, client_pair, server_pair
from conftest import REPO_ROOT, Operator

from vm_operator.config import load_config

TIMEOUT = 60.0


def healthcheck(env: dict[str, str]) -> int:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VM_OPERATOR_")}
    environ.update({"PYTHONPATH": str(REPO_ROOT), **env})
    return subprocess.run([sys.executable, "-m", "vm_operator.platform.healthcheck"],
                          env=environ, capture_output=True, timeout=TIMEOUT, cwd=REPO_ROOT,
                          stdin=subprocess.DEVNULL, check=False).returncode


def test_the_health_check_speaks_https_when_tls_is_on(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    cert, key = server_pair(tmp_path / "pki")
    tls = {"VM_OPERATOR_TLS_CERT": str(cert), "VM_OPERATOR_TLS_KEY": str(key)}
    operator = operator_factory(env=tls)  # the container sets TLS by these variables
    port = {"VM_OPERATOR_PORT": str(operator.port)}
    assert healthcheck({**port, **tls}) == 0
    assert healthcheck(port) == 1  # plain HTTP to the TLS port: no answer


def test_the_health_check_presents_the_client_certificate_to_mutual_tls(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    cert, key = server_pair(pki)
    ca = authority(pki)
    mine = client_pair(pki, ca)
    tls = {"VM_OPERATOR_TLS_CERT": str(cert), "VM_OPERATOR_TLS_KEY": str(key),
           "VM_OPERATOR_TLS_CLIENT_CA": str(ca[0])}
    operator = operator_factory(env=tls)
    port = {"VM_OPERATOR_PORT": str(operator.port)}
    assert healthcheck({**port, **tls}) == 1  # no client certificate: refused
    assert healthcheck({**port, **tls, "VM_OPERATOR_CLIENT_CERT": str(mine[0]),
                        "VM_OPERATOR_CLIENT_KEY": str(mine[1])}) == 0


def test_the_launchd_agent_carries_the_tls_settings(tmp_path: Path) -> None:
    cert, key = server_pair(tmp_path / "pki")
    ca = authority(tmp_path / "pki")
    relative = [os.path.relpath(path, tmp_path) for path in (cert, key, ca[0])]
    done = subprocess.run(
        [sys.executable, "-m", "vm_operator", "launchd", "print", "--tls-cert", relative[0],
         "--tls-key", relative[1], "--tls-client-ca", relative[2]],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
        timeout=TIMEOUT, cwd=tmp_path, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    env = plistlib.loads(done.stdout)["EnvironmentVariables"]
    assert (env["VM_OPERATOR_TLS_CERT"], env["VM_OPERATOR_TLS_KEY"],
            env["VM_OPERATOR_TLS_CLIENT_CA"]) == (str(cert), str(key), str(ca[0]))
    config = load_config([], {name: value for name, value in env.items()
                              if name.startswith("VM_OPERATOR_")})
    assert (config.tls_cert, config.tls_key, config.tls_client_ca) == (
        str(cert), str(key), str(ca[0]))
