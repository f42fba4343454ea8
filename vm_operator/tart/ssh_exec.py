"""``tart exec`` over SSH: the fixed ``EXEC_SCRIPT`` on the host, Tart's arguments (the guest
command's words among them) as its positional parameters, never as script text.

It runs on a connection of its own, as a stream does: the remote script learns from the end of
its session's stdin that the local ssh is gone (killed on the timeout), and then kills Tart's
process group on the host. The stdin given to the command goes first on that same stdin, its
length a parameter.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vm_operator.tart.errors import TartCommandError, TartError, TransportError
from vm_operator.tart.exec_stream import ExecStream
from vm_operator.tart.guest_exec import OUTPUT_CAP, run_exec
from vm_operator.tart.parse import error_message
from vm_operator.tart.records import ExecResult
from vm_operator.tart.ssh_commands import (
    EXEC_KILL_SCRIPT,
    EXEC_SCRIPT,
    EXEC_STARTED,
    EXEC_STREAM_SCRIPT,
    script_words,
    ssh_argv,
)
from vm_operator.tart.transport import observed

if TYPE_CHECKING:
    from vm_operator.tart.ssh import SshTransport

KILL_TIMEOUT = 10.0  # seconds the host has to kill an exec's command
log = logging.getLogger(__name__)


def exec_over_ssh(transport: SshTransport, args: Sequence[str], stdin: bytes | None,
                  timeout: float) -> ExecResult:
    """Run ``tart ARGS`` on the host with ``stdin``; ssh's own failures (no "+" came first)
    classified as for any call."""
    from vm_operator.tart.ssh import classify  # ssh imports this module

    settings = transport.settings
    size = "-1" if stdin is None else str(len(stdin))
    argv = ssh_argv(settings, script_words(EXEC_SCRIPT, size, settings.tart, *args))
    with observed(transport.observe, args[0] if args else ""):
        result = transport._guarded(lambda: run_exec(argv, transport.env, stdin, timeout,
                                                     OUTPUT_CAP + len(EXEC_STARTED),
                                                     hold_stdin=True))
        if not result.stdout.startswith(EXEC_STARTED):
            message = error_message(result.stderr.decode("utf-8", errors="replace"),
                                    result.exit_code)
            error = classify(settings, TartCommandError(message, result.exit_code))
            transport.reachable = not isinstance(error, TransportError)
            raise error
    return ExecResult(result.exit_code, result.stdout[len(EXEC_STARTED):],
                      result.stderr[:OUTPUT_CAP],
                      result.truncated or len(result.stderr) > OUTPUT_CAP)


def exec_stream_over_ssh(transport: SshTransport, args: Sequence[str], tty: bool, rows: int,
                         cols: int) -> ExecStream:
    """``tart ARGS`` (an interactive ``tart exec``) on the host through the shared connection,
    kept open; with a terminal ``ssh -tt``, so that the remote Tart has one. Killing the local
    ssh ends the session, but the host's Tart would learn it only when it next reads (end of
    input) or writes (a broken pipe): so ``kill`` also kills its process group on the host
    (``EXEC_KILL_SCRIPT``, by the token the session was started with), in the background."""
    settings = transport.settings
    token = secrets.token_hex(16)
    argv = ssh_argv(settings, script_words(EXEC_STREAM_SCRIPT, token, settings.tart, *args),
                    transport._shared())
    if tty:
        argv = [argv[0], "-tt", *argv[1:]]

    def kill_on_host() -> None:
        try:
            transport.remote("exec-kill", script_words(EXEC_KILL_SCRIPT, token),
                             timeout=KILL_TIMEOUT)
        except TartError as exc:  # the connection is gone: so is the session
            log.warning("could not stop an exec's command on the host: %s", exc)

    with observed(transport.observe, args[0] if args else ""):
        return ExecStream(argv, transport.env, tty, rows, cols,
                          on_kill=lambda: threading.Thread(target=kill_on_host, daemon=True,
                                                           name="exec-kill").start())
