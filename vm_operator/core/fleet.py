"""The declarative file: a TOML fleet of VMs, and the plan that brings Tart to it.

Pure: no Tart, no files, no HTTP. ``parse_fleet`` turns the file's text into a ``Fleet`` or
refuses it whole with a ``FleetError`` naming the line and the key; ``plan`` compares a
``Fleet`` with what is observed (``Observed``) and answers the ``Step``s that would bring one
to the other. The operator applies the steps (core/fleet_apply.py); ``vm-operator plan``
prints them.

The file::

    prune = false                 # optional: delete the VMs the file created and no longer names

    [vms.ci]                      # one table per VM under [vms]; the key is the VM's name
    from = "ghcr.io/cirruslabs/macos-sequoia-base:latest"   # required: what to clone
    cpu = 2                       # optional, like POST /vms
    memory_mb = 4096
    disk_gb = 40                  # a minimum: Tart only grows disks
    display = "1920x1080"
    desired = "running"           # optional: "running" or "stopped"; absent: power left alone
    restart = "always"            # optional: "never", "on-failure" or "always"
    ephemeral = false             # optional: delete the VM once its run ends (at create only)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from vm_operator.core.fleet_lines import dotted, error_line, error_reason, key_line, key_on_line
from vm_operator.tart.names import VmName, name_problem
from vm_operator.vocabulary import (
    CPU,
    DESIRED,
    DISK_GB,
    DISPLAY_PATTERN,
    MEMORY_MB,
    RESTART_POLICIES,
    Desired,
    RestartPolicy,
)

StepKind = Literal["create", "set", "start", "stop", "delete"]

TOP_KEYS = ("prune", "vms")
VM_KEYS = ("from", "cpu", "memory_mb", "disk_gb", "display", "desired", "restart", "ephemeral")
RESOURCE_KEYS = ("cpu", "memory_mb", "disk_gb", "display")
BOUNDS = {"cpu": CPU, "memory_mb": MEMORY_MB, "disk_gb": DISK_GB}  # the API's (vocabulary.py)
DISPLAY = re.compile(DISPLAY_PATTERN)


class FleetError(ValueError):
    """The file is refused whole: ``line`` (1-based) and ``key`` (dotted, e.g. ``vms.ci.cpu``)
    say where, when they are known; ``vm``: the entry ``[vms.NAME]`` the refusal is about, when
    it is about one (its reason then names no other VM)."""

    def __init__(self, reason: str, line: int | None = None, key: str | None = None,
                 vm: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.key = key
        self.vm = vm
        super().__init__(self.describe())

    def describe(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        where += [f"key {self.key}"] if self.key is not None else []
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


@dataclass(frozen=True)
class Resources:
    """What ``tart set`` is given; None: the file says nothing (Tart's or the image's value)."""

    cpu: int | None = None
    memory_mb: int | None = None
    disk_gb: int | None = None
    display: str | None = None


@dataclass(frozen=True)
class VmEntry:
    """One VM of the file."""

    name: VmName
    source: VmName  # the file's ``from``: an OCI reference or a local VM
    resources: Resources = Resources()
    desired: Desired | None = None
    restart: RestartPolicy | None = None
    ephemeral: bool = False


@dataclass(frozen=True)
class Fleet:
    vms: tuple[VmEntry, ...] = ()
    prune: bool = False

    def names(self) -> set[str]:
        return {vm.name for vm in self.vms}


# --- parsing ----------------------------------------------------------------------------------


def parse_fleet(text: str) -> Fleet:
    """The fleet the file declares, or ``FleetError`` (the whole file refused)."""
    import tomllib  # here: an operator without --config never holds the TOML parser

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = error_line(str(exc), text)
        raise FleetError(f"not valid TOML: {error_reason(str(exc))}", line,
                         key_on_line(text, line)) from None
    for key in data:
        if key not in TOP_KEYS:
            raise FleetError(f"unknown key (the file takes {', '.join(TOP_KEYS)})",
                             key_line(text, (), key), dotted((key,)))
    prune = data.get("prune", False)
    if not isinstance(prune, bool):
        raise FleetError("must be true or false", key_line(text, (), "prune"), "prune")
    vms = data.get("vms", {})
    if not isinstance(vms, dict):
        raise FleetError("must be a table of VMs ([vms.NAME])", key_line(text, (), "vms"), "vms")
    return Fleet(tuple(_entry(text, name, table) for name, table in vms.items()), prune)


def decode_fleet(data: bytes) -> Fleet:
    """``parse_fleet`` of a file's bytes: TOML is UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise FleetError("not UTF-8 text (a TOML file is UTF-8)", line) from None
    return parse_fleet(text)


