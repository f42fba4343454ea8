"""Container health probe: ``python3 -m vm_operator.platform.healthcheck``.

Why this exists: the container image carries no curl or wget, so Docker's
HEALTHCHECK needs a probe written with the standard library only. It asks the
operator's own ``/health`` endpoint on loopback (inside the container) and
turns the answer into the exit code Docker expects: 0 healthy, 1 unhealthy.
A "degraded" operator (Tart missing) still answers 200 and so counts as
healthy: the HTTP service itself is up and able to explain what is missing.

With TLS on (``VM_OPERATOR_TLS_CERT`` set, as the server reads it) it speaks HTTPS to
itself on loopback without checking the certificate (it is its own: nothing in between
to be fooled by); when the operator asks for client certificates (mutual TLS), it
presents ``VM_OPERATOR_CLIENT_CERT`` / ``VM_OPERATOR_CLIENT_KEY``, as the client does.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys
from collections.abc import Mapping

DEFAULT_PORT = 8082
TIMEOUT_SECONDS = 2.0


def probe_port() -> int:
    """Port to probe: ``VM_OPERATOR_PORT`` as the server reads it, else 8082."""
    raw = os.environ.get("VM_OPERATOR_PORT", "").strip()
    try:
        return int(raw) if raw else DEFAULT_PORT
    except ValueError:
        return DEFAULT_PORT


def _set(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def tls_context(env: Mapping[str, str]) -> ssl.SSLContext | None:
    """The context of a probe to the operator itself: None without TLS."""
    if _set(env, "VM_OPERATOR_TLS_CERT") is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # loopback, to itself
    context.verify_mode = ssl.CERT_NONE
    cert = _set(env, "VM_OPERATOR_CLIENT_CERT")
    if cert is not None and _set(env, "VM_OPERATOR_TLS_CLIENT_CA") is not None:
        context.load_cert_chain(cert, _set(env, "VM_OPERATOR_CLIENT_KEY"))
    return context


def check(
    host: str = "127.0.0.1", port: int | None = None, timeout: float = TIMEOUT_SECONDS,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Return True when ``GET /health`` answers 200 within ``timeout`` seconds."""
    conn: http.client.HTTPConnection
    try:
        context = tls_context(os.environ if env is None else env)
    except (OSError, ssl.SSLError):  # a client certificate that cannot be read
        return False
    if context is None:
        conn = http.client.HTTPConnection(host, port or probe_port(), timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(host, port or probe_port(), timeout=timeout,
                                           context=context)
    try:
        conn.request("GET", "/health", headers={"User-Agent": "vm-operator-healthcheck"})
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def main() -> int:
    """Exit status for Docker: 0 when healthy, 1 otherwise."""
    return 0 if check() else 1


if __name__ == "__main__":
    sys.exit(main())
