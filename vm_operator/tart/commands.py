"""The Tart commands the operator uses: the only place that builds Tart's argument lists.

One method per command, each an argument list with the VM name as one argument of its own
(never a shell, never text to parse), handed to a ``Transport`` (local or SSH), and each
answer read by a pure parser (``parse``). A command that names a VM takes a ``VmName``: only a
name that passed the name rules can reach an argument list.
"""

from __future__ import annotations

from collections.abc import Sequence

from vm_operator.store.state import LogTail
from vm_operator.tart.exec_stream import ExecStream
from vm_operator.tart.guest_exec import refusal
from vm_operator.tart.identity import local_vm_name
from vm_operator.tart.names import VmName
from vm_operator.tart.parse import (
    parse_image_list,
    parse_ip,
    parse_version,
    parse_vm_info,
    parse_vm_list,
)
from vm_operator.tart.probe import PROBE_TIMEOUT, checked_target
from vm_operator.tart.records import ExecResult, HostDisk, Image, Vm, VmInfo
from vm_operator.tart.transport import (
    OutputSink,
    RunHandle,
    StartedSink,
    Transport,
    ignore_output,
    ignore_started,
)
from vm_operator.tart.tunnel import GuestPipe

DEFAULT_PULL_TIMEOUT = 3600.0  # seconds a clone or a pull may take: tens of GB


class Tart:
    """Tart, wherever its transport runs it. ``pull_timeout`` bounds the long calls (clone,
    pull); every other call has the transport's timeout."""

    def __init__(self, transport: Transport, pull_timeout: float = DEFAULT_PULL_TIMEOUT) -> None:
        self.transport = transport
        self.pull_timeout = pull_timeout

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

    def probe(self, ip: str, port: int) -> bool:
        """Whether the guest at ``ip`` accepts a TCP connection on ``port``, tried from where
        Tart runs (over SSH: on the host), with a short timeout. A value that is not an IP
        address or a port number is refused (ValueError) before anything is tried."""
        address, checked_port = checked_target(ip, port)
        return self.transport.probe(address, checked_port, PROBE_TIMEOUT)

    def exec(self, name: VmName, command: Sequence[str], stdin: bytes | None,
             timeout: float) -> ExecResult:
        """``tart exec [-i] NAME COMMAND…``: the command's exit code and output (each cut at
        ``guest_exec.OUTPUT_CAP``); ``-i`` and its stdin when ``stdin`` is given. Tart's own
        refusals raise (TartNotRunning, TartVmMissing, TartGuestAgentUnreachable); past
        ``timeout`` its process group is killed (GuestTimeout)."""
        flags = ["-i"] if stdin is not None else []
        result = self.transport.exec(["exec", *flags, name, *command], stdin, timeout)
        refused = refusal(name, result)
        if refused is not None:
            raise refused
        return result
    def exec_stream(self, name: VmName, command: Sequence[str], interactive: bool, tty: bool,
                    rows: int, cols: int) -> ExecStream:
        """``tart exec [-i] [-t] NAME COMMAND…`` kept open (``exec_stream.ExecStream``); Tart's
        own refusals come as its stderr and exit code, as the command's would."""
        flags = (["-i"] if interactive else []) + (["-t"] if tty else [])
        return self.transport.exec_stream(["exec", *flags, name, *command], tty, rows, cols)

    def connect(self, ip: str, port: int) -> GuestPipe:
        """A tunnel's TCP connection to the guest at ``ip`` on ``port``, made from where Tart
        runs; GuestRefused when the guest does not accept it."""
        address, checked_port = checked_target(ip, port)
        return self.transport.connect(address, checked_port)

    # --- lifecycle: create, configure, remove ---------------------------------------------

    def clone(self, source: VmName, new: VmName, *, insecure: bool = False,
              on_output: OutputSink = ignore_output,
              on_started: StartedSink = ignore_started) -> None:
        """``tart clone [--insecure] SOURCE NEW``: an uncached OCI image is pulled first, its
        progress in the output. Tart REPLACES an existing NEW: the caller checks first."""
        flags = ["--insecure"] if insecure else []
        self.transport.stream(["clone", *flags, source, new], on_output, on_started,
                              self.pull_timeout)

    def pull(self, ref: VmName, *, insecure: bool = False, on_output: OutputSink = ignore_output,
             on_started: StartedSink = ignore_started) -> None:
        """``tart pull [--insecure] REF``: fill the OCI cache, with progress in the output."""
        flags = ["--insecure"] if insecure else []
        self.transport.stream(["pull", *flags, ref], on_output, on_started, self.pull_timeout)

    def set(self, name: VmName, *, cpu: int | None = None, memory_mb: int | None = None,
            disk_gb: int | None = None, display: str | None = None,
            random_mac: bool = False) -> None:
        """``tart set NAME [--cpu N] [--memory MB] [--disk-size GB] [--display WxH]
        [--random-mac]``: only the flags given. Tart edits the config whether or not the VM
        runs (a running VM gets the change at its next run)."""
        flags: list[str] = []
        if cpu is not None:
            flags += ["--cpu", str(cpu)]
        if memory_mb is not None:
            flags += ["--memory", str(memory_mb)]
        if disk_gb is not None:
            flags += ["--disk-size", str(disk_gb)]
        if display is not None:
            flags += ["--display", display]
        if random_mac:
            flags.append("--random-mac")
        self.transport.call(["set", name, *flags])

    def delete(self, name: VmName) -> None:
        """``tart delete NAME``: a local VM, or a cached OCI image by its reference."""
        self.transport.call(["delete", name])

    def prune(self, *, older_than_days: int | None = None,
              space_budget_gb: int | None = None) -> None:
        """``tart prune --entries caches [--older-than DAYS] [--space-budget GB]``: the OCI
        cache only, never local VMs. Tart wants at least one criterion."""
        flags = ["--entries", "caches"]
        if older_than_days is not None:
            flags += ["--older-than", str(older_than_days)]
        if space_budget_gb is not None:
            flags += ["--space-budget", str(space_budget_gb)]
        self.transport.call(["prune", *flags], self.pull_timeout)

    def list_images(self) -> list[Image]:
        """``tart list --source oci --format json``: the OCI cache."""
        return parse_image_list(self.transport.call(["list", "--source", "oci", "--format",
                                                     "json"]))

    def host_disk(self) -> HostDisk:
        """Total and free bytes of the disk that holds the Tart home."""
        return self.transport.disk_usage()

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        """The end of the output of the VM's current ``tart run``."""
        return self.transport.tail_log(name, lines)

    def last_log_line(self, name: str) -> str:
        """The last line ``tart run`` printed: its message when it failed."""
        return self.transport.last_log_line(name)

    def forget_log(self, name: str) -> None:
        """The run logs of a VM that is gone: removed where the transport keeps them."""
        self.transport.forget_log(name)

    def vm_identity(self, name: VmName) -> str | None:
        """Which VM carries the local name ``name`` now (``identity``: its directory's inode
        and birth time), None when Tart has no local VM of that name. An OCI reference has no
        directory of its own: None."""
        if not local_vm_name(name):
            return None
        return self.transport.vm_identity(name)

    def locate(self) -> tuple[str, bool]:
        """Where Tart is and whether it can be run, without running it."""
        return self.transport.locate()