def _entry(text: str, name: str, table: object) -> VmEntry:
    where = key_line(text, ("vms",), name)
    key = dotted(("vms", name))
    problem = name_problem(name) or ("a VM name must be local, without '/'" if "/" in name
                                     else None)
    if problem is not None:
        raise FleetError(f"invalid VM name: {problem}", where, key, name)
    if not isinstance(table, dict):
        raise FleetError("must be a table ([vms.NAME]) of the VM's settings", where, key, name)
    path = ("vms", name)

    def refuse(item: str, reason: str) -> FleetError:
        return FleetError(reason, key_line(text, path, item), dotted((*path, item)), name)

    for item in table:
        if item not in VM_KEYS:
            raise refuse(item, f"unknown key (a VM takes {', '.join(VM_KEYS)})")
    if "from" not in table:
        raise FleetError("the key from is missing: what to clone (an OCI reference or a local "
                         "VM)", where, dotted((*path, "from")), name)
    source = table["from"]
    if not isinstance(source, str):
        raise refuse("from", "must be a string: an OCI reference or a local VM")
    if (source_problem := name_problem(source)) is not None:
        raise refuse("from", f"invalid source: {source_problem}")
    numbers: dict[str, int | None] = {}
    for item, (low, high) in BOUNDS.items():
        value = table.get(item)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not low <= value <= high):
            raise refuse(item, f"must be a whole number from {low} to {high}")
        numbers[item] = value
    display = table.get("display")
    if display is not None and not (isinstance(display, str) and DISPLAY.fullmatch(display)):
        raise refuse("display", "must be WIDTHxHEIGHT in pixels, e.g. \"1920x1080\"")
    desired = table.get("desired")
    if desired is not None and desired not in DESIRED:
        raise refuse("desired", f"must be one of {', '.join(DESIRED)}")
    restart = table.get("restart")
    if restart is not None and restart not in RESTART_POLICIES:
        raise refuse("restart", f"must be one of {', '.join(RESTART_POLICIES)}")
    ephemeral = table.get("ephemeral", False)
    if not isinstance(ephemeral, bool):
        raise refuse("ephemeral", "must be true or false")
    resources = Resources(numbers["cpu"], numbers["memory_mb"], numbers["disk_gb"], display)
    return VmEntry(VmName(name), VmName(source), resources, cast(Desired | None, desired),
                   cast(RestartPolicy | None, restart), ephemeral)


# --- observed state and the plan ----------------------------------------------------------------


@dataclass(frozen=True)
class ObservedSpec:
    """The VM's spec as the operator keeps it: ``created``: the operator created the VM (its
    spec has ``created_at``); ``source``: who wrote the desired state last (api, config)."""

    desired: Desired | None = None
    restart: RestartPolicy | None = None
    source: str = "api"
    created: bool = False


@dataclass(frozen=True)
class Observed:
    """A local VM as it is now (``state``: running, stopped, suspended or creating)."""

    name: str
    state: str
    resources: Resources = Resources()
    spec: ObservedSpec | None = None


@dataclass(frozen=True)
class Change:
    """One setting that differs: its name, the value now (None: unknown/unset) and the file's."""

    key: str
    old: object
    new: object

    def render(self) -> str:
        return f"{self.key} {_value(self.old)} -> {_value(self.new)}"


@dataclass(frozen=True)
class Step:
    """One thing applying the file does. ``entry``: the file's VM (None for a delete);
    ``changes``: what a set changes; ``deferred``: the VM runs, so its resources change at its
    next stop."""

    kind: StepKind
    vm: str
    entry: VmEntry | None = None
    changes: tuple[Change, ...] = ()
    deferred: bool = False
    note: str = ""

    def resources(self) -> Resources:
        """The resource changes of a set (None for the settings that stay)."""
        new = {change.key: change.new for change in self.changes if change.key in RESOURCE_KEYS}
        return Resources(cast(int | None, new.get("cpu")), cast(int | None, new.get("memory_mb")),
                         cast(int | None, new.get("disk_gb")), cast(str | None, new.get("display")))

    def render(self, source_shown: bool = True) -> str:
        """The step on one line (a create's source told only when ``source_shown``)."""
        if self.kind == "create" and self.entry is not None:
            source = self.entry.source if source_shown else "a VM not shown"
            return f"create {self.vm} from {source}{_create_details(self.entry)}"
        if self.kind == "set":
            line = f"set {self.vm}: " + ", ".join(change.render() for change in self.changes)
            if self.deferred:
                line += " (the VM is running: its resources change at its next stop)"
            return line
        return f"{self.kind} {self.vm}" + (f" ({self.note})" if self.note else "")


