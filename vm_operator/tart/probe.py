"""Whether a guest accepts a TCP connection: the readiness probe, made here.

One connect with a short timeout, then the connection is closed: nothing is sent. The address
is checked to be an IP address and the port a port number before anything uses them, on this
machine (``connects``) and before they reach the SSH transport's remote probe script.
"""

from __future__ import annotations

import ipaddress
import socket

PROBE_TIMEOUT = 1.0  # seconds one connect may take: a booted guest answers at once


def checked_target(ip: str, port: int) -> tuple[str, int]:
    """``ip`` as an IP address and ``port`` as a port number, or a ValueError."""
    address = str(ipaddress.ip_address(ip.strip()))
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"not a port number: {port!r}")
    return address, port


def connects(ip: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to ip:port succeeds within ``timeout`` seconds."""
    address, port = checked_target(ip, port)
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False
