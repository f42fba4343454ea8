"""``vm-operator tls init``: the real command, with the real ``openssl``, and what strict
verifiers make of the certificate it writes (Python's ``ssl`` with ``VERIFY_X509_STRICT``, as
Python 3.13's default context has it, and ``openssl verify -x509_strict``) while a real
operator serves it."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from certificates import fingerprint, https_request, openssl, trusting
from conftest import REPO_ROOT, Operator

TIMEOUT = 120.0


def tls(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "vm_operator", "tls", *args], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO_ROOT,
                          stdin=subprocess.DEVNULL, check=False)


def printed_fingerprint(stdout: str) -> str:
    found = re.search(r"^fingerprint: (sha256:[0-9a-f]{64})$", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(1)


def test_init_writes_a_certificate_strict_verifiers_accept(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    done = tls("init", "--dir", str(folder), "--name", "ci.example.com", "--name", "10.1.2.3")
    assert done.returncode == 0, done.stderr
    cert, key = folder / "cert.pem", folder / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert printed_fingerprint(done.stdout) == fingerprint(cert)
    assert tls("fingerprint", str(cert)).stdout.strip() == fingerprint(cert)
    text = openssl("x509", "-in", str(cert), "-noout", "-text")
    names = text.split("X509v3 Subject Alternative Name:", 1)[1].splitlines()[1]
    for name in ("DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1",
                 "DNS:ci.example.com", "IP Address:10.1.2.3"):
        assert name in names
    assert f"DNS:{socket.gethostname().lower()}" in names
    for extension in ("Subject Key Identifier", "Authority Key Identifier",
                      "Basic Constraints: critical", "Key Usage: critical",
                      "TLS Web Server Authentication"):
        assert extension in text, extension
    openssl("verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", str(cert), str(cert))
    operator = operator_factory(args=["--tls-cert", str(cert), "--tls-key", str(key)])
    for host in ("127.0.0.1", "localhost"):
        status, _, body = https_request(operator.port, "/health", trusting(cert), host=host)
        assert status == 200 and b"healthy" in body


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    first = tls("init", "--dir", str(folder))
    assert first.returncode == 0, first.stderr
    before = (folder / "cert.pem").read_bytes(), (folder / "key.pem").read_bytes()
    again = tls("init", "--dir", str(folder))
    assert again.returncode == 1
    assert again.stderr.startswith("vm-operator tls: ") and "--force" in again.stderr
    assert ((folder / "cert.pem").read_bytes(), (folder / "key.pem").read_bytes()) == before
    forced = tls("init", "--dir", str(folder), "--force")
    assert forced.returncode == 0, forced.stderr
    assert printed_fingerprint(forced.stdout) != printed_fingerprint(first.stdout)
    assert printed_fingerprint(forced.stdout) == fingerprint(folder / "cert.pem")
    assert sorted(path.name for path in folder.iterdir()) == ["cert.pem", "key.pem"]


def test_init_refuses_a_name_that_is_no_host(tmp_path: Path) -> None:
    done = tls("init", "--dir", str(tmp_path / "tls"), "--name", "two words")
    assert done.returncode == 1 and "--name 'two words'" in done.stderr
    assert not (tmp_path / "tls").exists()
