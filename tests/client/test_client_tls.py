"""The command-line client and ``vm-operator plan`` over HTTPS, as a user runs them (the real
``python -m vm_operator`` client against a real operator): trust by a CA file or a pinned
fingerprint, a wrong pin refused before the request is sent, client certificates for mutual
TLS, and the event stream over TLS."""

from __future__ import annotations

import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from certificates import fingerprint, mutual_pki, server_pair, tls_operator
from conftest import REPO_ROOT, Operator
from support import client_env

TIMEOUT = 60.0
TOKEN = "client-tls-token-0123456789abcdef"


def client(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vm_operator", *args],
                          env=client_env(**(env or {})),
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO_ROOT,
                          stdin=subprocess.DEVNULL, check=False)


def https_operator(factory: Callable[..., Operator], folder: Path,
                   *extra: str) -> tuple[Operator, Path, str]:
    """``tls_operator`` asking for TOKEN, and its URL."""
    operator, cert = tls_operator(factory, folder, *extra, env={"VM_OPERATOR_TOKEN": TOKEN})
    return operator, cert, f"https://127.0.0.1:{operator.port}"


def requests_logged(operator: Operator, path: str) -> int:
    return sum(1 for record in operator.log_records() if record.get("path") == path)


def test_a_pinned_fingerprint_is_trusted_and_a_wrong_one_refused_before_sending(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    operator, cert, url = https_operator(operator_factory, tmp_path / "pki")
    token = {"VM_OPERATOR_TOKEN": TOKEN}
    pinned = client("--url", url, "--fingerprint", fingerprint(cert), "vms", env=token)
    assert pinned.returncode == 0, pinned.stderr
    assert "ubuntu-runner" in pinned.stdout
    colons = fingerprint(cert).replace("sha256:", "")
    by_variable = client("--url", url, "health", env={
        **token, "VM_OPERATOR_FINGERPRINT": "sha256:" + ":".join(
            colons[i:i + 2].upper() for i in range(0, 64, 2))})
    assert by_variable.returncode == 0, by_variable.stderr

    served = requests_logged(operator, "/vms")
    wrong = "sha256:" + "ab" * 32
    refused = client("--url", url, "--fingerprint", wrong, "vms", env=token)
    assert refused.returncode == 3
    assert fingerprint(cert) in refused.stderr and wrong in refused.stderr
    # a request that came after it is logged; the refused one never was
    assert client("--url", url, "--fingerprint", fingerprint(cert), "host", env=token
                  ).returncode == 0
    assert requests_logged(operator, "/host") == 1
    assert requests_logged(operator, "/vms") == served
    logs = operator.stdout_path.read_text() + operator.stderr_path.read_text()
    assert TOKEN not in logs


def test_a_wrong_pin_sends_no_byte_of_the_request(tmp_path: Path) -> None:
    """A TLS peer of our own, holding the pinned name's place with another certificate,
    records every byte that comes after its handshake: none."""
    cert, key = server_pair(tmp_path / "pki")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []
    handshakes: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            handshakes.append(tls.version() or "")
            tls.settimeout(TIMEOUT)
            data = b""
            try:
                while chunk := tls.recv(65536):
                    data += chunk
            except (OSError, ssl.SSLError):
                pass
            received.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{listener.getsockname()[1]}"
    refused = client("--url", url, "--fingerprint", "sha256:" + "00" * 32, "vms",
                     env={"VM_OPERATOR_TOKEN": TOKEN})
    thread.join(TIMEOUT)
    listener.close()
    assert refused.returncode == 3, refused.stderr
    assert fingerprint(cert) in refused.stderr
    assert handshakes and received == [b""]


def test_a_ca_file_is_trusted_and_no_trust_is_refused_with_advice(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    _, cert, url = https_operator(operator_factory, tmp_path / "pki")
    trusted = client("--url", url.replace("127.0.0.1", "localhost"), "vms",
                     env={"VM_OPERATOR_TOKEN": TOKEN, "VM_OPERATOR_CA_FILE": str(cert)})
    assert trusted.returncode == 0, trusted.stderr
    untrusted = client("--url", url, "vms", env={"VM_OPERATOR_TOKEN": TOKEN})
    assert untrusted.returncode == 3
    assert "--ca-file" in untrusted.stderr and "certificate" in untrusted.stderr
    plain = client("--url", url.replace("https", "http"), "--ca-file", str(cert), "vms")
    assert plain.returncode == 2 and "https://" in plain.stderr


def test_a_client_certificate_answers_mutual_tls(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca, mine = mutual_pki(pki)
    _, cert, url = https_operator(operator_factory, pki, "--tls-client-ca", str(ca[0]))
    pin = fingerprint(cert)
    token = {"VM_OPERATOR_TOKEN": TOKEN}
    presented = client("--url", url, "--fingerprint", pin, "--client-cert", str(mine[0]),
                       "--client-key", str(mine[1]), "vms", env=token)
    assert presented.returncode == 0, presented.stderr
    by_variables = client("--url", url, "vms", env={
        **token, "VM_OPERATOR_FINGERPRINT": pin, "VM_OPERATOR_CLIENT_CERT": str(mine[0]),
        "VM_OPERATOR_CLIENT_KEY": str(mine[1])})
    assert by_variables.returncode == 0, by_variables.stderr
    without = client("--url", url, "--fingerprint", pin, "vms", env=token)
    assert without.returncode == 3 and "ubuntu-runner" not in without.stdout


def test_plan_talks_to_an_operator_over_tls(operator_factory: Callable[..., Operator],
                                            tmp_path: Path) -> None:
    _, cert, url = https_operator(operator_factory, tmp_path / "pki")
    fleet = tmp_path / "vms.toml"
    fleet.write_text('[vms.tls-planned]\nfrom = "ubuntu-runner"\n')
    token = {"VM_OPERATOR_TOKEN": TOKEN}
    planned = client("plan", str(fleet), "--url", url, "--fingerprint", fingerprint(cert),
                     env=token)
    assert planned.returncode == 2, planned.stderr
    assert "tls-planned" in planned.stdout
    unpinned = client("plan", str(fleet), "--url", url, env=token)
    assert unpinned.returncode == 3


def test_the_event_stream_is_read_over_tls(operator_factory: Callable[..., Operator],
                                           tmp_path: Path) -> None:
    operator, cert, url = https_operator(operator_factory, tmp_path / "pki")
    environ = client_env(VM_OPERATOR_TOKEN=TOKEN, VM_OPERATOR_FINGERPRINT=fingerprint(cert))
    stream = subprocess.Popen([sys.executable, "-m", "vm_operator", "--url", url, "events",
                               "--vm", "ubuntu-runner"], env=environ, cwd=REPO_ROOT,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        def streams() -> bool:
            return any(record.get("path") == "/events" for record in operator.log_records())

        deadline = time.monotonic() + TIMEOUT
        while not streams():
            assert stream.poll() is None, stream.stderr.read() if stream.stderr else ""
            assert time.monotonic() < deadline, "the stream never opened"
            time.sleep(0.05)
        started = client("--url", url, "start", "ubuntu-runner", env={
            "VM_OPERATOR_TOKEN": TOKEN, "VM_OPERATOR_FINGERPRINT": fingerprint(cert)})
        assert started.returncode == 0, started.stderr
        assert stream.stdout is not None
        ready, _, _ = select.select([stream.stdout], [], [], TIMEOUT)
        assert ready, "no event came over the stream"
        line = stream.stdout.readline()
        assert "vm.state" in line and "ubuntu-runner" in line, line
    finally:
        stream.kill()
        stream.wait(timeout=10)


def test_tunnels_trust_the_pinned_certificate_as_every_request_does(
        operator_factory: Callable[..., Operator], tmp_path: Path) -> None:
    """``proxy`` (and so ``ssh`` and ``port-forward``) opens its WebSocket with the same trust
    as the client's other requests: the right pin reaches the operator (which refuses a tunnel
    to a stopped VM with its problem), a wrong one is refused before the handshake's request
    is written, naming the certificate it saw."""
    operator, cert, url = https_operator(operator_factory, tmp_path / "pki")
    token = {"VM_OPERATOR_TOKEN": TOKEN}
    reached = client("--url", url, "--fingerprint", fingerprint(cert), "proxy",
                     "ubuntu-runner", "22", env=token)
    assert reached.returncode != 0 and "not running" in reached.stderr, reached.stderr
    assert requests_logged(operator, "/vms/ubuntu-runner/port-forward") == 1
    wrong = "sha256:" + "cd" * 32
    refused = client("--url", url, "--fingerprint", wrong, "proxy", "ubuntu-runner", "22",
                     env=token)
    assert refused.returncode != 0 and fingerprint(cert) in refused.stderr, refused.stderr
    assert requests_logged(operator, "/vms/ubuntu-runner/port-forward") == 1
