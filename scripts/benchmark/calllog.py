"""The simulator's call log (``TART_SIM_CALL_LOG``): when each Tart call of an operator began
and ended, as the simulator itself wrote it. Every figure about Tart calls is read here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Call:
    pid: int
    start: float
    end: float | None
    argv: str

    @property
    def command(self) -> str:
        for arg in self.argv.split():
            if not arg.startswith("-"):
                return arg
        return "version" if "--version" in self.argv else "?"


def read_calls(path: Path) -> list[Call]:
    """``PID START start ARGV`` when a call begins, ``PID START END ARGV`` when it ends."""
    calls: dict[tuple[str, str], Call] = {}
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3:
            continue
        pid, start, end = parts[:3]
        argv = parts[3] if len(parts) > 3 else ""
        try:
            began, ended = float(start), None if end == "start" else float(end)
            call = calls.setdefault((pid, start), Call(int(pid), began, None, argv))
        except ValueError:  # a line of another shape: not ours to read
            continue
        if ended is not None:
            call.end = ended
    return sorted(calls.values(), key=lambda c: c.start)


def max_concurrent(calls: list[Call], command: str, horizon: float) -> int:
    """The most ``command`` calls that ran at the same moment (an unfinished one lasts until
    ``horizon``)."""
    events = []
    for call in calls:
        if call.command == command:
            events.append((call.start, 1))
            events.append((call.end if call.end is not None else horizon, -1))
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    most = running = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def calls_between(call_log: Path | None, t0: float, t1: float) -> list[Call]:
    if call_log is None:
        return []
    return [c for c in read_calls(call_log) if t0 <= c.start <= t1]


def simulator_alive(pid: int) -> bool:
    """A call without an end line is still running only if its process is (a timed-out call is
    SIGKILLed by the operator and never writes its end line)."""
    try:
        return b"tart-simulator" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def started_between(call_log: Path, t0: float, t1: float, command: str | None = None) -> int:
    """How many calls (of ``command``, or of any) began between ``t0`` and ``t1``."""
    return sum(1 for c in calls_between(call_log, t0, t1)
               if command is None or c.command == command)


def finished(call_log: Path) -> list[Call]:
    """The calls that ended."""
    return [c for c in read_calls(call_log) if c.end is not None]
