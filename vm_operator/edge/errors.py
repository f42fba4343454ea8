"""How failures become HTTP problems: a pure mapping, tested table-driven."""

from __future__ import annotations

from typing import Any

from vm_operator.edge.problems import title_of
from vm_operator.edge.responses import Response, problem
from vm_operator.tart.errors import (
    RemoteTartUnavailable,
    SshAuthFailed,
    SshFailed,
    SshHostKeyMismatch,
    SshUnavailable,
    TartAlreadyRunning,
    TartBadOutput,
    TartCommandError,
    TartError,
    TartHostUnreachable,
    TartNoIp,
    TartNotRunning,
    TartNotSuspendable,
    TartSuspendUnsupported,
    TartTimeout,
    TartUnavailable,
    TartVmLimit,
    TartVmMissing,
    command_error,
)


class ApiError(Exception):
    """A request that cannot be served; carries everything its problem document needs."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        headers: tuple[tuple[str, str], ...] = (),
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra

    def response(self) -> Response:
        return problem(self.status, self.slug, self.title, self.detail, *self.headers, **self.extra)


_TART_ERRORS: tuple[tuple[type[TartError], int, str], ...] = (
    (TartVmMissing, 404, "vm-not-found"),
    (TartAlreadyRunning, 409, "already-running"),
    (TartNotRunning, 409, "not-running"),
    (TartVmLimit, 409, "vm-limit"),
    (TartNoIp, 409, "no-ip"),
    (TartSuspendUnsupported, 409, "suspend-unsupported"),
    (TartNotSuspendable, 502, "tart-failed"),
    (RemoteTartUnavailable, 503, "tart-unavailable"),
    (SshHostKeyMismatch, 502, "ssh-host-key"),
    (SshAuthFailed, 502, "ssh-auth-failed"),
    (TartHostUnreachable, 503, "tart-host-unreachable"),
    (SshFailed, 502, "ssh-failed"),
    (SshUnavailable, 503, "ssh-unavailable"),
    (TartUnavailable, 503, "tart-unavailable"),
    (TartTimeout, 504, "tart-timeout"),
    (TartBadOutput, 502, "tart-bad-output"),
    (TartError, 502, "tart-failed"),
)


def api_error_for(exc: TartError) -> ApiError:
    """Map any TartError to the problem a client should see."""
    for kind, status, slug in _TART_ERRORS:
        if isinstance(exc, kind):
            extra: dict[str, Any] = {}
            if isinstance(exc, TartCommandError):
                extra["tart_exit_code"] = exc.exit_code
            return ApiError(status, slug, title_of(slug), exc.detail, **extra)
    raise AssertionError("TartError is the last row")  # pragma: no cover


def tart_command_error(message: str, exit_code: int) -> ApiError:
    """Classify a refusal by Tart from its message; an unknown one is a bad gateway."""
    return api_error_for(command_error(message, exit_code))


def not_found(name: str) -> ApiError:
    return ApiError(404, "vm-not-found", "No such VM", f'the specified VM "{name}" does not exist')


def bad_request(slug: str, detail: str, **extra: Any) -> ApiError:
    return ApiError(400, slug, title_of(slug), detail, **extra)
