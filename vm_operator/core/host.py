"""The host, as a scheduler (or a person) checks it before creating a VM: Tart's version, the
Tart home and the free space of its disk, the macOS guests running against Apple's limit, and
the operations running and waiting."""

from __future__ import annotations

from typing import TypedDict

from vm_operator.core.operations import OperationQueue
from vm_operator.core.parts import Parts


class TartJson(TypedDict):
    path: str
    version: str | None


class DiskJson(TypedDict):
    total_bytes: int
    free_bytes: int


class GuestsJson(TypedDict):
    running: int
    limit: int | None  # None: no cap (VM_OPERATOR_MAX_RUNNING=0)


class OperationsJson(TypedDict):
    running: int
    queued: int
    max_queued: int


class HostJson(TypedDict):
    tart: TartJson
    tart_home: str
    disk: DiskJson
    macos_guests: GuestsJson
    operations: OperationsJson


class Host:
    """What ``GET /host`` answers."""

    def __init__(self, parts: Parts, queue: OperationQueue, max_running: int) -> None:
        self.tart = parts.tart
        self.inventory = parts.inventory
        self.queue = queue
        self.max_running = max_running

    def describe(self) -> HostJson:
        status = self.inventory.tart_status()
        version = status["version"]
        if version is None:  # not probed yet: this is no health probe, it may ask Tart
            version = self.tart.version()
        disk = self.tart.host_disk()
        stats = self.queue.stats()
        return {
            "tart": {"path": status["path"], "version": version},
            "tart_home": disk.path,
            "disk": {"total_bytes": disk.total_bytes, "free_bytes": disk.free_bytes},
            "macos_guests": {"running": self.macos_running(),
                             "limit": self.max_running if self.max_running > 0 else None},
            "operations": {"running": stats.running, "queued": stats.queued,
                           "max_queued": stats.max_queued},
        }

    def macos_running(self) -> int:
        """Local macOS guests Tart lists running (Linux guests do not count against the limit)."""
        return sum(1 for vm in self.inventory.list_vms(fresh=True)
                   if vm["state"] == "running" and vm["source"] == "local"
                   and self.inventory.is_macos(vm["name"]))
