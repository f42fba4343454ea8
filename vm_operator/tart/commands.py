"""The Tart commands the operator uses: the only place that builds Tart's argument lists.

One method per command, each an argument list with the VM name as one argument of its own
(never a shell, never text to parse), handed to a ``Transport`` (local or SSH), and each
answer read by a pure parser (``parse``). A command that names a VM takes a ``VmName``: only a
name that passed the name rules can reach an argument list.
"""

from __future__ import annotations

from vm_operator.store.state import LogTail
from vm_operator.tart.names import VmName
from vm_operator.tart.parse import parse_ip, parse_version, parse_vm_info, parse_vm_list
from vm_operator.tart.records import Vm, VmInfo
from vm_operator.tart.transport import RunHandle, Transport


class Tart:
    """Tart, wherever its transport runs it."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    @property
    def timeout(self) -> float:
        return self.transport.timeout

    def list_vms(self) -> list[Vm]:
        """``tart list --format json``"""
        return parse_vm_list(self.transport.call(["list", "--format", "json"]))

    def get(self, name: VmName) -> VmInfo:
        """``tart get NAME --format json``: the detail fields of a local VM."""
        return parse_vm_info(self.transport.call(["get", name, "--format", "json"]))

    def version(self) -> str:
        """``tart --version``"""
        return parse_version(self.transport.call(["--version"]))

    def run(self, name: VmName, suspendable: bool) -> RunHandle:
        """``tart run --no-graphics [--suspendable] NAME``, detached: it blocks for the VM's
        whole life, so the handle is what tells when (and how) it ended."""
        flags = ["--suspendable"] if suspendable else []
        return self.transport.launch(name, ["run", "--no-graphics", *flags, name])

    def adopt(self, name: str, pid: int) -> RunHandle:
        """The ``tart run`` an earlier operator process launched for ``name``."""
        return self.transport.adopt(name, pid)

    def stop(self, name: VmName, timeout: int) -> None:
        """``tart stop --timeout T NAME``: Tart waits T seconds before it kills the VM."""
        self.transport.call(["stop", "--timeout", str(timeout), name],
                            timeout + self.transport.timeout)

    def suspend(self, name: VmName) -> None:
        """``tart suspend NAME``"""
        self.transport.call(["suspend", name])

    def ip(self, name: VmName, wait: int) -> str:
        """``tart ip --wait W NAME``: Tart waits up to W seconds for an address."""
        return parse_ip(self.transport.call(["ip", "--wait", str(wait), name],
                                            wait + self.transport.timeout))

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        """The end of the output of the VM's current ``tart run``."""
        return self.transport.tail_log(name, lines)

    def last_log_line(self, name: str) -> str:
        """The last line ``tart run`` printed: its message when it failed."""
        return self.transport.last_log_line(name)

    def locate(self) -> tuple[str, bool]:
        """Where Tart is and whether it can be run, without running it."""
        return self.transport.locate()
