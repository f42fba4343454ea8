"""How failures become HTTP problems: a pure mapping, tested table-driven."""

from __future__ import annotations

from typing import Any

from vm_operator.config import CONTAINER_TART
from vm_operator.problems import title_of
from vm_operator.responses import Response, problem
from vm_operator.tart import (
    TartBadOutput,
    TartCommandError,
    TartError,
    TartTimeout,
    TartUnavailable,
)
from vm_operator.transport import TartTransportError


class ApiError(Exception):
    """A request that cannot be served; carries everything its problem document needs.

    ``slug`` must be in the catalogue (vm_operator/problems.py), whose title the document
    carries; ``title`` here is that same title, kept so that a call site reads as what the
    client sees (a unit test checks that they agree).
    """

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


# Tart's own messages (see TART_FACTS.md) and what each means for an HTTP client.
_TART_MESSAGES: tuple[tuple[str, int, str, str], ...] = (
    ("does not exist", 404, "vm-not-found", "No such VM"),
    ("is already running", 409, "already-running", "The VM is already running"),
    ("is not running", 409, "not-running", "The VM is not running"),
    ("exceeds the system limit", 409, "vm-limit", "Too many VMs are running"),
    ("no IP address found", 409, "no-ip", "The VM has no IP address"),
    ("You can only suspend macOS VMs", 409, "suspend-unsupported", "Tart cannot suspend this VM"),
)


def tart_command_error(message: str, exit_code: int) -> ApiError:
    """Classify a refusal by Tart from its message; an unknown one is a bad gateway."""
    for needle, status, slug, title in _TART_MESSAGES:
        if needle in message:
            return ApiError(status, slug, title, message, tart_exit_code=exit_code)
    return ApiError(502, "tart-failed", "Tart failed", message, tart_exit_code=exit_code)


def tart_advice(binary: str) -> str:
    """How to make Tart available, for where the operator runs.

    The image is the one place that looks for Tart at CONTAINER_TART (its VM_OPERATOR_TART):
    there Tart is mounted, not installed. Anywhere else the operator runs natively.
    """
    if binary == CONTAINER_TART:
        return (f"Mount the Tart binary (or the bundled simulator, bin/tart-simulator) "
                f"at {CONTAINER_TART}, or point VM_OPERATOR_TART / --tart at it.")
    return ("Install Tart (brew install cirruslabs/cli/tart) or point --tart / VM_OPERATOR_TART "
            "at it; to try the API without Tart, run vm-operator --demo.")


def api_error_for(exc: TartError) -> ApiError:
    """Map any TartError to the problem a client should see."""
    if isinstance(exc, TartCommandError):
        return tart_command_error(exc.message, exc.exit_code)
    if isinstance(exc, TartTransportError):  # ssh to the Tart host failed: it says how
        return ApiError(exc.status, exc.slug, exc.title, exc.detail)
    if isinstance(exc, TartUnavailable):
        detail = f"{exc}. {tart_advice(exc.binary)}"
        return ApiError(503, "tart-unavailable", "Tart is not available", detail)
    if isinstance(exc, TartTimeout):
        return ApiError(504, "tart-timeout", "Tart did not answer in time", str(exc))
    if isinstance(exc, TartBadOutput):
        return ApiError(502, "tart-bad-output", "Tart printed something unexpected", str(exc))
    return ApiError(502, "tart-failed", "Tart failed", str(exc))


def not_found(name: str) -> ApiError:
    return ApiError(404, "vm-not-found", "No such VM", f'the specified VM "{name}" does not exist')


def bad_request(slug: str, detail: str, **extra: Any) -> ApiError:
    return ApiError(400, slug, title_of(slug), detail, **extra)
