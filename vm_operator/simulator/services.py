"""A simulated guest's services (``TART_SIM_GUEST_SERVICES``): real TCP listeners on the
guest's own (loopback) address, so a tunnel reaches something real.

``PORT=echo`` sends back every byte it gets; ``PORT=N`` relays each connection to
``127.0.0.1:N`` (a test's own ``sshd`` answers as the guest's port 22). They listen from when
the guest accepts connections until the VM ends, and its end closes every connection they
carry, as a guest that shuts down does; a connection that ends before is let go of at once
(its sockets closed), so a long-running guest holds no descriptor of one that is over.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from .errors import TartError
from .files import say


def parse_services(text: str) -> dict[int, int | None]:
    """``PORT=echo,PORT=N`` as {port: None (echo) or N (relay)}; a TartError when malformed."""
    found: dict[int, int | None] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        port_text, _, what = item.partition("=")
        try:
            port = int(port_text)
            target = None if what.strip() == "echo" else int(what)
        except ValueError:
            raise TartError("TART_SIM_GUEST_SERVICES takes PORT=echo or PORT=N, comma-separated, "
                            f"not {item!r}", 1) from None
        if not all(1 <= p <= 65535 for p in (port, target or 1)):
            raise TartError(f"TART_SIM_GUEST_SERVICES: not a port number in {item!r}", 1)
        found[port] = target
    return found


class Services:
    def __init__(self, name: str, address: str, services: dict[int, int | None]) -> None:
        self.name, self.address, self.services = name, address, services
        self._lock = threading.Lock()
        self._listeners: list[socket.socket] = []
        self._conns: list[socket.socket] = []
        self._closed = False

    def open(self) -> None:
        for port, target in self.services.items():
            sock = socket.socket(socket.AF_INET6 if ":" in self.address else socket.AF_INET)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.address, port))
                sock.listen(64)
            except OSError as e:
                sock.close()
                say(f"[tart-sim] VM {self.name}: the guest cannot listen on {self.address}:{port}: "
                    f"{e.strerror or e}", err=True)
                continue
            sock.settimeout(0.2)
            self._listeners.append(sock)
            what = "echo" if target is None else f"relay to 127.0.0.1:{target}"
            say(f"[tart-sim] VM {self.name} serves {self.address}:{port} ({what})")
            threading.Thread(target=self._accept, args=(sock, target), daemon=True).start()

    def _keep(self, conn: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._conns.append(conn)
            return True

    def _accept(self, sock: socket.socket, target: int | None) -> None:
        while not self._closed:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            if not self._keep(conn):
                conn.close()
                return
            if target is None:
                threading.Thread(target=self._carry, args=(conn, conn), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", target), timeout=5)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            if not self._keep(upstream):
                upstream.close()
                return
            threading.Thread(target=self._carry, args=(conn, upstream), daemon=True).start()

    def _carry(self, conn: socket.socket, other: socket.socket) -> None:
        """Carry a connection (echoed when ``other`` is ``conn``, else relayed both ways) until
        both directions ended, then let go of its sockets."""
        back = None
        if other is not conn:
            back = threading.Thread(target=_pump, args=(other, conn), daemon=True)
            back.start()
        _pump(conn, other)
        if back is not None:
            back.join()
        self._forget(conn, other)

    def _forget(self, *socks: socket.socket) -> None:
        """Close the sockets of a connection that ended (unless the guest's end closed them)."""
        with self._lock:
            mine = [sock for sock in set(socks) if sock in self._conns]
            self._conns = [sock for sock in self._conns if sock not in mine]
        for sock in mine:
            sock.close()

    def close(self) -> None:
        """The guest ends: no more listening, every connection cut."""
        with self._lock:
            self._closed = True
            ending = self._listeners + self._conns
            self._listeners, self._conns = [], []
        for sock in ending:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until its end, then end ``sink``'s writing side."""
    with contextlib.suppress(OSError):
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
