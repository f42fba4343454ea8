"""The command line: Tart's subcommands and flags (failing like Swift's ArgumentParser), the
global knobs (delay, hang, garbage, the call log), and the entry point."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .errors import EX_USAGE, TartError
from .files import atomic_write, say
from .knobs import current, declared, load
from .locks import gc_tmp
from .storage import vms_root

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every call
if TYPE_CHECKING:
    from typing import Any

    from .files import Json

    ArgSpec = tuple[tuple[str, ...], dict[str, Any]]  # one add_argument call


class Parser(argparse.ArgumentParser):
    """argparse that fails like Swift ArgumentParser: message, usage, exit 64."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"Error: {message}\n{self.format_usage()}"
                         f"  See '{self.prog} --help' for more information.\n")
        sys.exit(EX_USAGE)


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def uint16(text: str) -> int:
    value = non_negative(text)
    if value > 0xFFFF:
        raise ValueError(text)
    return value


RUN_FLAGS = ("--no-graphics", "--graphics", "--suspendable", "--serial", "--no-audio",
             "--no-clipboard", "--recovery", "--vnc", "--vnc-experimental", "--net-softnet",
             "--net-host", "--capture-system-keys")
RUN_LISTS = ("--dir", "--disk", "--net-bridged")
RUN_OPTIONS = ("--serial-path", "--rosetta", "--net-softnet-allow")
FORMAT: Json = {"choices": ["text", "json"], "default": "text"}
ARGUMENTS: dict[str, list[ArgSpec]] = {  # subcommand -> add_argument calls
    "list": [(("--format",), FORMAT), (("--source",), {"choices": ["local", "oci"]}),
             (("-q", "--quiet"), {"action": "store_true"})],
    "get": [(("name",), {}), (("--format",), FORMAT)],
    "run": [(("name",), {}), *[((f,), {"action": "store_true"}) for f in RUN_FLAGS],
            *[((o,), {"action": "append", "default": []}) for o in RUN_LISTS],
            *[((o,), {}) for o in RUN_OPTIONS]],
    "stop": [(("name",), {}), (("-t", "--timeout"), {"type": non_negative, "default": 30})],
    "suspend": [(("name",), {})],
    "ip": [(("name",), {}), (("--wait",), {"type": non_negative, "default": 0}),
           (("--resolver",), {"choices": ["dhcp", "arp", "agent"], "default": "dhcp"})],
    "clone": [(("source_name",), {}), (("new_name",), {}),
              (("--insecure",), {"action": "store_true"}),
              (("--concurrency",), {"type": non_negative, "default": 4}),
              (("--prune-limit",), {"type": non_negative, "default": 100})],
    "delete": [(("names",), {"nargs": "+", "metavar": "name"})],
    "create": [(("name",), {}), (("--linux",), {"action": "store_true"}), (("--from-ipsw",), {}),
               (("--disk-size",), {"type": non_negative, "default": 50}),
               (("--disk-format",), {"choices": ["raw", "asif"], "default": "raw"})],
    "pull": [(("name",), {}), (("--insecure",), {"action": "store_true"}),
             (("--concurrency",), {"type": non_negative, "default": 4})],
    "set": [(("name",), {}), (("--cpu",), {"type": uint16}), (("--memory",), {"type": non_negative}),
            (("--display",), {}),
            (("--display-refit",), {"action": "store_const", "const": True}),
            (("--no-display-refit",), {"action": "store_const", "const": False,
                                       "dest": "display_refit"}),
            (("--random-mac",), {"action": "store_true"}),
            (("--random-serial",), {"action": "store_true"}),
            (("--disk",), {}), (("--disk-size",), {"type": uint16})],
    "rename": [(("name",), {}), (("new_name",), {})],
    "exec": [(("-i",), {"action": "store_true"}), (("-t",), {"action": "store_true"}),
             (("name",), {}), (("program",), {"metavar": "command"}),
             (("args",), {"nargs": argparse.REMAINDER, "metavar": "arg"})],
    "prune": [(("--entries",), {"default": "caches"}),
              (("--older-than",), {"type": non_negative}),
              (("--space-budget",), {"type": non_negative})],
}


SUMMARIES = {  # subcommand -> its line in --help
    "list": "list local VMs and cached OCI images",
    "get": "show a local VM's settings and state",
    "run": "run a VM, blocking for its whole life (SIGINT stops it, SIGUSR1 suspends it)",
    "stop": "stop a running VM (SIGKILL after --timeout); discard a suspended state",
    "suspend": "suspend a VM run with --suspendable",
    "ip": "print a running VM's IP address (--wait S for it to boot)",
    "clone": "copy a local VM or an OCI image (pulled first) to a new local VM; replaces NEW",
    "delete": "delete local VMs (not a running one) or cached OCI images",
    "create": "create an empty local VM (--linux or --from-ipsw)",
    "pull": "pull an OCI image of the built-in registry into the cache, with progress",
    "set": "change a local VM's CPUs, memory, display, MAC, serial, disk size (grow only)",
    "rename": "rename a local VM",
    "exec": "run a command in a running VM through its guest agent (-i: stdin, -t: terminal)",
    "prune": "remove least recently accessed cached images (or --entries vms)",
}


