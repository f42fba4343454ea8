"""Tunnels (``GET /vms/{name}/port-forward``): what carrying a guest's TCP port through the
operator costs against connecting to the guest directly.

- Throughput: ``size`` bytes sent through an echo port of the guest in 64 KiB pieces while what
  comes back is read: MiB per second of the round trip (each byte goes there and back).
- Added latency: the median of ``pings`` one-byte round trips through the tunnel minus the same
  over a direct connection to the guest's address.

Locally the operator connects to the guest; over SSH (a throw-away sshd on 127.0.0.1 as the
Mac, ``tests/sshd_env.py``) the Mac does, through ``ssh -W`` on the shared connection. The
WebSocket client is the operator's own (``vm_operator.client.websocket``, stdlib).
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmark.common import HOST, repo_module, request, sshd_fixture
from benchmark.records import TunnelFigures

VM = "ubuntu-runner"
PIECE = 64 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class _Direct:
    """A plain TCP connection with the tunnel's send/recv shape."""

    def __init__(self, ip: str, port: int) -> None:
        self.sock = socket.create_connection((ip, port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> bytes | None:
        return self.sock.recv(PIECE) or None

    def close(self) -> None:
        self.sock.close()


def _round_trip(conn: Any, size: int) -> float:
    """Seconds to send ``size`` bytes and read them all back."""
    chunk = b"\x5a" * PIECE
    started = time.perf_counter()

    def send() -> None:
        left = size
        while left > 0:
            conn.send(chunk[:min(left, PIECE)])
            left -= PIECE

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    got = 0
    while got < size:
        data = conn.recv()
        if data is None:
            raise RuntimeError("the connection ended before the echo came back")
        got += len(data)
    sender.join()
    return time.perf_counter() - started


def _pings(conn: Any, count: int) -> float:
    """The median one-byte round trip, in ms."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        conn.send(b"p")
        if conn.recv() is None:
            raise RuntimeError("the connection ended")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(port: int, echo_port: int, size: int, pings: int) -> TunnelFigures:
    """Tunnel against direct, to the echo port of a running VM of the operator on ``port``."""
    status, answer = request(port, "GET", f"/vms/{VM}/ip")
    if status != 200:
        raise RuntimeError(f"GET /vms/{VM}/ip answered {status}: {answer!r}")
    ip = answer["ip"]
    ws_module = repo_module("vm_operator.client.websocket")

    def tunnel() -> Any:
        opened = ws_module.connect(
            f"http://{HOST}:{port}/vms/{VM}/port-forward?port={echo_port}", {}, 30)
        if not hasattr(opened, "send"):
            raise RuntimeError(f"the tunnel was refused: {opened.status} {opened.body[:200]!r}")
        return opened

    figures: dict[str, float] = {}
    for label, make in (("direct", lambda: _Direct(ip, echo_port)), ("tunnel", tunnel)):
        conn = make()
        try:
            _round_trip(conn, PIECE)  # warm-up
            seconds = _round_trip(conn, size)
            figures[f"{label}_mib_s"] = round(size / seconds / (1 << 20), 1)
            figures[f"{label}_rtt_ms"] = round(_pings(conn, pings), 3)
        finally:
            conn.close()
    return {
        "bytes": size, "pings": pings,
        "direct_mib_s": figures["direct_mib_s"], "tunnel_mib_s": figures["tunnel_mib_s"],
        "direct_rtt_ms": figures["direct_rtt_ms"], "tunnel_rtt_ms": figures["tunnel_rtt_ms"],
        "added_ms": round(figures["tunnel_rtt_ms"] - figures["direct_rtt_ms"], 3),
    }


def start_vm(port: int) -> None:
    status, answer = request(port, "POST", f"/vms/{VM}/start?wait=ready&timeout=120",
                             timeout=180)
    if status != 200:
        raise RuntimeError(f"starting {VM} answered {status}: {answer!r}")


def over_ssh(start_operator: Callable[[dict[str, str]], int], size: int,
             pings: int) -> TunnelFigures | dict[str, str]:
    """The same against an operator whose Tart is on a throw-away sshd on 127.0.0.1."""
    sshd_env = sshd_fixture()
    if isinstance(sshd_env, str):
        return {"skipped": sshd_env}
    server = sshd_env.create()
    try:
        port = start_operator({**server.settings_env(),
                               "VM_OPERATOR_READY_PORT": str(server.guest_port)})
        start_vm(port)
        try:
            return measure(port, server.guest_echo_port, size, pings)
        finally:
            request(port, "POST", f"/vms/{VM}/stop?timeout=2")
    finally:
        server.cleanup()
