"""A spec, its run records and its logs belong to the VM they were made for.

Tart gives a VM no id, and a name outlives its VM: a VM deleted outside the operator and
cloned again under its name (by hand, while the operator runs or while it is down) is another
VM. So a spec records the identity of its VM (``VmSpec.vm_id``: its directory's inode and
birth time, ``tart/identity.py``), taken when the spec is written, and before a spec acts —
the reconciler starts or stops, the declarative file's plan (prune above all), a write
through the API that would merge into it — the identity of the VM that carries the name now
is compared with it (``verdict``):

- ``same``: the spec is that VM's, it acts;
- ``missing``: no VM carries the name (deleted, or renamed away): the spec stays, and acts on
  nothing; it is the VM's again if that VM comes back (renamed back), and
  ``DELETE /vms/{name}`` drops it (``drop``);
- ``other``: another VM took the name: the spec, the run records and the logs are the gone
  VM's. They are dropped (``release``), and the VM that carries the name now is left alone,
  as any VM the operator was never asked to manage;
- ``unbound``: a spec that knows no identity (written before identities existed, or by a
  create whose identity read failed): bound to the VM that carries the name now (the one an
  upgrade finds there) — unless the spec says when the operator made its VM (``created_at``)
  and the directory there now was born after that (by more than ``CLOCK_SLACK``): that VM was
  made again by hand after the operator's, so the verdict is ``other``. A file system without
  birth times (identity ``INODE:0``) cannot tell: bound.

Why not "the operator saw it absent": a VM deleted and cloned again while the operator is
down, or between two of its looks, is never seen absent. The identity check costs one
``stat`` where Tart runs, before an action (fresh); a VM's detail uses one as fresh as the
listing (``Inventory.identity``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Literal

from vm_operator.core.inventory import Inventory
from vm_operator.core.ports import StorePort, TartPort
from vm_operator.store.specs import SpecStore, VmSpec
from vm_operator.tart.errors import TartError
from vm_operator.tart.names import VmName

log = logging.getLogger(__name__)

Verdict = Literal["same", "missing", "other", "unbound"]

# seconds a VM's directory may seem born after its spec was written (the host's clock, over
# SSH, against the operator's): a clone's directory is born before the clone ends and the spec
# is written, so a later birth is a VM made again by hand
CLOCK_SLACK = 5.0


def verdict(bound: str | None, current: str | None, made_at: str | None = None) -> Verdict:
    """Whether a spec made for the VM ``bound`` (None: not known) belongs to the VM that
    carries its name now, ``current`` (None: no VM carries it); ``made_at``: when the
    operator made the spec's VM (its ``created_at``), which tells an unbound spec's VM from
    one made again after it."""
    if current is None:
        return "missing"
    if bound is None:
        born = birth_seconds(current)
        made = timestamp_seconds(made_at)
        if born and made is not None and born > made + CLOCK_SLACK:
            return "other"
        return "unbound"
    return "same" if same_directory(bound, current) else "other"


def birth_seconds(identity: str) -> float:
    """The birth time of an identity ``INODE:SECONDS.FRACTION`` (0: not known)."""
    try:
        return float(identity.partition(":")[2] or 0)
    except ValueError:
        return 0.0


def timestamp_seconds(stamp: str | None) -> float | None:
    """An API timestamp (``core/clock.utc_now``) as seconds since the epoch; None when it is
    none or not one."""
    if stamp is None:
        return None
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp()


def same_directory(bound: str, current: str) -> bool:
    """Whether two identities (``INODE:SECONDS.FRACTION``, tart/identity.py) are one directory.
    BSD ``stat`` (and a stat in the operator) gives the birth time in whole seconds (fraction
    ``0``), GNU ``stat`` in nanoseconds: when either side is whole, whole seconds are compared,
    so that a host whose ``stat`` changes flavour (GNU coreutils put first in its PATH) does not
    make every VM another."""
    if bound == current:
        return True
    inode, _, birth = bound.partition(":")
    inode_now, _, birth_now = current.partition(":")
    seconds, _, fraction = birth.partition(".")
    seconds_now, _, fraction_now = birth_now.partition(".")
    return (inode == inode_now and seconds == seconds_now
            and "0" in (fraction, fraction_now))


class Ownership:
    """Checks that a VM's spec is that VM's, binds it, and drops what belonged to a gone VM.

    Its own methods raise what the Tart adapter raises (``TartError``) when the identity
    cannot be read: then nobody can tell, and the caller neither acts nor drops anything."""

    def __init__(self, tart: TartPort, inventory: Inventory, specs: SpecStore,
                 store: StorePort) -> None:
        self.tart = tart
        self.inventory = inventory
        self.specs = specs
        self.store = store
        self._lock = threading.Lock()  # read-judge-write of a spec
        self._released: list[Callable[[str], None]] = []

    def on_release(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(name)`` once what the operator kept of a gone VM is dropped."""
        self._released.append(listener)

    def identity(self, name: VmName, fresh: bool = True) -> str | None:
        return self.inventory.identity(name, fresh)

    def owned(self, name: VmName, fresh: bool = True) -> tuple[VmSpec | None, str | None]:
        """The VM's spec when it belongs to the VM that carries the name now (bound to it
        first when it was not yet), or when no VM carries the name; None when there is no
        spec, or when it was another VM's (then dropped: ``release``). With it, the identity
        of the VM that carries the name now (None: none does, or there was no spec to judge).
        """
        spec = self.specs.load(name)
        if spec is None:
            return None, None
        current = self.identity(name, fresh)
        found = verdict(spec.vm_id, current, spec.created_at)
        if found == "other":
            self.release(name, spec, current)
            return None, current
        if found == "unbound":
            with self._lock:
                if self.specs.load(name) == spec:
                    spec = replace(spec, vm_id=current)
                    self.specs.save(spec)
                    log.info("VM %r: its spec is bound to the VM that carries the name now "
                             "(%s)", name, current)
        return spec, current

    def release(self, name: str, spec: VmSpec, current: str | None) -> None:
        """``spec`` was made for a VM that is gone: drop it (unless it changed meanwhile), its
        run records and its logs; the VM that carries the name now is left alone."""
        with self._lock:
            if self.specs.load(name) != spec:
                return
            self._forget(name)
        log.warning("VM %r is not the VM its spec was made for (that one was deleted, and this "
                    "one made under its name outside the operator: %s, now %s): its spec, run "
                    "records and logs are dropped, and the operator leaves this VM alone until "
                    "asked", name, spec.vm_id, current)
        for listener in self._released:
            listener(name)

    def _forget(self, name: str) -> None:
        """With ``_lock`` held: the spec, the run records and the logs of a gone VM."""
        self.specs.delete(name)
        self.store.forget(name)
        self.inventory.forget(name)
        try:
            self.tart.forget_log(name)  # over SSH the logs are on the host
        except TartError as exc:
            log.warning("VM %r: its run logs where Tart runs could not be removed: %s", name, exc)

    def drop(self, name: str) -> bool:
        """``DELETE /vms/{name}`` of a VM Tart does not list: drop its spec, run records and
        logs; whether there was anything to drop."""
        with self._lock:
            kept = self.specs.load(name) is not None or self.store.read_last_run(name) is not None
            if not kept:
                return False
            self._forget(name)
        log.info("VM %r: Tart lists no VM of this name; its spec, run records and logs are "
                 "dropped", name)
        for listener in self._released:
            listener(name)
        return True
