"""HTTPS on the operator's own port (--tls-cert, --tls-key, --tls-client-ca), proven by real
peers: curl, ``openssl s_client``, Python's ``ssl`` with strict X.509 checks, raw sockets.

Certificates are made by the ``openssl`` command (tests/certificates.py), never by the code
under test. Every peer talks to a real operator on loopback that drives the simulator.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from certificates import (
    authority,
    client_pair,
    https_request,
    mutual_pki,
    server_pair,
    tls_operator,
    trusting,
)
from conftest import REPO_ROOT, Operator
from support import read_until, wait_for

TOOL_TIMEOUT = 60.0


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)


def test_curl_is_served_when_it_trusts_the_certificate_and_refuses_otherwise(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    operator, cert = tls_operator(operator_factory, tmp_path / "pki")
    url = f"https://127.0.0.1:{operator.port}/vms"
    trusted = run("curl", "-sS", "--cacert", str(cert), "-w", "\n%{http_code}", url)
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.rsplit("\n", 1)[1] == "200"
    assert '"macos-sequoia-base"' in trusted.stdout
    by_name = run("curl", "-sS", "--cacert", str(cert), "-o", "/dev/null", "-w",
                  "%{http_code}", f"https://localhost:{operator.port}/health")
    assert by_name.stdout == "200", by_name.stderr
    untrusted = run("curl", "-sS", url)
    assert untrusted.returncode == 60, (untrusted.returncode, untrusted.stderr)  # peer cert
    assert "certificate" in untrusted.stderr


def test_tls_1_1_is_refused_and_tls_1_2_and_1_3_are_served(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    operator, cert = tls_operator(operator_factory, tmp_path / "pki")
    target = f"127.0.0.1:{operator.port}"

    def s_client(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["openssl", "s_client", "-connect", target, "-CAfile", str(cert),
                               "-verify_return_error", *flags],
                              input="", capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                              check=False)

    # The client offers TLS 1.1 (its own security level lowered): the refusal is the server's.
    old = s_client("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
    assert old.returncode != 0
    assert "alert protocol version" in old.stderr, old.stderr
    for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        served = s_client(flag)
        assert served.returncode == 0, served.stderr
        assert f"Protocol  : {version}" in served.stdout or f"New, {version}" in served.stdout
        assert "Verify return code: 0 (ok)" in served.stdout


def test_python_with_strict_x509_checks_gets_answers(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    operator, cert = tls_operator(operator_factory, tmp_path / "pki")
    context = trusting(cert)
    assert context.verify_flags & ssl.VERIFY_X509_STRICT
    for host in ("127.0.0.1", "localhost"):
        status, _, body = https_request(operator.port, "/health", context, host)
        assert status == 200 and b'"status"' in body


def test_a_plain_http_request_to_the_tls_port_gets_no_api_answer(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    operator, cert = tls_operator(operator_factory, tmp_path / "pki")
    with socket.create_connection(("127.0.0.1", operator.port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert not answer.startswith(b"HTTP/"), answer[:200]
    assert b"healthy" not in answer and b"vm-operator" not in answer
    # and the port still serves TLS afterwards
    status, _, _ = https_request(operator.port, "/health", trusting(cert))
    assert status == 200


def test_silent_connections_never_delay_a_request(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    """Clients that connect and say nothing hold their own threads, not the accept loop: with
    a head deadline of five minutes, a request behind them is still served at once (were the
    handshake in the accept loop, it would wait for the first silent one's deadline)."""
    operator, cert = tls_operator(operator_factory, tmp_path / "pki", "--header-timeout", "300")
    silent = [socket.create_connection(("127.0.0.1", operator.port), timeout=30)
              for _ in range(20)]
    try:
        status, _, body = https_request(operator.port, "/vms", trusting(cert), timeout=60)
        assert status == 200 and b"ubuntu-runner" in body
    finally:
        for sock in silent:
            sock.close()


def watchers(port: int, context: ssl.SSLContext) -> float:
    _, _, body = https_request(port, "/metrics", context)
    line = next(line for line in body.decode().splitlines()
                if line.startswith("vm_operator_event_watchers "))
    return float(line.split()[1])


def test_a_closed_event_stream_over_tls_ends_at_once(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    """No heartbeat for a minute: the server notices the close of a TLS stream by its
    socket's end of file, as it does in plain HTTP, not at the next write."""
    operator, cert = tls_operator(operator_factory, tmp_path / "pki",
                                  "--events-heartbeat", "60")
    context = trusting(cert)
    for _ in range(3):
        raw = socket.create_connection(("127.0.0.1", operator.port), timeout=30)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as stream:
            stream.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = read_until(stream, b"retry: ")
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert watchers(operator.port, context) == 1
        wait_for(lambda: watchers(operator.port, context) == 0, timeout=20,
                 message="the closed stream ended (not at its heartbeat, a minute away)")


def test_mutual_tls_refuses_a_client_without_a_certificate_of_its_ca(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca, client = mutual_pki(pki)
    stranger = client_pair(pki, authority(pki, "other-ca"), "stranger")
    operator, cert = tls_operator(operator_factory, pki, "--tls-client-ca", str(ca[0]))
    status, _, body = https_request(operator.port, "/vms", trusting(cert, client))
    assert status == 200 and b"ubuntu-runner" in body
    for presented in (None, stranger):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https_request(operator.port, "/vms", trusting(cert, presented))
    curl = run("curl", "-sS", "--cacert", str(cert), f"https://127.0.0.1:{operator.port}/vms")
    assert curl.returncode != 0 and "ubuntu-runner" not in curl.stdout
    with_cert = run("curl", "-sS", "--cacert", str(cert), "--cert", str(client[0]), "--key",
                    str(client[1]), f"https://127.0.0.1:{operator.port}/vms")
    assert with_cert.returncode == 0 and "ubuntu-runner" in with_cert.stdout


def test_mutual_tls_keeps_asking_for_the_token(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca, client = mutual_pki(pki)
    token = "mutual-tls-token-0123456789abcdef"
    operator, cert = tls_operator(operator_factory, pki, "--tls-client-ca", str(ca[0]),
                                  env={"VM_OPERATOR_TOKEN": token})
    context = trusting(cert, client)
    assert https_request(operator.port, "/vms", context)[0] == 401
    status, _, _ = https_request(operator.port, "/vms", context,
                                 headers={"Authorization": f"Bearer {token}"})
    assert status == 200


# --- start-up refusals ---------------------------------------------------------------------


def start_refused(tmp_path: Path, args: list[str],
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("TART_", "VM_OPERATOR_"))}
    environ.update({"PYTHONPATH": str(REPO_ROOT), "TART_HOME": str(tmp_path / "tart"),
                    **(env or {})})
    done = subprocess.run([sys.executable, "-m", "vm_operator", "--port", "0", "--state-dir",
                           str(tmp_path / "state"), "--tart", "/nonexistent", *args],
                          capture_output=True, text=True, timeout=TOOL_TIMEOUT, env=environ,
                          stdin=subprocess.DEVNULL, cwd=REPO_ROOT, check=False)
    assert '"listening"' not in done.stdout, "it served instead of refusing to start"
    assert done.returncode != 0
    return done


def test_start_up_is_refused_on_a_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    cert, _ = server_pair(tmp_path / "one", "one")
    _, other_key = server_pair(tmp_path / "two", "two")
    done = start_refused(tmp_path, ["--tls-cert", str(cert), "--tls-key", str(other_key)])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vm-operator: ")
    assert f"the key {other_key} is not the key of the certificate {cert}" in lines[0]


@pytest.mark.parametrize("case", ["missing key", "key not set", "certificate not PEM",
                                  "key not PEM"])
def test_start_up_is_refused_on_tls_files_it_cannot_use(tmp_path: Path, case: str) -> None:
    cert, key = server_pair(tmp_path / "pki")
    variables = {"VM_OPERATOR_TLS_CERT": str(cert), "VM_OPERATOR_TLS_KEY": str(key)}
    expected = {"missing key": "VM_OPERATOR_TLS_KEY: cannot read",
                "key not set": "VM_OPERATOR_TLS_CERT: needs its private key",
                "certificate not PEM": "holds no PEM certificate",
                "key not PEM": "is not an unencrypted PEM private key"}[case]
    if case == "missing key":
        variables["VM_OPERATOR_TLS_KEY"] = str(tmp_path / "absent.pem")
    elif case == "key not set":
        del variables["VM_OPERATOR_TLS_KEY"]
    elif case == "certificate not PEM":
        (tmp_path / "text").write_text("not a certificate\n")
        variables["VM_OPERATOR_TLS_CERT"] = str(tmp_path / "text")
    else:
        variables["VM_OPERATOR_TLS_KEY"] = str(cert)
    done = start_refused(tmp_path, [], variables)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vm-operator: "), done.stderr
    assert expected in lines[0]
