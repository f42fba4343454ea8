"""The seam between ``VmService`` and wherever ``tart run`` actually runs.

``tart run`` blocks for the VM's whole life, so the service needs three things from
whoever starts it: a handle to wait on (to reap it and learn its exit code), the run's
output (for ``GET /vms/{name}/logs`` and for Tart's message when it fails), and nothing
else. ``LocalLauncher`` is what the operator always did: a detached child process whose
output goes to the run log in the state directory. ``transport.SshLauncher`` does the
same on a Mac reached over SSH.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from vm_operator.state import StateStore
from vm_operator.tart import TartRunner


class RunHandle(Protocol):
    """A started ``tart run``: ``subprocess.Popen`` is one."""

    @property
    def pid(self) -> int: ...

    def wait(self) -> int:
        """Block until ``tart run`` has ended; its exit code (negative: killed by that signal)."""
        ...


class Launcher(Protocol):
    def launch(self, name: str, args: Sequence[str]) -> RunHandle:
        """Start ``tart ARGS`` detached for VM ``name``; raise a TartError when it cannot start."""
        ...

    def read_log(self, name: str) -> bytes | None:
        """The output of the last run of ``name`` (its tail when huge), None when there is none."""
        ...

    def last_log_line(self, name: str) -> str:
        """The last non-empty line of that output ("" when there is none): Tart's message."""
        ...


@dataclass
class LocalLauncher:
    """``tart run`` as a child process of the operator, its output in the state directory."""

    runner: TartRunner
    store: StateStore

    def launch(self, name: str, args: Sequence[str]) -> RunHandle:
        return self.runner.launch(args, self.store.prepare_log(name))

    def read_log(self, name: str) -> bytes | None:
        return self.store.read_log(name)

    def last_log_line(self, name: str) -> str:
        return self.store.last_log_line(name)
