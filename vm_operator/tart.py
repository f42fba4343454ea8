"""Everything that speaks to the Tart CLI: parsing its output, and running it.

The parsers are pure functions over the text Tart prints; ``TartRunner`` is the
thin shell that spawns the binary (argument list, timeout, captured output) and
turns every way a call can go wrong into one of the ``TartError`` classes below.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

STATES = ("running", "suspended", "stopped")
SOURCES = ("local", "oci")


class TartError(Exception):
    """A Tart call did not give the operator what it asked for."""


class TartUnavailable(TartError):
    """The binary is missing or cannot be executed: nothing Tart-shaped can be served."""

    def __init__(self, message: str, binary: str = "") -> None:
        super().__init__(message)
        self.binary = binary  # the path that could not be run, so advice can fit it


class TartTimeout(TartError):
    """Tart outlived its timeout; the process was killed."""


class TartBadOutput(TartError):
    """Tart exited 0 but printed something that is not what Tart prints."""


class TartCommandError(TartError):
    """Tart ran and refused, with its own message on stderr and a non-zero exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# --- parsing (pure) ---------------------------------------------------------


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise TartBadOutput(f"{what} did not print JSON") from None


def _int_field(raw: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TartBadOutput(f"{key!r} is not a number in Tart's output")
    return int(value)


def _state_of(raw: Mapping[str, Any]) -> str:
    """Tart before 1.8 had no ``State``: derive it from ``Running`` as Tart itself did."""
    state = raw.get("State")
    if isinstance(state, str) and state.lower() in STATES:
        return state.lower()
    if state is not None:
        raise TartBadOutput(f"unknown VM state {state!r} in Tart's output")
    running = raw.get("Running")
    if not isinstance(running, bool):
        raise TartBadOutput("neither 'State' nor 'Running' in Tart's output")
    return "running" if running else "stopped"


def normalize_vm(raw: Any) -> dict[str, Any]:
    """Map one entry of ``tart list --format json`` (any of its three shapes) to the API's VM."""
    if not isinstance(raw, dict) or not isinstance(raw.get("Name"), str):
        raise TartBadOutput("a 'tart list' entry has no name")
    source = str(raw.get("Source", "local")).lower()
    if source not in SOURCES:
        raise TartBadOutput(f"unknown VM source {raw.get('Source')!r} in Tart's output")
    state = _state_of(raw)
    accessed = raw.get("Accessed")
    return {
        "name": raw["Name"],
        "source": source,
        "state": state,
        "status": state,
        "running": state == "running",
        "disk_gb": _int_field(raw, "Disk", 0),
        "size_gb": _int_field(raw, "Size", 0),
        "accessed": accessed if isinstance(accessed, str) else None,
    }


def parse_vm_list(text: str) -> list[dict[str, Any]]:
    """Parse ``tart list --format json``; unknown keys are ignored, missing ones are errors."""
    data = _load_json(text, "'tart list'")
    if not isinstance(data, list):
        raise TartBadOutput("'tart list' did not print a JSON array")
    return [normalize_vm(entry) for entry in data]


def parse_vm_info(text: str) -> dict[str, Any]:
    """Parse ``tart get NAME --format json`` into the detail fields the API adds to a VM."""
    raw = _load_json(text, "'tart get'")
    if not isinstance(raw, dict):
        raise TartBadOutput("'tart get' did not print a JSON object")
    memory = raw.get("Memory")
    return {
        "os": raw.get("OS"),
        "cpu": _int_field(raw, "CPU") if "CPU" in raw else None,
        "memory_mb": _int_field(raw, "Memory") if memory is not None else None,
        "disk_format": raw.get("DiskFormat"),
        "display": raw.get("Display"),
    }


def parse_version(text: str) -> str:
    """``tart --version`` prints one line such as ``2.31.0``."""
    version = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not version or len(version) > 64:
        raise TartBadOutput("'tart --version' printed no version")
    return version


def parse_ip(text: str) -> str:
    """``tart ip`` prints one IPv4 address; anything else is not Tart's answer."""
    line = text.strip()
    try:
        return str(ipaddress.ip_address(line))
    except ValueError:
        raise TartBadOutput("'tart ip' did not print an IP address") from None


def error_message(stderr: str, exit_code: int) -> str:
    """The last non-empty line Tart printed on stderr is its message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return f"tart exited with code {exit_code} and printed nothing"
    return lines[-1][:1000]


# --- running (shell) --------------------------------------------------------

Observer = Callable[[str, str, float], None]
"""Called after every Tart call with (command, outcome, seconds): the metrics hook."""


def _no_observer(command: str, outcome: str, seconds: float) -> None:
    del command, outcome, seconds


@dataclass
class TartRunner:
    """Runs Tart commands: always an argument list, always a timeout, always captured output."""

    binary: str
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    timeout: float = 10.0
    observe: Observer = _no_observer
    _located: tuple[float, str, bool] | None = field(default=None, init=False, repr=False,
                                                    compare=False)

    def argv(self, args: Sequence[str]) -> list[str]:
        """The argument list for a Tart command (a transport could wrap it here)."""
        return [self.binary, *args]

    def locate(self) -> tuple[str, bool]:
        """Where Tart is and whether it can be run, without running it (for health probes).

        Looked up at most once a second: a probe per request must not cost three stat calls.
        """
        now = time.monotonic()
        found = self._located
        if found is not None and now - found[0] < 1.0:
            return found[1], found[2]

        path = shutil.which(self.binary) or self.binary
        available = os.path.isfile(path) and os.access(path, os.X_OK)
        self._located = (now, path, available)
        return path, available

    @contextmanager
    def observed(self, command: str) -> Iterator[None]:
        """Report one Tart call to ``observe``: its command, how it ended, how long it took.

        Every call goes through here, ``tart run`` launches included (timed to the launch,
        not over the VM's life), so the metrics count every Tart process the operator starts.
        """
        started = time.monotonic()
        outcome = "error"
        try:
            yield
            outcome = "ok"
        except TartCommandError:
            outcome = "refused"
            raise
        except TartTimeout:
            outcome = "timeout"
            raise
        except TartUnavailable:
            outcome = "unavailable"
            raise
        finally:
            self.observe(command, outcome, time.monotonic() - started)

    def run(self, args: Sequence[str], timeout: float | None = None) -> str:
        """Run ``tart ARGS``, return stdout; raise a TartError on every kind of failure."""
        with self.observed(args[0] if args else ""):
            return self._run(args, self.timeout if timeout is None else timeout)

    def _run(self, args: Sequence[str], timeout: float) -> str:
        try:
            proc = subprocess.Popen(
                self.argv(args),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(self.env),
                text=True,
                errors="replace",
                start_new_session=True,  # so a timeout can kill Tart and anything it spawned
            )
        except FileNotFoundError:
            raise TartUnavailable(f"the Tart binary {self.binary!r} does not exist", self.binary) from None
        except PermissionError:
            raise TartUnavailable(f"the Tart binary {self.binary!r} is not executable", self.binary) from None
        except OSError as exc:
            raise TartUnavailable(f"the Tart binary {self.binary!r} cannot run: {exc.strerror}", self.binary) from None
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise TartTimeout(f"'tart {args[0]}' did not finish within {timeout:g} s") from None
        except BaseException:
            _kill_group(proc)
            raise
        if proc.returncode < 0:
            raise TartCommandError(
                f"'tart {args[0]}' was killed by signal {-proc.returncode}", proc.returncode
            )
        if proc.returncode != 0:
            raise TartCommandError(error_message(stderr, proc.returncode), proc.returncode)
        return stdout

    def launch(self, args: Sequence[str], log_path: str,
               keep_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
        """Start a long-lived Tart command (``tart run``) detached, its output to ``log_path``
        (and ``keep_fds`` open in it: the run lock, see launcher.py).

        A new session keeps Ctrl-C on the operator's terminal away from the VM, so VMs
        outlive the operator as Tart users expect of a VM they started.
        """
        with self.observed(args[0] if args else ""):
            return self._launch(args, log_path, keep_fds)

    def _launch(self, args: Sequence[str], log_path: str,
                keep_fds: Sequence[int]) -> subprocess.Popen[bytes]:
        try:
            with open(log_path, "ab") as log:
                return subprocess.Popen(
                    self.argv(args),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(self.env),
                    start_new_session=True,
                    pass_fds=tuple(keep_fds),
                )
        except FileNotFoundError:
            raise TartUnavailable(f"the Tart binary {self.binary!r} does not exist", self.binary) from None
        except PermissionError:
            raise TartUnavailable(f"the Tart binary {self.binary!r} is not executable", self.binary) from None
        except OSError as exc:
            raise TartUnavailable(f"the Tart binary {self.binary!r} cannot run: {exc.strerror}", self.binary) from None

    # Convenience wrappers: one per Tart command the operator uses.

    def list_vms(self) -> list[dict[str, Any]]:
        return parse_vm_list(self.run(["list", "--format", "json"]))

    def get_vm(self, name: str) -> dict[str, Any]:
        return parse_vm_info(self.run(["get", name, "--format", "json"]))

    def version(self) -> str:
        return parse_version(self.run(["--version"]))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the whole process group, then reap, so a timed-out call leaves nothing behind."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=2)
