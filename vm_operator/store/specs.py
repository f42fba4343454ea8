"""What the operator remembers about the VMs it manages, one small record per VM::

    <directory>/<folder name of the VM>.json    {"format": 2, "name": ..., "ephemeral": ..., ...}

A spec says whether the VM is ephemeral (deleted once its run ends), its desired power
(``running``, ``stopped``, or None: no wish), its restart policy and who said so last (``api``
or ``config``). A VM the operator did not create may have one too (a start through the API of a
VM made by hand gives it one): then ``created_at`` and ``operation`` are None. Records of
format 1 (before desired state) read as desired None, restart ``never``, source ``api``.

A spec belongs to one VM: ``vm_id`` is the identity of the VM it was made for (its directory
under the Tart home, ``tart/identity.py``), None in a record written before it existed (bound
to the VM that carries the name when the operator next looks: core/ownership.py).

Each record is written whole (write, fsync, rename, fsync the directory): a crash at any
instant leaves it either as it was or as it became.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict, TypeVar, get_args

from vm_operator.store.atomic import sync_directory, write_whole
from vm_operator.store.state import StateDirError, folder_name
from vm_operator.vocabulary import DESIRED, RESTART_POLICIES, Desired, RestartPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")

FORMAT = 2
READABLE_FORMATS = (1, 2)
_TMP_PREFIX = "%tmp-"  # no record can start with it: folder_name() escapes every "%"


class BadSpec(ValueError):
    """A spec file that is not a valid spec."""


SpecSource = Literal["api", "config"]
SPEC_SOURCES: tuple[SpecSource, ...] = get_args(SpecSource)


class VmSpecJson(TypedDict):
    format: int
    name: str
    ephemeral: bool
    created_at: str | None
    operation: str | None
    desired: Desired | None
    restart: RestartPolicy
    source: SpecSource
    vm_id: str | None


@dataclass(frozen=True)
class VmSpec:
    """``created_at``: when the operator created the VM (a run that started before that was
    a run of an earlier VM of the same name), None when it did not; ``operation``: the id of
    the create. ``desired``: the power the VM should have (None: no wish); ``restart``: what
    to do when its run ends without a stop through the API; ``source``: who said so last;
    ``vm_id``: the identity of the VM it was made for (None: not known yet)."""

    name: str
    ephemeral: bool = False
    created_at: str | None = None
    operation: str | None = None
    desired: Desired | None = None
    restart: RestartPolicy = "never"
    source: SpecSource = "api"
    vm_id: str | None = None

    def to_json(self) -> VmSpecJson:
        return {"format": FORMAT, "name": self.name, "ephemeral": self.ephemeral,
                "created_at": self.created_at, "operation": self.operation,
                "desired": self.desired, "restart": self.restart, "source": self.source,
                "vm_id": self.vm_id}


def _choice(data: dict[str, object], key: str, choices: tuple[T, ...]) -> T:
    """``data[key]`` as one of ``choices`` (typed as they are); BadSpec when it is not."""
    value = data.get(key)
    for choice in choices:
        if value == choice:
            return choice
    raise BadSpec(f"{key} must be one of {', '.join(map(str, choices))}")


def spec_from_json(data: object) -> VmSpec:
    """The inverse of ``VmSpec.to_json`` (a record of format 1 too); ValueError says what is
    wrong."""
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
        raise BadSpec(f"not a VM spec of format {' or '.join(map(str, READABLE_FORMATS))}")
    name, ephemeral = data.get("name"), data.get("ephemeral")
    created_at, operation = data.get("created_at"), data.get("operation")
    if not isinstance(name, str) or not isinstance(ephemeral, bool):
        raise BadSpec("name must be a string and ephemeral a boolean")
    if data["format"] == 1 and not isinstance(created_at, str):
        raise BadSpec("created_at must be a string")
    if not (created_at is None or isinstance(created_at, str)) or not (
            operation is None or isinstance(operation, str)):
        raise BadSpec("created_at and operation must be strings or null")
    if data["format"] == 1:
        return VmSpec(name, ephemeral, created_at, operation)
    vm_id = data.get("vm_id")
    if not (vm_id is None or isinstance(vm_id, str)):
        raise BadSpec("vm_id must be a string or null")
    return VmSpec(name, ephemeral, created_at, operation,
                  _choice(data, "desired", (*DESIRED, None)),
                  _choice(data, "restart", RESTART_POLICIES),
                  _choice(data, "source", SPEC_SOURCES), vm_id)


_UNREAD = object()  # load(): no spec read yet for the name


class SpecStore:
    """One directory of specs. Failures are ``StateDirError``s naming the state directory."""

    def __init__(self, directory: Path, state_root: Path | None = None) -> None:
        self.directory = directory
        self._root = state_root or directory  # what an error names
        self._lock = threading.Lock()
        # what load() read, by name (None: no spec); this process is the only writer, so
        # save() and delete() keep it true; a generation counter keeps a load that raced a
        # write from caching what it read before that write
        self._loaded: dict[str, VmSpec | None] = {}
        self._generation = 0

    def _path(self, name: str) -> Path:
        return self.directory / f"{folder_name(name)}.json"

    def _error(self, exc: OSError) -> StateDirError:
        return StateDirError(self._root, exc.strerror or str(exc))

    def save(self, spec: VmSpec) -> None:
        data = json.dumps(spec.to_json(), ensure_ascii=False).encode()
        with self._lock:
            self._generation += 1
            self._loaded.pop(spec.name, None)
            try:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_whole(self._path(spec.name), data, _TMP_PREFIX)
            except OSError as exc:
                raise self._error(exc) from None

    def load(self, name: str) -> VmSpec | None:
        """The VM's spec; None when there is none (or it cannot be read: logged). Read from
        disk once, then kept (every VM's detail asks for it): a kept one without a lock."""
        kept = self._loaded.get(name, _UNREAD)
        if kept is not _UNREAD:
            return kept  # type: ignore[return-value]
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            generation = self._generation
        found, clean = self._read(name)
        with self._lock:
            if clean and generation == self._generation:  # a failed read is tried again
                self._loaded[name] = found
        return found

    def _read(self, name: str) -> tuple[VmSpec | None, bool]:
        """The spec, and whether the read was clean (a spec, or no file at all)."""
        try:
            spec = spec_from_json(json.loads(self._path(name).read_bytes()))
        except FileNotFoundError:
            return None, True
        except (OSError, ValueError) as exc:
            log.warning("the spec of VM %r cannot be read: %s", name, exc)
            return None, False
        return (spec if spec.name == name else None), True

    def delete(self, name: str) -> None:
        with self._lock:
            self._generation += 1
            self._loaded.pop(name, None)
            try:
                self._path(name).unlink(missing_ok=True)
                sync_directory(self.directory)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise self._error(exc) from None

    def all(self) -> list[VmSpec]:
        """Every readable spec (a write a crash cut short is removed)."""
        try:
            paths = sorted(self.directory.iterdir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._error(exc) from None
        found = []
        for path in paths:
            if path.name.startswith(_TMP_PREFIX):
                # a write a crash cut short, or one in flight: the lock waits for the latter,
                # which renames its file away (so unlinking finds nothing)
                with self._lock:
                    path.unlink(missing_ok=True)
            elif path.suffix == ".json":
                try:
                    spec = spec_from_json(json.loads(path.read_bytes()))
                except (OSError, ValueError) as exc:
                    log.warning("spec %s cannot be read: %s", path, exc)
                    continue
                if path == self._path(spec.name):
                    found.append(spec)
        return found

