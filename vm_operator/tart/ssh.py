"""Tart on another machine, over SSH: how a container reaches the Tart of its Mac host.

Tart is a macOS program; Docker on a Mac runs containers inside a Linux VM, where a
mounted ``tart`` binary cannot execute. With ``VM_OPERATOR_TART_SSH=user@host`` every
Tart call becomes one ``ssh`` call to that host instead (the command lines are built in
``ssh_commands``): same timeouts, same errors as the local transport.

Failures of ``ssh`` itself (exit 255: refused, timed out, host key mismatch, key refused)
and a missing remote Tart (126/127) become a ``TransportError`` that says which.

``tart run`` on the host: one ssh call starts it under ``nohup``, detached from the SSH
session, its output to ``~/.vm-operator/logs/<percent-encoded name>.log`` on the host and its
exit code, when it ends, to ``<that>.exit``; the call returns the remote PID at once (the
logs of earlier runs are kept as ``<that>.1`` ... ``<that>.3``). A waiter (``RemoteRun``:
bounded ssh calls polling on the host) learns when it has ended and with what code, which is
what the start confirmation and the reaper of the core need; a restarted operator waits the
same way on a run an earlier one launched, and learns its real exit code from the ``.exit``
file. The run log's size and its last bytes are read back with ``wc -c`` and ``tail -c``
(bounded), and cut to lines here (``state.cut_tail``).

One connection, many calls: every short call (Tart's, the waiters', the log reads) goes
through one multiplexed SSH connection (OpenSSH ``ControlMaster=auto``), so that it costs a
round trip, not a login. Its control socket lives in a directory only the operator can
enter (``mkdtemp``: 0700), made at the first call and short enough for a Unix socket path
(104 bytes on macOS). A call that finds no master answering there first opens one, one call
at a time (``ssh … true``, which becomes the master: ssh moves it to the background with its
stdio on /dev/null, so that call's own pipes end with it and it returns at once); calls made
together would each log in otherwise. A master that dies (killed, or its connection dropped:
ServerAlive) leaves a stale socket, which the next opening removes. ``close``
(at shutdown) ends the master with ``ssh -O exit`` and removes the directory; a master left
by a killed operator ends by itself ``ControlPersist`` seconds after its last call. Streams
(clone, pull) and execs (``ssh_exec``) keep a connection of their own: killing their ssh must
end the remote Tart.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from vm_operator.store.state import LOG_TAIL_BYTES, LogTail, last_line
from vm_operator.tart.errors import (
    RemoteTartUnavailable,
    SshAuthFailed,
    SshFailed,
    SshHostKeyMismatch,
    SshUnavailable,
    TartCommandError,
    TartError,
    TartHostUnreachable,
    TartUnavailable,
    TransportError,
)
from vm_operator.tart.exec_stream import ExecStream
from vm_operator.tart.identity import IDENTITY_MISSING, IDENTITY_SCRIPT, parse_identity
from vm_operator.tart.local import run_captured
from vm_operator.tart.parse import parse_disk
from vm_operator.tart.probe import checked_target
from vm_operator.tart.records import ExecResult, HostDisk
from vm_operator.tart.ssh_commands import (
    DISK_SCRIPT,
    FORGET_SCRIPT,
    LAUNCH_SCRIPT,
    LOG_MISSING,
    LOG_SCRIPT,
    PROBE_SCRIPT,
    STREAM_SCRIPT,
    WAIT_DELAY,
    WAIT_SCRIPT,
    WAIT_TICKS,
    control_argv,
    forward_argv,
    parse_log_answer,
    remote_log_path,
    script_words,
    ssh_argv,
    tart_argv,
)
from vm_operator.tart.ssh_exec import exec_over_ssh, exec_stream_over_ssh
from vm_operator.tart.ssh_settings import SshSettings
from vm_operator.tart.streaming import run_streaming
from vm_operator.tart.transport import Observer, OutputSink, StartedSink, no_observer, observed
from vm_operator.tart.tunnel import CONNECT_TIMEOUT, GuestPipe, open_process, refused

T = TypeVar("T")

log = logging.getLogger(__name__)

CONTROL_SOCKET = "mux"  # the shared connection's socket, in the transport's private directory
# A Unix socket path holds at most 104 bytes on macOS (108 on Linux); while it binds, ssh uses
# the path plus 17 characters.
MAX_CONTROL_PATH = 104 - 1 - 17

_UNREACHABLE = (
    "connection refused", "timed out", "no route to host", "network is unreachable",
    "could not resolve hostname", "name or service not known", "nodename nor servname",
    "connection reset", "connection closed", "kex_exchange_identification", "broken pipe",
)


def classify(settings: SshSettings, exc: TartCommandError) -> TartError:
    """Tell ssh's own failures (exit 255) and a missing remote Tart (126/127) from Tart's
    refusals, which pass through unchanged."""
    message = exc.message.strip()
    lowered = message.lower()
    where = settings.label
    if exc.exit_code in (126, 127):
        return RemoteTartUnavailable(
            f"Tart cannot be run on {where}: {message}. Point VM_OPERATOR_TART / --tart at "
            "Tart's path on that host (e.g. /opt/homebrew/bin/tart)."
        )
    if exc.exit_code != 255:
        return exc
    if "host key" in lowered or "host identification has changed" in lowered:
        pinned = settings.known_hosts or "~/.ssh/known_hosts"
        return SshHostKeyMismatch(
            f"ssh to {where} refused the host: {message} The key it presented is not the one "
            f"pinned in {pinned}. If the host was reinstalled, check its fingerprint and pin it "
            f"again (ssh-keyscan -p {settings.port} HOST)."
        )
    if "permission denied" in lowered or "too many authentication failures" in lowered:
        return SshAuthFailed(
            f"ssh to {where}: {message} Add the operator's public key to that user's "
            "~/.ssh/authorized_keys (and check VM_OPERATOR_SSH_KEY)."
        )
    if any(needle in lowered for needle in _UNREACHABLE):
        return TartHostUnreachable(
            f"ssh to {where} failed: {message} (is Remote Login on, and the host up?)"
        )
    return SshFailed(f"ssh to {where} failed: {message}")


@dataclass
class SshTransport:
    """Every Tart call runs ``tart`` on another host through ``ssh``; ``tart run`` runs there
    detached, and survives the SSH session, with its output in a file on the host."""

    settings: SshSettings
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    timeout: float = 10.0
    observe: Observer = no_observer
    reachable: bool = True  # the last call got through (for health probes, never blocks)
    multiplex: bool = True  # share one connection between calls (False: a login per call)
    _ended: dict[str, str] = field(default_factory=dict)  # VM name -> last log line, once ended
    _control_dir: str | None = field(default=None, init=False, repr=False)
    _control_lock: threading.Lock = field(default_factory=threading.Lock, init=False,
                                          repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    _opening: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def call(self, args: Sequence[str], timeout: float | None = None) -> str:
        label = args[0] if args else ""
        with observed(self.observe, label):
            return self._ssh(tart_argv(self.settings, args, self._shared()), label, timeout)

    def remote(self, label: str, words: Sequence[str], timeout: float | None = None) -> str:
        """Run remote words (not a Tart command): same errors, no Tart metrics."""
        return self._ssh(ssh_argv(self.settings, words, self._shared()), label, timeout)

    # --- the shared connection -------------------------------------------------------------

    def control_path(self) -> str | None:
        """The shared connection's socket (its private directory made at the first call), or
        None: no sharing (turned off, closed, or no short private directory could be made)."""
        if not self.multiplex or self._closed:
            return None
        with self._control_lock:
            if self._control_dir is None and not self._closed:
                self._control_dir = _private_dir()
                if self._control_dir is None:
                    self.multiplex = False
                    return None
                atexit.register(self.close)  # also when nobody calls it (a killed one cannot)
            return None if self._control_dir is None else (
                os.path.join(self._control_dir, CONTROL_SOCKET))

    def _shared(self) -> str | None:
        """The control path for a call, its master started first when none listens there:
        by one call at a time, so that calls made together do not each log in (ssh lets the
        first become the master, and the others make connections of their own)."""
        path = self.control_path()
        if path is None or _listening(path):
            return path
        with self._opening:
            if not _listening(path):
                self._ssh(ssh_argv(self.settings, ["true"], path), "ssh", None)
        return path

    def close(self) -> None:
        """The operator stops: end the shared connection (``ssh -O exit``) and remove its
        directory. Later calls make a connection each."""
        with self._control_lock:
            self._closed = True
            directory, self._control_dir = self._control_dir, None
        if directory is None:
            return
        path = os.path.join(directory, CONTROL_SOCKET)
        if os.path.exists(path):
            try:
                run_captured(control_argv(self.settings, path, "exit"), self.env, 5.0, "ssh -O")
            except TartError as exc:  # no master any more, or it would not answer: it ends
                log.debug("ssh -O exit: %s", exc)  # by itself after ControlPersist
        shutil.rmtree(directory, ignore_errors=True)

    def stream(self, args: Sequence[str], on_output: OutputSink, on_started: StartedSink,
               timeout: float) -> None:
        """Tart's output streams back through ssh, on a connection of its own. Its kill switch
        kills the local ssh's process group; the remote STREAM_SCRIPT then sees its stdin end
        and stops Tart."""
        label = args[0] if args else ""
        argv = ssh_argv(self.settings, script_words(STREAM_SCRIPT, self.settings.tart, *args))
        with observed(self.observe, label):
            self._guarded(lambda: run_streaming(argv, self.env, timeout, label, on_output,
                                                on_started, hold_stdin=True))

    def exec(self, args: Sequence[str], stdin: bytes | None, timeout: float) -> ExecResult:
        return exec_over_ssh(self, args, stdin, timeout)

    def disk_usage(self) -> HostDisk:
        return parse_disk(self.remote("df", script_words(DISK_SCRIPT)))

    def _ssh(self, argv: list[str], label: str, timeout: float | None) -> str:
        wait = self.timeout if timeout is None else timeout
        return self._guarded(lambda: run_captured(argv, self.env, wait, label))

    def _guarded(self, call: Callable[[], T]) -> T:
        """Run one ssh process: ssh's own failures classified, reachability noted."""
        try:
            result = call()
        except TartCommandError as exc:
            error = classify(self.settings, exc)
            self.reachable = not isinstance(error, TransportError)
            if error is exc:
                raise
            raise error from None
        except TartUnavailable:  # the local ssh client itself is missing
            self.reachable = False
            raise SshUnavailable(
                f"VM_OPERATOR_TART_SSH is set but the ssh client {self.settings.ssh!r} cannot be "
                "run here: install OpenSSH's client (Debian: apt-get install openssh-client)"
            ) from None
        self.reachable = True
        return result

    def launch(self, name: str, args: Sequence[str]) -> RemoteRun:
        self._ended.pop(name, None)
        log = remote_log_path(name)
        words = script_words(LAUNCH_SCRIPT, log, self.settings.tart, *args)
        with observed(self.observe, args[0] if args else ""):  # counted like any Tart call
            out = self.remote("run", words)
            try:
                pid = int(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                where = self.settings.label
                raise TartError(f"starting tart run on {where} printed no PID") from None
        return RemoteRun(self, log, pid, name, self._ended)

    def adopt(self, name: str, pid: int) -> RemoteRun:
        """A run an earlier operator launched: its waiter reads the same ``.exit`` file."""
        return RemoteRun(self, remote_log_path(name), pid, name, self._ended)

    def tail_log(self, name: str, lines: int | None = None) -> LogTail | None:
        try:
            text = self.remote(
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

    def probe(self, ip: str, port: int, timeout: float) -> bool:
        """The connection is made ON THE HOST (PROBE_SCRIPT), where the guests' network is: a
        refused or timed-out connection is False; ssh's own failures raise as for any call."""
        address, port = checked_target(ip, port)
        words = script_words(PROBE_SCRIPT, address, str(port), f"{max(1, round(timeout))}")
        try:
            self.remote("probe", words, self.timeout + timeout)
        except TartCommandError:  # the script's own exit code (ssh's failures are not these)
            return False
        return True

    def exec_stream(self, args: Sequence[str], tty: bool, rows: int, cols: int) -> ExecStream:
        return exec_stream_over_ssh(self, args, tty, rows, cols)

    def connect(self, ip: str, port: int) -> GuestPipe:
        """``ssh -W`` through the shared connection, once the host's probe saw the guest accept."""
        if not self.probe(ip, port, CONNECT_TIMEOUT):
            raise refused(ip, port, "the Tart host's probe failed")
        return open_process(forward_argv(self.settings, ip, port, self._shared()), self.env)

    def forget_log(self, name: str) -> None:
        """The run logs of ``name`` on the host go (FORGET_SCRIPT)."""
        self._ended.pop(name, None)
        self.remote("forget", script_words(FORGET_SCRIPT, remote_log_path(name)))

    def vm_identity(self, name: str) -> str | None:
        """IDENTITY_SCRIPT on the host, the name as its parameter."""
        try:
            return parse_identity(self.remote("identity", script_words(IDENTITY_SCRIPT, name)))
        except TartCommandError as exc:
            if exc.exit_code == IDENTITY_MISSING:
                return None
            raise

    def locate(self) -> tuple[str, bool]:
        path = f"ssh://{self.settings.label} {self.settings.tart}"
        return path, shutil.which(self.settings.ssh) is not None and self.reachable


@dataclass
class RemoteRun:
    """A ``tart run`` started on the host; ``wait`` blocks until it has ended there."""

    transport: SshTransport
    log: str
    pid: int
    name: str = ""
    ended: dict[str, str] = field(default_factory=dict)  # VM name -> last log line, once ended

    def wait(self) -> int | None:
        backoff = 1.0
        while True:
            try:
                answer = self.transport.remote(
                    "wait",
                    script_words(WAIT_SCRIPT, self.log, str(self.pid), str(WAIT_TICKS),
                                 str(WAIT_DELAY)),
                    timeout=WAIT_TICKS * WAIT_DELAY * 2 + self.transport.timeout,
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


def _listening(path: str) -> bool:
    """Whether a master answers on the control socket (a connection, closed at once)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _private_dir() -> str | None:
    """A new directory only this user can enter (0700), for the control socket: under the
    temporary directory, or /tmp when that path would make the socket's too long."""
    for base in (tempfile.gettempdir(), "/tmp"):
        # mkdtemp adds 8 characters to the prefix
        if len(os.path.join(base, "vmo-ssh-12345678", CONTROL_SOCKET)) > MAX_CONTROL_PATH:
            continue
        try:
            return tempfile.mkdtemp(prefix="vmo-ssh-", dir=base)
        except OSError as exc:
            log.warning("cannot make a private directory in %s for the SSH control socket "
                        "(%s): every Tart call logs in anew", base, exc.strerror or exc)
            return None
    log.warning("no temporary directory short enough for the SSH control socket: every Tart "
                "call logs in anew (set TMPDIR to a short path)")
    return None

