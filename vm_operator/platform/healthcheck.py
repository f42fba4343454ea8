"""Container health probe: ``python3 -m vm_operator.platform.healthcheck``.

Why this exists: the container image carries no curl or wget, so Docker's
HEALTHCHECK needs a probe written with the standard library only. It asks the
operator's own ``/health`` endpoint on loopback (inside the container) and
turns the answer into the exit code Docker expects: 0 healthy, 1 unhealthy.
A "degraded" operator (Tart missing) still answers 200 and so counts as
healthy: the HTTP service itself is up and able to explain what is missing.
"""

from __future__ import annotations

import http.client
import os
import sys

DEFAULT_PORT = 8082
TIMEOUT_SECONDS = 2.0


def probe_port() -> int:
    """Port to probe: ``VM_OPERATOR_PORT`` as the server reads it, else 8082."""
    raw = os.environ.get("VM_OPERATOR_PORT", "").strip()
    try:
        return int(raw) if raw else DEFAULT_PORT
    except ValueError:
        return DEFAULT_PORT


def check(
    host: str = "127.0.0.1", port: int | None = None, timeout: float = TIMEOUT_SECONDS
) -> bool:
    """Return True when ``GET /health`` answers 200 within ``timeout`` seconds."""
    conn = http.client.HTTPConnection(host, port or probe_port(), timeout=timeout)
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
