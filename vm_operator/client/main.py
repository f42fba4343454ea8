"""``vm-operator COMMAND …``: the command line of the client, its settings and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from vm_operator.client import commands, events, manage
from vm_operator.client.commands import Command, console_for, seconds
from vm_operator.client.http import (
    DEFAULT_URL,
    BadUrl,
    Client,
    ClientError,
    TimedOut,
    Unreachable,
    check_base_url,
)

ORDER = ("vms", "get", "create", "start", "stop", "suspend", "delete", "set", "ip", "logs",
         "events", "images", "ops", "host", "health")
TABLE: tuple[Command, ...] = tuple(sorted(
    commands.TABLE + manage.TABLE + events.TABLE,
    key=lambda command: ORDER.index(command.name) if command.name in ORDER else len(ORDER)))
COMMANDS: frozenset[str] = frozenset(command.name for command in TABLE)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

TOKEN_MAX = 4096
REQUEST_TIMEOUT = 60.0

EPILOG = """\
the server and the token:
  --url or VM_OPERATOR_URL (default http://127.0.0.1:8082). The token, when the operator has
  one, from --token-file FILE, VM_OPERATOR_TOKEN_FILE or VM_OPERATOR_TOKEN, never from the
  command line. No proxy (http_proxy is ignored) and no redirects: the token goes to --url only.

exit codes:
  0    done
  1    refused by the server: its problem detail and status on stderr (with --json the
       problem document on stdout); or a followed operation failed or was cancelled
  2    usage: a bad command line, URL or token setting
  3    unreachable: connection refused or broken, DNS, TLS, or an answer that is not
       vm-operator's
  4    timed out: no answer within the request timeout, or the server's own 504 (Tart, the
       VM's start or its readiness did not finish in time), also as a followed operation's
  130  interrupted (Ctrl-C); a followed operation goes on (ops cancel ID cancels it)
"""


class UsageError(Exception):
    """A setting the client cannot use (exit 2). The message never holds a token."""


# --- exit codes (pure) --------------------------------------------------------------------------


def exit_code(exc: BaseException) -> int:
    """The exit code of the failure ``exc``."""
    if isinstance(exc, ClientError):
        return EXIT_TIMEOUT if exc.status == 504 else EXIT_REFUSED
    if isinstance(exc, TimedOut):
        return EXIT_TIMEOUT
    if isinstance(exc, Unreachable):
        return EXIT_UNREACHABLE
    if isinstance(exc, UsageError | BadUrl):
        return EXIT_USAGE
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    raise TypeError(f"no exit code for {type(exc).__name__}")


def failure_message(exc: BaseException) -> str:
    """The stderr line for a failure (the caller makes it safe to print)."""
    if isinstance(exc, ClientError):
        return f"{exc.status} {exc.problem.slug}: {exc.problem.detail}"
    if isinstance(exc, TimedOut):
        return f"timed out: {exc} (see --request-timeout)"
    return str(exc)


# --- settings ----------------------------------------------------------------------------------


def server_url(flag: str | None, env: Mapping[str, str]) -> str:
    """``--url``, else ``VM_OPERATOR_URL`` (empty counts as unset), else the default."""
    url = flag if flag is not None else (env.get("VM_OPERATOR_URL") or DEFAULT_URL)
    try:
        return check_base_url(url)
    except BadUrl as exc:
        where = "--url" if flag is not None else ("VM_OPERATOR_URL" if url != DEFAULT_URL
                                                  else "the default URL")
        raise UsageError(f"{where}: {exc}") from None


def _check_token(token: str, where: str) -> str:
    token = token.strip()
    if not token:
        raise UsageError(f"{where} is empty; leave it unset when the operator has no token")
    if len(token) > TOKEN_MAX or "\n" in token:
        raise UsageError(f"{where} must hold the token alone, on one line")
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise UsageError(f"{where}: a token is printable ASCII without spaces")
    return token


def _token_from_file(path: str, where: str) -> str:
    if not path:
        raise UsageError(f"{where} is empty: name the file that holds the token")
    label = f"{where} ({path})"
    try:
        with open(path, "rb") as handle:
            data = handle.read(TOKEN_MAX + 2)
    except OSError as exc:
        raise UsageError(f"cannot read {label}: {exc.strerror or exc}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise UsageError(f"{label} is not a token: printable ASCII expected") from None
    return _check_token(text, label)


def read_token(flag_file: str | None, env: Mapping[str, str]) -> str | None:
    """The bearer token: ``--token-file`` wins; else ``VM_OPERATOR_TOKEN_FILE`` or
    ``VM_OPERATOR_TOKEN`` (one of them: both set is an error, as for the server); else none.
    A token that is set but empty or unreadable is an error, never "no token"."""
    if flag_file is not None:
        return _token_from_file(flag_file, "--token-file")
    if "VM_OPERATOR_TOKEN_FILE" in env and "VM_OPERATOR_TOKEN" in env:
        raise UsageError("set VM_OPERATOR_TOKEN or VM_OPERATOR_TOKEN_FILE, not both")
    if "VM_OPERATOR_TOKEN_FILE" in env:
        return _token_from_file(env["VM_OPERATOR_TOKEN_FILE"], "VM_OPERATOR_TOKEN_FILE")
    if "VM_OPERATOR_TOKEN" in env:
        return _check_token(env["VM_OPERATOR_TOKEN"], "VM_OPERATOR_TOKEN")
    return None


def token_on_command_line(argv: Sequence[str]) -> bool:
    """Whether someone tried to pass a token as an argument: ``--token X``, ``--token=X`` or
    a shortening such as ``--tok=X`` (argparse would echo the value in its error)."""
    for arg in argv:
        if arg == "--":
            return False
        option = arg.split("=", 1)[0]
        if option.startswith("--tok") and option != "--token-file":
            return True
    return False


# --- the parser ---------------------------------------------------------------------------------


def _add_common(parser: argparse.ArgumentParser, command: Command, action: bool = False) -> None:
    """The options every command takes. An action's (``images pull --url …``) have no
    defaults of their own, so the same option given before the action still counts."""
    unset = argparse.SUPPRESS if action else None
    group = parser.add_argument_group("server")
    group.add_argument("--url", metavar="URL", default=unset,
                       help=f"the operator (default: VM_OPERATOR_URL, else {DEFAULT_URL})")
    group.add_argument("--token-file", metavar="FILE", default=unset,
                       help="read the bearer token from FILE (default: VM_OPERATOR_TOKEN_FILE, "
                       "else VM_OPERATOR_TOKEN; there is no --token)")
    group.add_argument("--request-timeout", type=seconds(0.1, 3600),
                       default=argparse.SUPPRESS if action else REQUEST_TIMEOUT,
                       metavar="SECONDS",
                       help=f"give up on an answer after SECONDS (default {REQUEST_TIMEOUT:g}; "
                       "stop --timeout, ip --wait and start --timeout add theirs)")
    if command.json:
        parser.add_argument("--json", action="store_true", default=unset or False,
                            help="print the server's JSON as it came (for scripts)")


def _add_command(sub: Any, command: Command, action: bool = False) -> None:
    child = sub.add_parser(command.name, help=command.summary, description=command.summary,
                           allow_abbrev=False, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    command.arguments(child)
    _add_common(child, command, action)
    child.set_defaults(entry=command)
    if command.actions:
        actions = child.add_subparsers(dest="action", metavar="ACTION")
        for each in command.actions:
            _add_command(actions, each, action=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vm-operator", allow_abbrev=False, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The command-line client of vm-operator: talks to a running operator "
        "over its HTTP API. People get tables, scripts get --json. Options follow the "
        "command: vm-operator COMMAND --help lists them.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in TABLE:
        _add_command(sub, command)
    return parser


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run one client command; returns the exit code (see EPILOG)."""
    words = sys.argv[1:] if argv is None else list(argv)
    environ = dict(os.environ) if env is None else dict(env)
    stdout = sys.stdout if out is None else out
    stderr = sys.stderr if err is None else err
    if token_on_command_line(words):  # refused before argparse, which would echo the value
        stderr.write("vm-operator: there is no --token option: a token on the command line is "
                     "seen by every user of this machine (ps) and kept in shell history; use "
                     "--token-file FILE, VM_OPERATOR_TOKEN_FILE or VM_OPERATOR_TOKEN\n")
        return EXIT_USAGE
    try:
        args = build_parser().parse_args(words)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    console = console_for(stdout, stderr, environ)
    console.json = bool(getattr(args, "json", False))
    command: Command = args.entry
    try:
        client = Client(server_url(args.url, environ), read_token(args.token_file, environ),
                        args.request_timeout)
        return command.run(client, args, console)
    except (ClientError, Unreachable, TimedOut, UsageError, BadUrl) as exc:
        if isinstance(exc, ClientError) and console.json:
            console.body(exc.body)
        console.note(failure_message(exc))
        return exit_code(exc)
    except KeyboardInterrupt:
        stdout.flush()
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        _silence(stdout)
        return EXIT_OK


def _silence(stream: TextIO) -> None:
    """After a broken pipe: point stdout at /dev/null so the exit flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError):
        pass
