"""Tart on another machine, over SSH: how a container reaches the Tart of its Mac host.

Tart is a macOS program; Docker on a Mac runs containers inside a Linux VM, where a
mounted ``tart`` binary cannot execute. With ``VM_OPERATOR_TART_SSH=user@host`` every
Tart call becomes one ``ssh`` call to that host instead: the same ``TartRunner`` (same
timeouts, same errors), only ``argv`` differs.

Safety of the remote command line. ``ssh`` hands the remote login shell ONE string. That
string is built here from words, every one passed through ``shlex.quote``; the logic that
runs remotely is a fixed ``/bin/sh -c`` script (constant text, below) and every value (VM
names, paths, Tart's arguments) reaches it as a positional parameter, never as script text.
A VM name therefore can never become a command.

Failures of ``ssh`` itself (exit 255: refused, timed out, host key mismatch, key refused)
become a ``TartTransportError`` that says which, mapped to 502/503 in ``errors.py``;
``BatchMode=yes`` and ``ConnectTimeout`` make sure nothing ever waits for a prompt or a
dead host.

``tart run`` on the host: one ssh call starts it under ``nohup``, detached from the SSH
session, its output to ``~/.vm-operator/logs/<percent-encoded name>.log`` on the host and its
exit code, when it ends, to ``<that>.exit``; the call returns the remote PID at once (the
logs of earlier runs are kept as ``<that>.1`` ... ``<that>.3``). A
waiter (bounded ssh calls polling on the host) learns when it has ended and with what code,
which is what the start confirmation and the reaper in ``vms.py`` need; a restarted operator
waits the same way on a run an earlier one launched, and learns its real exit code from the
``.exit`` file. ``GET .../logs`` reads the log's size and its last bytes back with ``wc -c``
and ``tail -c`` (bounded), and cuts them to lines here (``state.cut_tail``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from vm_operator.launcher import Launcher, LocalLauncher
from vm_operator.state import (
    LOG_GENERATIONS,
    LOG_TAIL_BYTES,
    LogTail,
    RunRecord,
    StateStore,
    cut_tail,
    last_line,
)
from vm_operator.tart import (
    Observer,
    TartCommandError,
    TartError,
    TartRunner,
    TartUnavailable,
    _no_observer,
)

DEFAULT_CONNECT_TIMEOUT = 5
REMOTE_LOG_DIR = ".vm-operator/logs"  # relative to the remote user's home
# Where Homebrew puts tart. `ssh host cmd` runs a NON-login shell, whose PATH on macOS is
# /usr/bin:/bin:/usr/sbin:/sbin: appended (never prepended) so that a plain `tart` resolves.
REMOTE_PATH_EXTRA = "/opt/homebrew/bin:/usr/local/bin"
WAIT_DELAY = 0.2  # seconds between two looks at the remote run, on the host
WAIT_TICKS = 300  # looks per waiter ssh call: one connection per minute per running VM
LOG_MISSING = 3  # exit code of LOG_SCRIPT when the run log does not exist

_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")
_SAFE_PATH = re.compile(r"[\w./@+,:= ~-]+")

# --- the remote scripts: constant text; every value comes in as "$1", "$2", ... ---------

_PATH_SETUP = f'PATH="$PATH:{REMOTE_PATH_EXTRA}"; export PATH; '
_NEED_TART = (
    'command -v "$1" >/dev/null 2>&1 || '
    '{ echo "vm-operator: $1: not found on this host (PATH=$PATH)" >&2; exit 127; }; '
)

# sh -c TART_SCRIPT vm-operator TART ARGS...: run Tart.
TART_SCRIPT = _PATH_SETUP + _NEED_TART + 'exec "$@"'

# sh -c LAUNCH_SCRIPT vm-operator LOG TART run ... NAME: start `tart run` detached from this
# SSH session (nohup, every stdio redirected, background), its output to LOG; when it ends,
# its exit code goes to LOG.exit (written atomically). The logs of earlier runs move to
# LOG.1 ... LOG.<LOG_GENERATIONS> first. Prints the PID of the wrapper.
_RUN_WRAPPER = (
    '"$@"; code=$?; printf "%s\\n" "$code" >"$0.exit.tmp" && mv -f "$0.exit.tmp" "$0.exit"'
)
LAUNCH_SCRIPT = (
    _PATH_SETUP
    + 'log=$1; shift; '
    + _NEED_TART
    + "umask 077; cd || exit 1; "
    + 'mkdir -p "${log%/*}" || exit 1; '
    + f"i={LOG_GENERATIONS}; "
    + 'while [ "$i" -gt 1 ]; do j=$((i - 1)); '
    + 'if [ -f "$log.$j" ]; then mv -f "$log.$j" "$log.$i"; fi; i=$j; done; '
    + 'if [ -f "$log" ]; then mv -f "$log" "$log.1"; fi; '
    + 'rm -f "$log.exit" "$log.exit.tmp"; '
    + f"nohup /bin/sh -c {shlex.quote(_RUN_WRAPPER)} "
    + '"$log" "$@" </dev/null >"$log" 2>&1 & '
    + 'echo "$!"'
)

# sh -c WAIT_SCRIPT vm-operator LOG PID TICKS DELAY: once LOG.exit exists, its exit code then
# the log's tail (Tart's message, without another round trip); "gone" (then the tail) when the
# wrapper died without writing it; "running" after TICKS looks.
WAIT_SCRIPT = (
    'cd || exit 1; log=$1; pid=$2; ticks=$3; delay=$4; n=0; '
    'while [ ! -e "$log.exit" ]; do '
    'if ! kill -0 "$pid" 2>/dev/null; then '
    '[ -e "$log.exit" ] && break; echo gone; tail -c 8192 "$log" 2>/dev/null; exit 0; fi; '
    'if [ "$n" -ge "$ticks" ]; then echo running; exit 0; fi; '
    'n=$((n + 1)); sleep "$delay"; '
    'done; cat "$log.exit"; tail -c 8192 "$log" 2>/dev/null'
)

# sh -c LOG_SCRIPT vm-operator LOG BYTES: LOG's size on one line, then its last BYTES; exit 3
# when there is no LOG.
LOG_SCRIPT = f'cd || exit 1; [ -f "$1" ] || exit {LOG_MISSING}; wc -c <"$1"; tail -c "$2" "$1"'


# --- settings (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class SshSettings:
    """Where Tart runs, and how ssh must reach it."""

    destination: str  # user@host or host (an IPv6 address without brackets)
    port: int = 22
    key: str | None = None
    known_hosts: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT
    tart: str = "tart"  # the Tart binary on the remote host
    ssh: str = "ssh"  # the local OpenSSH client

    @property
    def label(self) -> str:
        """How messages name the host: ``user@host:port``."""
        return f"{self.destination}:{self.port}"


def parse_target(value: str, port: int | None = None) -> tuple[str, int]:
    """``user@host[:port]`` (IPv6 as ``user@[::1]:22``) -> (destination, port).

    A separate ``port`` (VM_OPERATOR_SSH_PORT) is used when the target names none; naming
    two different ports is an error. Raises ValueError with a message for the user.
    """
    text = value.strip()
    user, at, rest = text.rpartition("@")
    if at and not _USER.fullmatch(user):
        raise ValueError(f"the SSH user in {value!r} is not a plain user name")
    target_port: int | None = None
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not _IPV6.fullmatch(host) or ":" not in host:
            raise ValueError(f"{value!r} holds a malformed IPv6 address")
        if tail:
            if not tail.startswith(":"):
                raise ValueError(f"{value!r}: expected ':PORT' after the IPv6 address")
            target_port = _port(tail[1:], value)
    else:
        host, colon, tail = rest.partition(":")
        if colon:
            target_port = _port(tail, value)
        if not _HOST.fullmatch(host):
            raise ValueError(
                f"the SSH host in {value!r} is not a host name or address "
                "(expected user@host[:port])"
            )
    if target_port is not None and port is not None and target_port != port:
        raise ValueError(f"{value!r} names port {target_port} but the SSH port is set to {port}")
    chosen = target_port if target_port is not None else port if port is not None else 22
    return (f"{user}@{host}" if at else host), chosen


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"the SSH port in {value!r} is not a number from 1 to 65535")
    return int(text)


def checked_file(path: str | None, what: str) -> str | None:
    if not path:
        return None
    if not _SAFE_PATH.fullmatch(path):
        raise ValueError(
            f"the {what} path {path!r} holds characters ssh would interpret; "
            "use letters, digits, spaces and ./_-@+,:=~ only"
        )
    expanded = os.path.expanduser(path)
    if not os.path.isfile(expanded) or not os.access(expanded, os.R_OK):
        raise ValueError(f"the {what} {expanded!r} does not exist or is not readable")
    return os.path.abspath(expanded)


def ssh_settings(
    target: str,
    *,
    port: int | None = None,
    key: str | None = None,
    known_hosts: str | None = None,
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
    tart: str = "tart",
    ssh: str = "ssh",
) -> SshSettings:
    """Validate the transport settings (ValueError with a message for the user)."""
    destination, chosen = parse_target(target, port)
    if not tart or tart.startswith("-") or "\n" in tart:
        raise ValueError(f"the remote Tart binary {tart!r} is not a command name or path")
    if not 1 <= connect_timeout <= 600:
        raise ValueError("the SSH connect timeout must be from 1 to 600 seconds")
    return SshSettings(
        destination=destination,
        port=chosen,
        key=checked_file(key, "SSH key"),
        known_hosts=checked_file(known_hosts, "SSH known_hosts file"),
        connect_timeout=int(connect_timeout),
        tart=tart,
        ssh=ssh,
    )


# --- command lines (pure) -----------------------------------------------------------------


def remote_command(words: Sequence[str]) -> str:
    """The one string the remote shell parses: every word quoted, so each stays one word."""
    return " ".join(shlex.quote(word) for word in words)


def _option_path(path: str) -> str:
    # ssh splits -o values on whitespace and expands %-tokens: quote, and escape '%'.
    path = path.replace("%", "%%")
    return f'"{path}"' if any(ch.isspace() for ch in path) else path


def ssh_options(settings: SshSettings) -> list[str]:
    """Never prompt, never wait on a dead host, trust only the pinned host key."""
    options = [
        "-T",  # no TTY: no SIGHUP for what we leave running, no terminal escapes in output
        "-a",
        "-x",
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={settings.connect_timeout}",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UpdateHostKeys=no",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        "-o", "ServerAliveInterval=10",
        "-o", "ServerAliveCountMax=3",
        "-o", "LogLevel=ERROR",
        "-p", str(settings.port),
    ]
    if settings.known_hosts:
        options += [
            "-o", f"UserKnownHostsFile={_option_path(settings.known_hosts)}",
            "-o", "GlobalKnownHostsFile=/dev/null",
        ]
    if settings.key:
        options += ["-i", settings.key.replace("%", "%%"), "-o", "IdentitiesOnly=yes"]
    return options


def ssh_argv(settings: SshSettings, remote_args: Sequence[str]) -> list[str]:
    """``ssh OPTIONS -- DESTINATION 'word' 'word' ...`` as an argument list, the remote
    command as ONE string of quoted words."""
    return [settings.ssh, *ssh_options(settings), "--", settings.destination,
            remote_command(remote_args)]


def script_words(script: str, *args: str) -> list[str]:
    """``/bin/sh -c SCRIPT vm-operator ARGS...``: fixed script text, values as parameters."""
    return ["/bin/sh", "-c", script, "vm-operator", *args]


def tart_argv(settings: SshSettings, args: Sequence[str]) -> list[str]:
    return ssh_argv(settings, script_words(TART_SCRIPT, settings.tart, *args))


def remote_log_path(name: str) -> str:
    """The run log of ``name`` on the host, relative to the remote home."""
    encoded = quote(name, safe="")
    if len(encoded) > 200:  # stay well below NAME_MAX (255) with a stable, unique name
        encoded = f"{encoded[:150]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return f"{REMOTE_LOG_DIR}/{encoded}.log"


# --- ssh's own failures (pure) ------------------------------------------------------------


class TartTransportError(TartUnavailable):
    """ssh could not run Tart on the host; carries the HTTP problem a client should see."""

    def __init__(self, status: int, slug: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail


_UNREACHABLE = (
    "connection refused",
    "timed out",
    "no route to host",
    "network is unreachable",
    "could not resolve hostname",
    "name or service not known",
    "nodename nor servname",
    "connection reset",
    "connection closed",
    "kex_exchange_identification",
    "broken pipe",
)


def classify(settings: SshSettings, exc: TartCommandError) -> TartError:
    """Tell ssh's own failures (exit 255) and a missing remote Tart (126/127) from Tart's
    refusals, which pass through unchanged."""
    message = exc.message.strip()
    lowered = message.lower()
    where = settings.label
    if exc.exit_code in (126, 127):
        return TartTransportError(
            503, "tart-unavailable", "Tart is not available",
            f"Tart cannot be run on {where}: {message}. Point VM_OPERATOR_TART / --tart at "
            "Tart's path on that host (e.g. /opt/homebrew/bin/tart).",
        )
    if exc.exit_code != 255:
        return exc
    if "host key" in lowered or "host identification has changed" in lowered:
        pinned = settings.known_hosts or "~/.ssh/known_hosts"
        return TartTransportError(
            502, "ssh-host-key", "The Tart host's SSH host key does not match",
            f"ssh to {where} refused the host: {message} The key it presented is not the one "
            f"pinned in {pinned}. If the host was reinstalled, check its fingerprint and pin it "
            f"again (ssh-keyscan -p {settings.port} HOST).",
        )
    if "permission denied" in lowered or "too many authentication failures" in lowered:
        return TartTransportError(
            502, "ssh-auth-failed", "The Tart host refused the SSH key",
            f"ssh to {where}: {message} Add the operator's public key to that user's "
            "~/.ssh/authorized_keys (and check VM_OPERATOR_SSH_KEY).",
        )
    if any(needle in lowered for needle in _UNREACHABLE):
        return TartTransportError(
            503, "tart-host-unreachable", "The Tart host cannot be reached",
            f"ssh to {where} failed: {message} (is Remote Login on, and the host up?)",
        )
    return TartTransportError(
        502, "ssh-failed", "SSH to the Tart host failed", f"ssh to {where} failed: {message}"
    )


# --- running (shell) ---------------------------------------------------------------------


class RemoteCall(list[str]):
    """Arguments of a transport call that is not a Tart command: a label for messages, and
    the remote words to run instead."""

    def __init__(self, label: str, words: Sequence[str]) -> None:
        super().__init__([label])
        self.words = list(words)


@dataclass
class SshTartRunner(TartRunner):
    """A TartRunner whose every call runs ``tart`` on another host through ``ssh``."""

    settings: SshSettings = field(default_factory=lambda: SshSettings("localhost"))
    reachable: bool = True  # the last call got through (for health probes, never blocks)

    def argv(self, args: Sequence[str]) -> list[str]:
        if isinstance(args, RemoteCall):
            return ssh_argv(self.settings, args.words)
        return tart_argv(self.settings, args)

    def _run(self, args: Sequence[str], timeout: float) -> str:
        try:
            stdout = super()._run(args, timeout)
        except TartCommandError as exc:
            error = classify(self.settings, exc)
            self.reachable = not isinstance(error, TartTransportError)
            if error is exc:
                raise
            raise error from None
        except TartUnavailable:  # the local ssh client itself is missing
            self.reachable = False
            raise TartTransportError(
                503, "ssh-unavailable", "The ssh client is not available",
                f"VM_OPERATOR_TART_SSH is set but the ssh client {self.settings.ssh!r} cannot be "
                "run here: install OpenSSH's client (Debian: apt-get install openssh-client)",
            ) from None
        self.reachable = True
        return stdout

    def call(self, label: str, words: Sequence[str], timeout: float | None = None) -> str:
        """Run remote words (not a Tart command): same errors, no Tart metrics."""
        return self._run(RemoteCall(label, words), self.timeout if timeout is None else timeout)

    def launch(self, args: Sequence[str], log_path: str,
               keep_fds: Sequence[int] = ()) -> subprocess.Popen[bytes]:
        raise TypeError("over SSH, tart run is started by SshLauncher, on the host")

    def locate(self) -> tuple[str, bool]:
        path = f"ssh://{self.settings.label} {self.settings.tart}"
        return path, shutil.which(self.settings.ssh) is not None and self.reachable


@dataclass
class RemoteRun:
    """A ``tart run`` started on the host; ``wait`` blocks until it has ended there."""

    runner: SshTartRunner
    log: str
    pid: int
    name: str = ""
    ended: dict[str, str] = field(default_factory=dict)  # VM name -> last log line, once ended

    def wait(self) -> int | None:
        backoff = 1.0
        while True:
            try:
                answer = self.runner.call(
                    "wait",
                    script_words(WAIT_SCRIPT, self.log, str(self.pid), str(WAIT_TICKS),
                                 str(WAIT_DELAY)),
                    timeout=WAIT_TICKS * WAIT_DELAY * 2 + self.runner.timeout,
                )
            except TartError:  # host unreachable for now: it will come back, or never
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            status, _, tail = answer.partition("\n")
            if status.strip() == "running":
                continue
            self.ended[self.name] = last_line(tail)
            try:
                code = int(status)
            except ValueError:  # "gone": killed before it could write its exit code
                return None
            # sh reports "killed by signal N" as 128+N; Popen.wait() as -N: say it the same way.
            return -(code - 128) if 128 < code < 160 else code


@dataclass
class SshLauncher:
    """``tart run`` on the host, detached: survives the SSH session, output in a host file."""

    runner: SshTartRunner
    _ended: dict[str, str] = field(default_factory=dict)  # filled by RemoteRun.wait

    def launch(self, name: str, args: Sequence[str]) -> RemoteRun:
        self._ended.pop(name, None)
        log = remote_log_path(name)
        words = script_words(LAUNCH_SCRIPT, log, self.runner.settings.tart, *args)
        with self.runner.observed(args[0] if args else ""):  # counted like any Tart call
            out = self.runner.call("run", words)
            try:
                pid = int(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                where = self.runner.settings.label
                raise TartError(f"starting tart run on {where} printed no PID") from None
        return RemoteRun(self.runner, log, pid, name, self._ended)

    def adopt(self, name: str, record: RunRecord) -> RemoteRun:
        """A run an earlier operator launched: its waiter reads the same ``.exit`` file."""
        return RemoteRun(self.runner, remote_log_path(name), record["pid"], name, self._ended)

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        try:
            text = self.runner.call(
                "logs",
                script_words(LOG_SCRIPT, remote_log_path(name), str(LOG_TAIL_BYTES + 1)),
            )
        except TartCommandError as exc:
            if exc.exit_code == LOG_MISSING:
                return None
            raise
        return parse_log_answer(text, lines)

    def read_log(self, name: str) -> bytes | None:
        tail = self.tail_log(name)
        return None if tail is None else tail.data

    def last_log_line(self, name: str) -> str:
        ended = self._ended.get(name)
        if ended is not None:  # our run ended: its waiter brought the tail along
            return ended
        try:
            data = self.read_log(name) or b""
        except TartError:
            return ""
        return last_line(data[-8192:].decode("utf-8", errors="replace"))


def parse_log_answer(text: str, lines: int | None = None) -> LogTail:
    """LOG_SCRIPT's answer (the size, then the log's last bytes) as a LogTail."""
    size_line, _, data = text.partition("\n")
    chunk = data.encode("utf-8", errors="replace")
    try:
        size = int(size_line.strip())
    except ValueError:
        raise TartError("reading the run log on the Tart host printed no size") from None
    return cut_tail(chunk, max(size, len(chunk)), lines)


def build_transport(
    ssh: SshSettings | None,
    tart: str,
    env: Mapping[str, str],
    timeout: float,
    store: StateStore,
    observe: Observer = _no_observer,
) -> tuple[TartRunner, Launcher]:
    """The runner and launcher for the configured transport: local Tart, or Tart over SSH."""
    if ssh is None:
        runner = TartRunner(tart, env, timeout, observe)
        return runner, LocalLauncher(runner, store)
    ssh_runner = SshTartRunner(ssh.ssh, env, timeout, observe, settings=ssh)
    return ssh_runner, SshLauncher(ssh_runner)


def describe(settings: SshSettings | None) -> dict[str, Any]:
    """For the startup log line."""
    if settings is None:
        return {"transport": "local"}
    return {"transport": "ssh", "tart_host": settings.label, "remote_tart": settings.tart}
