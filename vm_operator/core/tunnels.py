"""Tunnels to guests' ports (``GET /vms/{name}/port-forward``): which are open, how many may
be, and when they end.

A tunnel is opened to the VM's own address as Tart reports it (``tart ip``), never to a host a
client names, and only while the VM runs; the connection is the transport's (``Tart.connect``:
made where Tart runs), never this module's. Past ``limit`` open tunnels a new one is refused
at once. Every tunnel of a VM ends when the bus tells that the VM stopped, suspended or was
deleted (at the operator's shutdown the edge's draining ends them); when one ends, whoever
carried it calls ``finish`` and ``vm.connect`` tells the port, the client, how long it was
open and the bytes each way (an audit trail: never what they carried).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from vm_operator.core.errors import TunnelsFull
from vm_operator.core.event_catalogue import VM_CONNECT, VM_DELETED, VM_STATE
from vm_operator.core.events import Event, EventBus
from vm_operator.tart.names import VmName
from vm_operator.tart.tunnel import GuestPipe

MAX_TUNNELS = 64  # open at once, for all VMs together
TUNNEL_RETRY_AFTER = 5  # seconds a refused client is told to wait


@dataclass(eq=False)
class Tunnel:
    """One open tunnel: the guest's end (``GuestPipe``'s methods), and ``finish``."""

    name: str
    port: int
    pipe: GuestPipe
    opened: float
    owner: Tunnels
    on_end: Callable[[int, int], None] = lambda to_guest, from_guest: None  # once it ended
    _closed: bool = field(default=False, init=False)

    def recv(self, size: int) -> bytes:
        return self.pipe.recv(size)

    def sendall(self, data: bytes) -> None:
        self.pipe.sendall(data)

    def shutdown_write(self) -> None:
        self.pipe.shutdown_write()

    def close(self) -> None:
        """End the guest's side (from any thread): a ``recv`` under way returns b""."""
        self._closed = True
        self.pipe.close()

    def finish(self, client: str, to_guest: int, from_guest: int) -> None:
        """The tunnel is over: forget it, tell ``vm.connect``, then ``on_end`` (the bytes to
        the guest and from it)."""
        self.close()
        if self.owner.finished(self, client, to_guest, from_guest):
            self.on_end(to_guest, from_guest)


class Tunnels:
    def __init__(self, ip: Callable[[VmName], str], connect: Callable[[str, int], GuestPipe],
                 events: EventBus, monotonic: Callable[[], float],
                 limit: int = MAX_TUNNELS) -> None:
        self._ip, self._connect = ip, connect
        self._events, self._monotonic, self.limit = events, monotonic, limit
        self._lock = threading.Lock()
        self._open: set[Tunnel] = set()
        self._pending = 0  # being opened: they hold a place under the limit
        events.on_publish(self._heard)

    def open(self, name: VmName, port: int,
             on_end: Callable[[int, int], None] = lambda to_guest, from_guest: None) -> Tunnel:
        """A tunnel to ``port`` of the running VM ``name``: its address from Tart, then a
        connection from where Tart runs. Raises what ``tart ip`` raises (no such VM, not
        running, an OCI image), GuestRefused, or TunnelsFull."""
        with self._lock:
            if len(self._open) + self._pending >= self.limit:
                raise TunnelsFull(f"{self.limit} tunnels are open, as many as the operator "
                                  "allows; retry once one has ended", TUNNEL_RETRY_AFTER)
            self._pending += 1
        try:
            pipe = self._connect(self._ip(name), port)
            tunnel = Tunnel(name, port, pipe, self._monotonic(), self, on_end)
            with self._lock:
                self._open.add(tunnel)
            return tunnel
        finally:
            with self._lock:
                self._pending -= 1

    def count(self) -> int:
        with self._lock:
            return len(self._open)

    def finished(self, tunnel: Tunnel, client: str, to_guest: int, from_guest: int) -> bool:
        """Forget the tunnel and tell ``vm.connect``; whether it was open (told once)."""
        with self._lock:
            if tunnel not in self._open:
                return False
            self._open.discard(tunnel)
        seconds = round(max(0.0, self._monotonic() - tunnel.opened), 3)
        self._events.publish(VM_CONNECT.about(tunnel.name, {
            "port": tunnel.port, "client": client, "duration_s": seconds,
            "bytes_to_guest": to_guest, "bytes_from_guest": from_guest}))
        return True

    def close_vm(self, name: str) -> None:
        """End every tunnel of ``name`` (its VM stopped, or is gone)."""
        with self._lock:
            ending = [tunnel for tunnel in self._open if tunnel.name == name]
        for tunnel in ending:
            tunnel.close()

    def _heard(self, event: Event) -> None:
        if event.vm is None:
            return
        if event.type == VM_DELETED.type or (
                event.type == VM_STATE.type and event.data.get("to") != "running"):
            self.close_vm(event.vm)
