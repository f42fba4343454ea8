"""Certificates for the TLS tests, made by the ``openssl`` command (never by the code under
test), and HTTPS requests to an operator on loopback.

``server_pair`` is a self-signed server certificate for localhost and the loopback addresses;
``authority`` a CA; ``client_pair`` a client certificate that CA signed (mutual TLS);
``tls_operator`` an operator serving HTTPS with a fresh ``server_pair``.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

OPENSSL_TIMEOUT = 60.0


def openssl(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=OPENSSL_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"
    return done.stdout


def _key(path: Path) -> Path:
    openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(path))
    return path


def _self_signed(folder: Path, name: str, extensions: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{name}.cnf"
    config.write_text("[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = ext\n"
                      f"[dn]\nCN = test {name}\n[ext]\n{extensions}")
    key = _key(folder / f"{name}-key.pem")
    cert = folder / f"{name}.pem"
    openssl("req", "-new", "-x509", "-key", str(key), "-out", str(cert), "-days", "2",
            "-sha256", "-config", str(config))
    return cert, key


def server_pair(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed server certificate for localhost, 127.0.0.1 and ::1, and its key."""
    return _self_signed(folder, name, "subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1\n"
                        "basicConstraints = critical, CA:FALSE\n"
                        "keyUsage = critical, digitalSignature\n"
                        "extendedKeyUsage = serverAuth\n"
                        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n")


def authority(folder: Path, name: str = "ca") -> tuple[Path, Path]:
    """A CA certificate and its key."""
    return _self_signed(folder, name, "basicConstraints = critical, CA:TRUE\n"
                        "keyUsage = critical, keyCertSign, cRLSign\n"
                        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n")


def client_pair(folder: Path, ca: tuple[Path, Path], name: str = "client") -> tuple[Path, Path]:
    """A client certificate signed by ``ca``, and its key."""
    key = _key(folder / f"{name}-key.pem")
    request = folder / f"{name}.csr"
    openssl("req", "-new", "-key", str(key), "-out", str(request), "-subj", f"/CN=test {name}")
    extensions = folder / f"{name}.ext"
    extensions.write_text("basicConstraints = critical, CA:FALSE\n"
                          "keyUsage = critical, digitalSignature\n"
                          "extendedKeyUsage = clientAuth\n")
    cert = folder / f"{name}.pem"
    openssl("x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-sha256",
            "-extfile", str(extensions))
    return cert, key


def mutual_pki(folder: Path) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    """A CA and a client certificate it signed (each with its key): mutual TLS's two sides."""
    ca = authority(folder)
    return ca, client_pair(folder, ca)


def tls_operator(factory: Callable[..., Any], folder: Path, *extra: str,
                 env: dict[str, str] | None = None) -> tuple[Any, Path]:
    """An operator (``operator_factory``'s) serving HTTPS with a new ``server_pair`` made in
    ``folder``, ``extra`` arguments added; and that certificate."""
    cert, key = server_pair(folder)
    operator = factory(env=env, args=["--tls-cert", str(cert), "--tls-key", str(key), *extra])
    return operator, cert


def der(cert: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def fingerprint(cert: Path) -> str:
    """``sha256:HEX`` of the certificate, as ``openssl x509 -fingerprint`` computes it."""
    out = openssl("x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256")
    return "sha256:" + out.strip().split("=", 1)[1].replace(":", "").lower()


def spki_sha256_base64(cert: Path) -> str:
    """The base64 SHA-256 of the certificate's public key (Chromium's SPKI list)."""
    pem = openssl("x509", "-in", str(cert), "-noout", "-pubkey")
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    return base64.b64encode(hashlib.sha256(base64.b64decode(body)).digest()).decode()


def trusting(cert: Path, client: tuple[Path, Path] | None = None,
             strict: bool = True) -> ssl.SSLContext:
    """A client context that trusts ``cert`` (strict X.509 checks, as Python 3.13's default),
    presenting ``client`` when given."""
    context = ssl.create_default_context(cafile=str(cert))
    if strict:
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    return context


def https_request(port: int, path: str, context: ssl.SSLContext, host: str = "127.0.0.1",
                  headers: dict[str, str] | None = None,
                  timeout: float = 30) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()
