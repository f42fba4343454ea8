"""``vm-operator COMMAND …``: the command line of the client, its settings and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from vm_operator.client import commands, events, guest, manage, render, tunnel
from vm_operator.client.commands import Command, seconds
from vm_operator.client.console import console_for
from vm_operator.client.http import DEFAULT_URL, Client, ClientError, TimedOut, Unreachable
from vm_operator.client.tls import FLAGS as TLS_FLAGS
from vm_operator.client.tls import TlsOptions, TlsSettingError, add_options, tls_options
from vm_operator.client.urls import BadUrl, check_base_url
from vm_operator.command_line import GROUPS, HELP, Topic, command_index

TABLE: tuple[Command, ...] = tuple(sorted(  # grouped as help lists them, in declaration order
    commands.TABLE + guest.TABLE + manage.TABLE + tunnel.TABLE + events.TABLE,
    key=lambda command: GROUPS.index(command.group)))
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
  An https:// URL trusts the system's CAs, --ca-file FILE or a pinned --fingerprint sha256:HEX
  (checked before anything is sent); --client-cert/--client-key for mutual TLS.

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
  exec and run: the guest command's exit code once it ran
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


def client_tls(args: argparse.Namespace, env: Mapping[str, str], url: str) -> TlsOptions | None:
    """The TLS options from the flags (each --name's value in ``args``) or their variables."""
    given = {flag: getattr(args, flag[2:].replace("-", "_"), None) for flag in TLS_FLAGS}
    try:
        return tls_options(given, env, url)
    except TlsSettingError as exc:
        raise UsageError(str(exc)) from None


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


# --- help: every command, grouped (pure) ---------------------------------------------------------


def topics(table: Sequence[Command]) -> list[Topic]:
    """The overview's lines of the client's commands and their actions."""
    found = []
    for command in table:
        found.append(Topic(command.name, command.summary, command.group))
        found.extend(Topic(f"{command.name} {action.name}", action.summary, command.group)
                     for action in command.actions)
    return found


OVERVIEW_WIDTH = 100


def overview(listed: Sequence[Topic], width: int = OVERVIEW_WIDTH) -> str:
    """Every command, under the title of its group, in the order of GROUPS (a group without
    commands is left out), each summary wrapped and aligned after the longest name."""
    room = max((len(topic.name) for topic in listed), default=0) + 4
    blocks = []
    for group in GROUPS:
        members = [topic for topic in listed if topic.group == group]
        if not members:
            continue
        lines = [f"{group}:"]
        for topic in members:
            lines.extend(textwrap.wrap(topic.summary, width, initial_indent="  " + topic.name
                                       .ljust(room - 2), subsequent_indent=" " * room))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --- the parser ---------------------------------------------------------------------------------

def server_options(group: Any, top: bool, token_note: str) -> None:
    """--url and --token-file: which operator, and the token it is asked with (also
    ``vm-operator plan``'s; ``token_note`` ends the token's help)."""
    group.add_argument("--url", metavar="URL", default=None if top else argparse.SUPPRESS,
                       help=f"the operator (default: VM_OPERATOR_URL, else {DEFAULT_URL})")
    group.add_argument("--token-file", metavar="FILE", default=None if top else argparse.SUPPRESS,
                       help="read the bearer token from FILE (default: VM_OPERATOR_TOKEN_FILE, "
                       f"else VM_OPERATOR_TOKEN; {token_note})")


def _add_common(parser: argparse.ArgumentParser, command: Command | None) -> None:
    """The options every command takes, before or after the command: the top-level parser
    (``command`` None) holds their defaults; a command's (and an action's, ``images pull
    --url …``) have none of their own, so the same option given earlier still counts."""
    top = command is None
    group = parser.add_argument_group("client options (before or after the command)" if top
                                      else "server")
    server_options(group, top, "there is no --token")
    group.add_argument("--request-timeout", type=seconds(0.1, 3600),
                       default=REQUEST_TIMEOUT if top else argparse.SUPPRESS,
                       metavar="SECONDS",
                       help=f"give up on an answer after SECONDS (default {REQUEST_TIMEOUT:g}; "
                       "stop --timeout, ip --wait and start --timeout add theirs)")
    add_options(group, top)
    if command is None or command.json:
        group.add_argument("--json", action="store_true",
                           default=False if top else argparse.SUPPRESS,
                           help="print the server's JSON as it came (for scripts)"
                           + ("; the commands that print JSON" if top else ""))


def _add_command(sub: Any, command: Command) -> None:
    child = sub.add_parser(command.name, help=command.summary, description=command.summary,
                           allow_abbrev=False, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    command.arguments(child)
    _add_common(child, command)
    child.set_defaults(entry=command)
    if command.actions:
        actions = child.add_subparsers(dest="action", metavar="ACTION")
        for each in command.actions:
            _add_command(actions, each)


USAGE = "vm-operator [OPTIONS] COMMAND [ARGUMENTS]\n       vm-operator help [COMMAND]"


def describe(extra: Sequence[Topic] = ()) -> str:
    """The top-level help's text before the options: what it is, and every command."""
    about = ("The command line of vm-operator. As a client it talks to a running operator over "
             "its HTTP API: people get tables, scripts get --json. 'vm-operator help COMMAND' "
             "(or COMMAND --help) tells more of one.")
    return textwrap.fill(about, OVERVIEW_WIDTH) + "\n\n" + overview([*extra, *topics(TABLE)])


def build_parser(extra: Sequence[Topic] = ()) -> argparse.ArgumentParser:
    """The client's parser; its help lists ``extra`` (the commands of ``vm-operator`` that
    are not the client's: serve, plan, launchd) with the client's own, grouped."""
    parser = argparse.ArgumentParser(
        prog="vm-operator", usage=USAGE, allow_abbrev=False, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter, description=describe(extra))
    _add_common(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                help=argparse.SUPPRESS, prog="vm-operator")
    for command in TABLE:
        _add_command(sub, command)
    return parser


def _find(name: str) -> Command | None:
    return next((command for command in TABLE if command.name == name), None)


def help_words(topic: Sequence[str]) -> list[str] | None:
    """The words that print the help of ``help TOPIC…``: ``--help`` alone for the overview,
    ``get --help``, ``images pull --help``; None when there is no such command."""
    if not topic:
        return ["--help"]
    command = _find(topic[0])
    if command is None:
        return None
    if len(topic) > 1 and any(action.name == topic[1] for action in command.actions):
        return [topic[0], topic[1], "--help"]
    return [topic[0], "--help"] if len(topic) == 1 else None


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None,
         out: TextIO | None = None, err: TextIO | None = None,
         extra: Sequence[Topic] = ()) -> int:
    """Run one client command; returns the exit code (see EPILOG). The top-level help (and
    ``help``) lists ``extra`` too: the commands of ``vm-operator`` that are not the client's."""
    words = sys.argv[1:] if argv is None else list(argv)
    environ = dict(os.environ) if env is None else dict(env)
    stdout = sys.stdout if out is None else out
    stderr = sys.stderr if err is None else err
    if token_on_command_line(words):  # refused before argparse, which would echo the value
        stderr.write("vm-operator: there is no --token option: a token on the command line is "
                     "seen by every user of this machine (ps) and kept in shell history; use "
                     "--token-file FILE, VM_OPERATOR_TOKEN_FILE or VM_OPERATOR_TOKEN\n")
        return EXIT_USAGE
    at = command_index(words)
    if at is not None and words[at] == HELP:  # help [COMMAND [ACTION]]
        asked = help_words(words[at + 1:])
        if asked is None:
            stderr.write(f"vm-operator: no command '{render.safe(' '.join(words[at + 1:]))}'; "
                         "'vm-operator help' lists them\n")
            return EXIT_USAGE
        words = asked
    elif at is not None and words[at] not in COMMANDS:
        stderr.write(f"vm-operator: no command '{render.safe(words[at])}'; 'vm-operator help' "
                     "lists them\n")
        return EXIT_USAGE
    try:
        args = build_parser(extra).parse_args(words)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    console = console_for(stdout, stderr, environ)
    command: Command = args.entry
    if args.json and not command.json:  # --json given before a command that prints text
        stderr.write(f"vm-operator: {command.name} prints text: it takes no --json\n")
        return EXIT_USAGE
    console.json = args.json
    try:
        url = server_url(args.url, environ)
        client = Client(url, read_token(args.token_file, environ), args.request_timeout,
                        client_tls(args, environ, url))
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
