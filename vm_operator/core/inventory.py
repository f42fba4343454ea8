"""What Tart knows about the VMs, read through the cache: list, find, describe, IP address,
and Tart's own health (path, availability, version) without ever blocking on it.

Reads are cached, never stale: a read uses a ``tart list`` that started after every change
made through the API (``changed``), and within ``cache_ttl`` of now for changes made outside
it. With ``cache_ttl`` 0 every read calls Tart (the naive design, kept for the benchmark's
comparison).

A VM's configuration (``tart get``: OS, CPU, memory, disk format, display) changes only
through ``tart set`` or a re-create, so it is kept far longer: until the operator changes
that VM (``reconfigured``: a PATCH, a create, a delete), until a listing no longer shows the
VM, and at most ``config_ttl`` (for a ``tart set`` typed by hand). A start, a stop or a
change to another VM leaves it alone. The state always comes from the listing.

Which VM carries a name (``identity``: its directory's, tart/identity.py) is read as fresh as
the state: within ``cache_ttl``, after every change made through the API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from vm_operator.core.cache import Derived, FreshCache, cache_for, refresh_age
from vm_operator.core.clock import Clock
from vm_operator.core.errors import (
    NotReady,
    not_running,
    oci_image,
    state_dir_unwritable,
    vm_not_found,
)
from vm_operator.core.ip_waits import IpWaiters
from vm_operator.core.ports import StorePort, TartPort
from vm_operator.core.records import NO_INFO, TartStatus, VmDetail, detail
from vm_operator.store.state import StateDirError
from vm_operator.tart.errors import TartError
from vm_operator.tart.names import InvalidName, VmName
from vm_operator.tart.records import Vm, VmInfo

T = TypeVar("T")


class Inventory:
    """Cached reads of Tart's VMs."""

    def __init__(self, tart: TartPort, store: StorePort, clock: Clock, cache_ttl: float,
                 config_ttl: float) -> None:
        self.tart = tart
        self.store = store
        self.clock = clock
        self.cache_ttl = cache_ttl
        self.config_ttl = config_ttl
        self._changed_at = float("-inf")
        self._guard = threading.Lock()
        self._list = FreshCache(self._fetch_list, clock.monotonic)
        self._info: dict[str, FreshCache[VmInfo]] = {}
        self._identity: dict[str, FreshCache[str | None]] = {}
        self._details: Derived[VmDetail] = Derived()  # describe's, by VM
        self._version: str | None = None
        self._version_refresh = threading.Lock()
        self.ip_waiters = IpWaiters(tart.ip, clock.monotonic)
        # told of every listing fetched, with when its tart list began, before any reader
        # gets it: the watcher (the states a read answers with are the states the stream told)
        self.on_fetched: Callable[[float, list[Vm]], None] = lambda started, vms: None

    def _window(self, cache: FreshCache[T], fresh: bool) -> tuple[float, float | None]:
        """What a read of ``cache`` may take: the oldest fetch start it may use (after every
        change made through the API, and within ``cache_ttl`` of now for changes made outside
        it), and the start before which an answer still served is refreshed ahead (when about
        twice its fetch's time is left: ``refresh_age``; None: ``fresh``, asked now)."""
        now = self.clock.monotonic()
        if fresh:
            return now, None
        return (max(self._changed_at, now - self.cache_ttl),
                now - refresh_age(self.cache_ttl, cache.fetch_seconds))

    def changed(self) -> None:
        """A change was made through the API: no later read may answer from before it."""
        self._changed_at = self.clock.monotonic()

    def reconfigured(self, name: str) -> None:
        """The operator changed, created or deleted VM ``name`` (``tart set``, clone, delete):
        no later read may answer from before it, its configuration included."""
        self.changed()
        self.forget(name)

    def _fetch_list(self) -> list[Vm]:
        """``tart list``; a VM it no longer shows (deleted or renamed outside the operator)
        loses its cached configuration: one created again under its name is another VM.
        ``on_fetched`` is told of it before any reader gets it."""
        started = self.clock.monotonic()
        vms = self.tart.list_vms()
        names = {vm["name"] for vm in vms}
        with self._guard:
            for gone in [name for name in self._info if name not in names]:
                del self._info[gone]
            for gone in [name for name in self._identity if name not in names]:
                del self._identity[gone]
        self.on_fetched(started, vms)
        return vms

    def list_vms(self, fresh: bool = False) -> list[Vm]:
        if self.cache_ttl <= 0:
            return self._fetch_list()
        return self._list.get(*self._window(self._list, fresh))

    def list_stamped(self, max_age: float) -> tuple[float, list[Vm]]:
        """A listing whose ``tart list`` started at most ``max_age`` seconds ago (and after
        every change made through the API), with the (monotonic) time it started: shared
        with the requests' reads, so one ``tart list`` serves them and every watcher."""
        if self.cache_ttl <= 0:
            started = self.clock.monotonic()
            return started, self._fetch_list()
        return self._list.get_stamped(max(self._changed_at, self.clock.monotonic() - max_age))

    def ready(self) -> int:
        """How many VMs Tart lists; NotReady when it cannot list them."""
        try:
            return len(self.list_vms())
        except TartError as exc:
            raise NotReady(f"tart list fails: {exc.detail}") from None

    def cached_vms(self) -> list[Vm] | None:
        """The last listing, however old, without calling Tart: for metrics."""
        return self._list.peek()

    def find(self, name: str, fresh: bool = False) -> Vm:
        for vm in self.list_vms(fresh):
            if vm["name"] == name:
                return vm
        raise vm_not_found(name)

    def local_vm(self, name: str, action: str, fresh: bool = False) -> Vm:
        """The VM, or the same refusal for an OCI image on every action that needs a local VM."""
        vm = self.find(name, fresh)
        if vm["source"] != "local":
            raise oci_image(name, action)
        return vm

    def info(self, name: VmName) -> VmInfo:
        """``tart get``'s fields of a local VM: cached until the operator changes the VM, a
        listing no longer shows it, or ``config_ttl`` has passed (then refreshed ahead)."""
        if self.cache_ttl <= 0 or self.config_ttl <= 0:
            return self.tart.get(name)
        cache = self._cache_of(self._info, name, self.tart.get)
        now = self.clock.monotonic()
        return cache.get(now - self.config_ttl, now - self.config_ttl / 2)

    def _cache_of(self, caches: dict[str, FreshCache[T]], name: VmName,
                  fetch: Callable[[VmName], T]) -> FreshCache[T]:
        """``name``'s cache in ``caches``: found without the lock (the common read), made under
        it the first time, over ``fetch(name)``."""
        cache = caches.get(name)
        if cache is None:
            with self._guard:
                cache = cache_for(caches, name, lambda: fetch(name), self.clock.monotonic)
        return cache

    def forget(self, name: str) -> None:
        """The VM was deleted or reconfigured: drop its cached ``tart get`` and identity."""
        with self._guard:
            self._info.pop(name, None)
            self._identity.pop(name, None)

    def identity(self, name: VmName, fresh: bool = False) -> str | None:
        """Which VM carries the name (``Tart.vm_identity``), None when no local VM does: as
        fresh as a listing (``fresh``: asked now)."""
        if fresh or self.cache_ttl <= 0:
            return self.tart.vm_identity(name)
        cache = self._cache_of(self._identity, name, self.tart.vm_identity)
        return cache.get(*self._window(cache, False))

    def is_macos(self, name: str) -> bool:
        """Whether ``tart get`` says the VM is a macOS guest. A name from Tart's own list
        that the name rules refuse is never passed to Tart: it counts as not macOS."""
        try:
            checked = VmName(name)
        except InvalidName:
            return False
        return self.info(checked)["os"] == "darwin"

    def describe(self, name: VmName) -> VmDetail:
        """The list fields, ``tart get``'s fields (local VMs only) and the last run."""
        vm = self.find(name)
        info = self.info(name) if vm["source"] == "local" else NO_INFO
        try:
            last_run = self.store.read_last_run(name)
        except StateDirError as exc:
            raise state_dir_unwritable(exc) from None
        return self._details.get(name, detail, vm, info, last_run)

    def ip(self, name: VmName, wait: int) -> str:
        """``tart ip --wait W``, only for a running VM: Tart would wait the whole W seconds
        for a stopped one. With a wait the state is checked fresh, as that wait is long.
        Concurrent askers for one VM share one ``tart ip``, and few run at once
        (``ip_waits``)."""
        vm = self.local_vm(name, "ask for the IP address of", fresh=wait > 0)
        if vm["state"] != "running":
            raise not_running(name, f"it is {vm['state']} and has no IP address; start it first")
        return self.ip_waiters.ip(name, wait)

    # --- Tart's own health ------------------------------------------------------------------

    def tart_status(self) -> TartStatus:
        """Path, availability and version of Tart without ever blocking on it.

        Health probes must answer even when Tart hangs, so the version is fetched by a
        background thread and this only reads what it found.
        """
        path, available = self.tart.locate()
        if available and self._version is None:
            self._refresh_version()
        return {"path": path, "available": available, "version": self._version}

    def _refresh_version(self) -> None:
        if not self._version_refresh.acquire(blocking=False):
            return

        def refresh() -> None:
            try:
                self._version = self.tart.version()
            except TartError:
                pass
            finally:
                self._version_refresh.release()

        threading.Thread(target=refresh, name="tart-version", daemon=True).start()
