"""The core's tunnels (core/tunnels.py), over fakes: the cap, the end of a VM's tunnels when the
bus tells it stopped, suspended or deleted, and ``vm.connect`` when one ends."""

from __future__ import annotations

import pytest

from vm_operator.core.errors import TunnelsFull
from vm_operator.core.event_catalogue import VM_CONNECT, VM_DELETED, VM_READY, VM_STATE, NewEvent
from vm_operator.core.events import EventBus
from vm_operator.core.tunnels import Tunnels
from vm_operator.tart.errors import GuestRefused
from vm_operator.tart.names import VmName


class Pipe:
    def __init__(self) -> None:
        self.closed = False

    def recv(self, size: int) -> bytes:
        return b""

    def sendall(self, data: bytes) -> None:
        pass

    def shutdown_write(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def registry(limit: int = 3, refuse: bool = False) -> tuple[Tunnels, EventBus, Clock, list[tuple[str, int]]]:
    bus = EventBus(lambda: "2026-12-07T10:00:00Z", first_id=1)
    clock = Clock()
    asked: list[tuple[str, int]] = []

    def connect(ip: str, port: int) -> Pipe:
        asked.append((ip, port))
        if refuse:
            raise GuestRefused("no")
        return Pipe()

    return Tunnels(lambda name: f"192.168.64.{len(name)}", connect, bus, clock, limit), bus, clock, asked


def test_a_tunnel_connects_to_the_address_tart_reports() -> None:
    tunnels, _, _, asked = registry()
    tunnels.open(VmName("ci"), 22)
    assert asked == [("192.168.64.2", 22)] and tunnels.count() == 1


def test_past_the_cap_a_tunnel_is_refused_until_one_ends() -> None:
    tunnels, _, _, _ = registry(limit=2)
    first = tunnels.open(VmName("a"), 1)
    tunnels.open(VmName("a"), 2)
    with pytest.raises(TunnelsFull) as refused:
        tunnels.open(VmName("a"), 3)
    assert refused.value.retry_after > 0
    first.finish("127.0.0.1", 0, 0)
    tunnels.open(VmName("a"), 3)


def test_a_refused_connection_holds_no_place() -> None:
    tunnels, _, _, _ = registry(limit=1, refuse=True)
    for _ in range(3):
        with pytest.raises(GuestRefused):
            tunnels.open(VmName("a"), 22)
    assert tunnels.count() == 0


@pytest.mark.parametrize(("event", "ends"), [
    (VM_STATE.about("a", {"from": "running", "to": "stopped", "cause": "api",
                          "exit_code": None}), True),
    (VM_STATE.about("a", {"from": "running", "to": "suspended", "cause": "api",
                          "exit_code": None}), True),
    (VM_DELETED.about("a", {"cause": "api"}), True),
    (VM_STATE.about("a", {"from": "stopped", "to": "running", "cause": "api",
                          "exit_code": None}), False),
    (VM_READY.about("a", {"ip": "127.0.0.1", "port": 22}), False),
])
def test_a_vms_tunnels_end_when_the_bus_tells_it_stopped(event: NewEvent, ends: bool) -> None:
    tunnels, bus, _, _ = registry()
    mine, other = tunnels.open(VmName("a"), 22), tunnels.open(VmName("b"), 22)
    bus.publish(event)
    assert (mine.pipe.closed, other.pipe.closed) == (ends, False)  # type: ignore[attr-defined]


def test_the_end_of_a_tunnel_is_told_once_as_vm_connect() -> None:
    tunnels, bus, clock, _ = registry()
    tunnel = tunnels.open(VmName("a"), 2222)
    clock.now += 2.5
    tunnel.finish("10.0.0.7", 100, 2000)
    tunnel.finish("10.0.0.7", 100, 2000)
    told = [e for e in bus.history("a") if e.type == VM_CONNECT.type]
    assert [dict(e.data) for e in told] == [{"port": 2222, "client": "10.0.0.7", "duration_s": 2.5,
                                             "bytes_to_guest": 100, "bytes_from_guest": 2000}]
    assert tunnels.count() == 0