def build_parser(only: str | None = None) -> Parser:
    """The command tree; `run` also accepts Tart's flags it doesn't model. ``only``: with
    that subcommand alone (what a call of it parses the same way, at a fraction of the cost)."""
    knobs = "\n".join(f"  {knob.shown:<30}{knob.help}" for knob in declared())
    p = Parser(prog="tart", description="Tart simulator (VMs are simulated).",
               epilog=f"environment:\n{knobs}",
               formatter_class=argparse.RawDescriptionHelpFormatter)
    version = current().version
    p.add_argument("--version", action="version", version=version)
    sub = p.add_subparsers(dest="command", metavar="<subcommand>")
    for command, arguments in ARGUMENTS.items():
        if only is not None and command != only:
            continue
        s = sub.add_parser(command, help=SUMMARIES[command])
        for names, options in arguments:
            s.add_argument(*names, **options)
    return p


# subcommand -> the module of this package that runs it, and its function there: imported
# when it runs, so a call loads only what its command needs (Tart is one native binary that
# starts in milliseconds; a `tart list` that imported every command took twice as long)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("listing", "cmd_list"), "get": ("listing", "cmd_get"), "ip": ("listing", "cmd_ip"),
    "run": ("power", "cmd_run"), "stop": ("power", "cmd_stop"),
    "suspend": ("power", "cmd_suspend"), "clone": ("lifecycle", "cmd_clone"),
    "delete": ("lifecycle", "cmd_delete"), "create": ("lifecycle", "cmd_create"),
    "pull": ("lifecycle", "cmd_pull"), "set": ("lifecycle", "cmd_set"),
    "rename": ("lifecycle", "cmd_rename"), "prune": ("lifecycle", "cmd_prune"),
    "exec": ("agent", "cmd_exec"),
}


def command_function(command: str) -> Callable[[argparse.Namespace], int]:
    module, name = COMMANDS[command]
    found: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f".{module}", __package__), name)
    return found


def subcommand_of(argv: list[str]) -> str:
    """The subcommand name the fault knobs match, before argparse sees argv."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return "version" if "--version" in argv else ""


def log_call(argv: list[str], started: float, end: str) -> None:
    """TART_SIM_CALL_LOG: one O_APPEND write per line, so lines never interleave."""
    path = current().call_log
    if not path:
        return
    line = f"{os.getpid()} {started:.6f} {end} {shlex.join(argv)}\n".encode()
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def hang_with_a_child(pid_file: Path) -> None:
    """Fork a child that hangs until killed; the parent records its pid and returns."""
    child = os.fork()
    if child == 0:
        try:
            while True:
                time.sleep(3600)
        finally:
            os._exit(0)  # never run the parent's exit path (call log) in the child
    atomic_write(pid_file, f"{child}\n")


def maybe_seed() -> None:
    """TART_SIM_SEED=demo: the first call makes the demo VMs (only then is the registry,
    a heavy module, imported)."""
    if current().seed == "demo" and not vms_root().exists():
        importlib.import_module(".registry", __package__).seed_demo()


def dispatch(argv: list[str]) -> int:
    """Apply the global knobs, then parse and run one subcommand."""
    command = subcommand_of(argv)
    knobs = current()
    time.sleep(max(0.0, knobs.delay))
    maybe_seed()
    if knobs.listed(knobs.hang, command):
        pid_file = knobs.hang_child
        if pid_file:
            hang_with_a_child(Path(pid_file))
        while True:  # until killed
            time.sleep(3600)
    if knobs.listed(knobs.garbage, command):
        say("tart-sim: <<garbage>> this is not JSON {{{ ]] \x01")
        return 0
    parser = build_parser(command if command in ARGUMENTS else None)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "run":  # run tolerates flags it doesn't model
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 0
    if args.command not in ("pull", "clone"):  # as Tart: those two may own tmp/ entries
        gc_tmp()
    return command_function(args.command)(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point: Tart-style error reporting and the optional call log."""
    argv = sys.argv[1:] if argv is None else argv
    load(os.environ)
    started = time.time()
    log_call(argv, started, "start")
    try:
        return dispatch(argv)
    except TartError as e:
        say(str(e), err=True)
        return e.code
    except KeyboardInterrupt:
        return 130
    finally:
        log_call(argv, started, f"{time.time():.6f}")
