"""Problems many routes share, as declared on the routes (and so in /openapi.json)."""

from __future__ import annotations

from vm_operator.edge.routing import Problem
from vm_operator.tart.errors import (
    RemoteTartUnavailable,
    SshAuthFailed,
    SshFailed,
    SshHostKeyMismatch,
    SshUnavailable,
    TartBadOutput,
    TartCommandError,
    TartHostUnreachable,
    TartTimeout,
    TartUnavailable,
)

# Every route that runs Tart: it may fail, print nonsense, be missing, hang, or be unreachable.
TART_FAILURES: tuple[Problem, ...] = (
    TartCommandError, TartBadOutput, TartUnavailable, TartTimeout,
    RemoteTartUnavailable, SshHostKeyMismatch, SshAuthFailed, TartHostUnreachable, SshFailed,
    SshUnavailable,
)