def _value(value: object) -> str:
    return "unset" if value is None else str(value)


def _create_details(entry: VmEntry) -> str:
    res = entry.resources
    parts = [f"{key} {value}" for key, value in (
        ("cpu", res.cpu), ("memory_mb", res.memory_mb), ("disk_gb", res.disk_gb),
        ("display", res.display), ("desired", entry.desired), ("restart", entry.restart))
        if value is not None]
    if entry.ephemeral:
        parts.append("ephemeral")
    return f": {', '.join(parts)}" if parts else ""


ORDER: tuple[StepKind, ...] = ("stop", "delete", "set", "create", "start")


@dataclass(frozen=True)
class _Planner:
    fleet: Fleet
    observed: dict[str, Observed]
    steps: list[Step] = field(default_factory=list)

    def run(self) -> list[Step]:
        for entry in self.fleet.vms:
            vm = self.observed.get(entry.name)
            if vm is None:
                self.steps.append(Step("create", entry.name, entry))
            elif vm.state != "creating":  # a create under way: nothing to compare yet
                self._existing(entry, vm)
        if self.fleet.prune:
            for vm in sorted(self.observed.values(), key=lambda vm: vm.name):
                spec = vm.spec
                if (vm.name not in self.fleet.names() and spec is not None and spec.created
                        and spec.source == "config" and vm.state != "creating"):
                    self.steps.append(Step("delete", vm.name, note="not in the file, prune = "
                                           "true, created by the operator from the file"))
        return sorted(self.steps, key=lambda step: ORDER.index(step.kind))

    def _existing(self, entry: VmEntry, vm: Observed) -> None:
        changes = resource_changes(entry.resources, vm.resources)
        spec = vm.spec or ObservedSpec()
        power: Step | None = None
        if entry.desired == "running" and vm.state != "running":
            power = Step("start", entry.name, entry, note=f"it is {vm.state}")
        elif entry.desired == "stopped" and vm.state != "stopped":
            power = Step("stop", entry.name, entry, note=f"it is {vm.state}")
        elif entry.desired is not None and spec.desired != entry.desired:
            changes.append(Change("desired", spec.desired, entry.desired))
        if entry.restart is not None and spec.restart != entry.restart:
            changes.append(Change("restart", spec.restart, entry.restart))
        if changes:
            deferred = vm.state != "stopped" and any(c.key in RESOURCE_KEYS for c in changes)
            self.steps.append(Step("set", entry.name, entry, tuple(changes), deferred))
        if power is not None:
            self.steps.append(power)


def resource_changes(wanted: Resources, now: Resources) -> list[Change]:
    """The resources the file sets and the VM does not have. A disk only grows: ``disk_gb`` is
    a minimum. A value the VM does not report (None) is not compared."""
    changes = []
    for key in RESOURCE_KEYS:
        new, old = getattr(wanted, key), getattr(now, key)
        if new is None or old is None or new == old:
            continue
        if key == "disk_gb" and new < old:
            continue
        changes.append(Change(key, old, new))
    return changes


def plan(fleet: Fleet, observed: list[Observed]) -> list[Step]:
    """What applying ``fleet`` does to the VMs ``observed`` (local VMs only), in the order it
    is done: stops, deletes, sets, creates, starts (stops and deletes free what starts need)."""
    return _Planner(fleet, {vm.name: vm for vm in observed}).run()


# --- observed state from the API's records (GET /vms/{name}, as JSON or as the core's dict) ----


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def observed_spec(data: object) -> ObservedSpec | None:
    """The ``spec`` member of ``GET /vms/{name}`` (or a spec's JSON) as the plan reads it; None
    when the VM has none. ``created``: the spec has a ``created_at``."""
    if not isinstance(data, dict):
        return None
    desired, restart, source = data.get("desired"), data.get("restart"), data.get("source")
    return ObservedSpec(
        desired=cast(Desired, desired) if desired in DESIRED else None,
        restart=cast(RestartPolicy, restart) if restart in RESTART_POLICIES else None,
        source=source if isinstance(source, str) else "api",
        created=isinstance(data.get("created_at"), str))


def observed_vm(detail: Mapping[str, object], spec: ObservedSpec | None) -> Observed:
    """A VM's detail (``GET /vms/{name}``) and spec, as the plan compares them."""
    display = detail.get("display")
    resources = Resources(_int_or_none(detail.get("cpu")), _int_or_none(detail.get("memory_mb")),
                          _int_or_none(detail.get("disk_gb")),
                          display if isinstance(display, str) else None)
    return Observed(str(detail.get("name")), str(detail.get("state")), resources, spec)
