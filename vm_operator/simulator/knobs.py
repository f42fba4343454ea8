"""The simulator's knobs: environment variables, each declared once below (its variable, what
it takes, what it does, its default), snapshot into one ``Knobs`` record when the simulator
starts (``load``). The ``--help`` epilog is made from the same declarations.

A knob's value is read from the snapshot when it is used: a malformed number falls back to its
default (as Tart's own defaults would), and a bad guest port fails only the command that
needs it (``run``), as before.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every call
if TYPE_CHECKING:
    from collections.abc import Mapping

VERSION = "2.31.0"  # the Tart version the simulator stands for


class Knob:
    """One environment variable: ``metavar`` is what it takes (shown as VARIABLE=METAVAR)."""

    def __init__(self, variable: str, metavar: str, help: str) -> None:
        self.variable, self.metavar, self.help = variable, metavar, help

    def raw(self, knobs: Knobs) -> str | None:
        return knobs.env.get(self.variable)

    @property
    def shown(self) -> str:
        return f"{self.variable}={self.metavar}" if self.metavar else self.variable


class Text(Knob):
    def __init__(self, variable: str, metavar: str, help: str, default: str = "",
                 strip: bool = True) -> None:
        super().__init__(variable, metavar, help)
        self.default, self.strip = default, strip

    def __get__(self, knobs: Knobs, owner: object = None) -> str:
        value = self.raw(knobs)
        if value is None:
            return self.default
        return value.strip() if self.strip else value


class Seconds(Knob):
    """A number of seconds (or a count); malformed: the default."""

    def __init__(self, variable: str, metavar: str, help: str, default: float = 0.0) -> None:
        super().__init__(variable, metavar, help)
        self.default = default

    def __get__(self, knobs: Knobs, owner: object = None) -> float:
        try:
            return float(self.raw(knobs) or self.default)
        except ValueError:
            return self.default


class Commands(Knob):
    """A comma-separated list of subcommands (``all``: every one)."""

    def __get__(self, knobs: Knobs, owner: object = None) -> frozenset[str]:
        return frozenset(w.strip() for w in (self.raw(knobs) or "").split(",") if w.strip())


class Present(Knob):
    """Set (to anything) or not."""

    def __get__(self, knobs: Knobs, owner: object = None) -> bool:
        return self.raw(knobs) is not None


class Knobs:
    """The knobs as the environment held them when the simulator started."""

    tart_home = Text("TART_HOME", "", "where VMs live (default ~/.tart), as for Tart",
                     strip=False)
    seed = Text("TART_SIM_SEED", "demo", "create demo VMs and an OCI image in an empty TART_HOME",
                strip=False)
    vm_limit = Seconds("TART_SIM_VM_LIMIT", "N",
                       "running macOS guests allowed (default 2; 0: no limit)", 2.0)
    version = Text("TART_SIM_VERSION", "V", f"what --version prints (default {VERSION})",
                   VERSION, strip=False)
    list_shape = Text("TART_SIM_LIST_SHAPE", "V", "list's JSON fields as Tart V printed them: "
                      "2.31 (default), 2.15, 1.7", "2.31", strip=False)
    delay = Seconds("TART_SIM_DELAY", "S", "sleep S seconds before every command")
    run_delay = Seconds("TART_SIM_RUN_DELAY", "S",
                        "run waits S seconds before it takes the VM's lock")
    boot_delay = Seconds("TART_SIM_BOOT_DELAY", "S",
                         "a running VM has an IP address S seconds after it started")
    ssh_delay = Seconds("TART_SIM_SSH_DELAY", "S",
                        "its guest accepts connections S seconds after it has an IP")
    guest_ip = Text("TART_SIM_GUEST_IP", "ADDR",
                    "every guest's IP (default: one loopback 127.A.B.C per VM)")
    guest_port = Text("TART_SIM_GUEST_PORT", "N",
                      "the port a booted guest listens on (default 22, as sshd)")
    guest_services = Text("TART_SIM_GUEST_SERVICES", "PORT=echo|N,...",
                          "more guest ports: echo back what comes, or relay to 127.0.0.1:N")
    run_fail = Text("TART_SIM_RUN_FAIL", "MSG",
                    "run fails with MSG (exit 1) before it takes the lock", strip=False)
    hang = Commands("TART_SIM_HANG", "CMDS",
                    "these subcommands (comma-separated, or all) hang until killed")
    hang_child = Text("TART_SIM_HANG_CHILD", "PATH",
                      "with TART_SIM_HANG: fork a child that hangs too; its pid to PATH",
                      strip=False)
    garbage = Commands("TART_SIM_GARBAGE", "CMDS",
                       "these subcommands print garbage instead of their output")
    call_log = Text("TART_SIM_CALL_LOG", "FILE",
                    "append a line to FILE when each call starts and ends", strip=False)
    pull_seconds = Seconds("TART_SIM_PULL_SECONDS", "S",
                           "a pull's disk download takes S seconds (default 2)", 2.0)
    progress_interval = Seconds("TART_SIM_PROGRESS_INTERVAL", "S",
                                "a pull prints a percentage at most every S s (default 1)", 1.0)
    pull_fail = Text("TART_SIM_PULL_FAIL", "PCT:MSG",
                     "pulls fail with MSG (exit 1) once PCT% was printed", strip=False)
    pull_hang = Text("TART_SIM_PULL_HANG", "PCT", "pulls stall at PCT% until killed")
    clone_seconds = Seconds("TART_SIM_CLONE_SECONDS", "S",
                            "clone holds Tart's global lock S seconds while it copies")
    progress_log = Text("TART_SIM_PROGRESS_LOG", "FILE",
                        "append 'TIME PERCENT' to FILE when a pull prints a percentage",
                        strip=False)
    ci = Present("CI", "", "as for Tart: set (to anything), progress lines are plain, "
                 "no terminal redraws")

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = {k.variable: env[k.variable] for k in declared() if k.variable in env}

    def listed(self, commands: frozenset[str], command: str) -> bool:
        """Whether a knob of ``Commands`` names this subcommand (or ``all``)."""
        return "all" in commands or command in commands


def declared() -> list[Knob]:
    """Every knob, in the order of the help text."""
    return [k for k in vars(Knobs).values() if isinstance(k, Knob)]


_current: Knobs | None = None


def load(env: Mapping[str, str]) -> Knobs:
    """Snapshot the knobs; from then on ``current()`` answers them."""
    global _current
    _current = Knobs(env)
    return _current


def current() -> Knobs:
    """The knobs of this process (snapshot at start-up; at first use otherwise)."""
    return _current if _current is not None else load(os.environ)
