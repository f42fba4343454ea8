"""The simulated guest: its boot, its listening port (its "sshd", on the address
``storage.ip_of`` gives it), and its end (shut down, suspended, or ended by itself)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

from .errors import TartError, not_suspendable
from .files import atomic_write, say
from .knobs import current
from .services import Services, parse_services
from .storage import GUEST_EXIT_FILE, RUNTIME_FILE, STATE_FILE, ip_of, touch_accessed

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every call
if TYPE_CHECKING:
    from .files import Json


def guest_port() -> int:
    """TART_SIM_GUEST_PORT: where the guest accepts connections (default 22, like sshd)."""
    text = current().guest_port
    try:
        port = int(text) if text else 22
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise TartError(f"TART_SIM_GUEST_PORT must be a port number (1-65535), not {text!r}", 1)
    return port


class GuestPort:
    """The booted guest's listening port (its "sshd"): accepts, greets, hangs up."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock: socket.socket | None = None
        self.services: Services | None = None

    def open(self) -> None:
        address, port = ip_of(self.name), guest_port()
        services = parse_services(current().guest_services)
        if services:
            self.services = Services(self.name, address, services)
            self.services.open()
        if port in services:
            return  # that service answers there instead of the banner
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(16)
            sock.setblocking(False)
        except OSError as e:
            sock.close()
            say(f"[tart-sim] VM {self.name}: the guest cannot listen on {address}:{port}: "
                f"{e.strerror or e}", err=True)
            return
        self.sock = sock
        say(f"[tart-sim] VM {self.name} accepts connections on {address}:{port}")

    def serve(self) -> None:
        """Answer every pending connection: the banner, then close."""
        while self.sock is not None:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # nothing pending (EAGAIN), or a connection already gone
                return
            with conn, contextlib.suppress(OSError):
                conn.setblocking(False)
                conn.send(b"SSH-2.0-tart-sim\r\n")

    def close(self) -> None:
        if self.services is not None:
            self.services.close()
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def run_vm(name: str, d: Path, cfg: Json, suspendable: bool, resume: bool,
           pending: list[int]) -> int:
    """The simulated VM's life: boot lines, then wait for signals."""
    touch_accessed(d)
    started = time.time()
    booted_at = started + current().boot_delay
    atomic_write(d / RUNTIME_FILE, json.dumps({"pid": os.getpid(), "suspendable": suspendable,
                                               "startedAt": started, "bootedAt": booted_at}))
    if resume:
        say("restoring VM state from a snapshot...")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(d / STATE_FILE)
        say("resuming VM...")
    say(f"[tart-sim] starting VM {name} ({cfg.get('os', 'darwin')}, {cfg.get('cpuCount')} CPUs, "
        f"{int(cfg.get('memorySize', 0)) >> 20} MB)")
    listens_at = booted_at + max(0.0, current().ssh_delay)
    parse_services(current().guest_services)  # a malformed knob fails the run at once
    guest = GuestPort(name)
    try:
        return guest_life(name, d, suspendable, pending, booted_at, listens_at, guest)
    finally:
        guest.close()


def guest_life(name: str, d: Path, suspendable: bool, pending: list[int], booted_at: float,
               listens_at: float, guest: GuestPort) -> int:
    """Boot (an IP address), listen (the guest's port), then wait for signals."""
    booted = listening = False
    while True:
        if not booted and time.time() >= booted_at:
            say(f"[tart-sim] VM {name} booted, IP address {ip_of(name)}")
            booted = True
        if booted and not listening and time.time() >= listens_at:
            guest.open()
            listening = True
        guest.serve()
        while pending:
            if pending.pop(0) != signal.SIGUSR1:
                say(f"[tart-sim] VM {name} shut down")
                return 0
            if not suspendable:
                say(not_suspendable(name), err=True)
                continue
            say("pausing VM to take a snapshot...")
            atomic_write(d / STATE_FILE, json.dumps({"suspendedAt": time.time()}))
            say("snapshot created successfully! shutting down the VM...")
            return 0
        code = guest_exit(d)
        if code is not None:
            say(f"[tart-sim] VM {name} shut down by its guest" if code == 0 else
                f"[tart-sim] VM {name} stopped with an error (exit {code})", err=code != 0)
            return code
        time.sleep(0.05)


def guest_exit(d: Path) -> int | None:
    """The exit code the test asked this VM's guest to end with (consuming the request)."""
    path = d / GUEST_EXIT_FILE
    try:
        text = path.read_text()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if not text.strip():
        return None  # being written
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        return int(text.strip()) & 0xFF
    except ValueError:
        return 1
