"""How Tart's failures map to HTTP problems."""

import json

import pytest

from vm_operator.config import CONTAINER_TART
from vm_operator.edge.errors import problem_for
from vm_operator.tart.errors import (
    TartBadOutput,
    TartCommandError,
    TartTimeout,
    TartUnavailable,
    command_error,
)


@pytest.mark.parametrize(
    ("message", "code", "status", "slug"),
    [
        ('the specified VM "x" does not exist', 2, 404, "vm-not-found"),
        ('VM "x" is not running', 2, 409, "not-running"),
        ('VM "x" is already running!', 2, 409, "already-running"),
        ("The number of VMs exceeds the system limit", 1, 409, "vm-limit"),
        ("no IP address found, is your VM running?", 1, 409, "no-ip"),
        ("Error: You can only suspend macOS VMs", 64, 409, "suspend-unsupported"),
        ("Failed to lock the VM: disk full", 1, 502, "tart-failed"),
    ],
)
def test_tart_messages(message: str, code: int, status: int, slug: str) -> None:
    error = problem_for(command_error(message, code))
    assert (error.status, error.slug) == (status, slug)
    response = error.response()
    doc = json.loads(response.body)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    assert doc["detail"] == message and doc["status"] == status and doc["tart_exit_code"] == code
    assert doc["type"].endswith(slug)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (TartUnavailable("the Tart binary '/x' does not exist"), 503),
        (TartTimeout("'tart list' did not finish within 1 s"), 504),
        (TartBadOutput("'tart list' did not print JSON"), 502),
        (TartCommandError("boom", 1), 502),
    ],
)
def test_tart_errors(exc: Exception, status: int) -> None:
    assert problem_for(exc).status == status  # type: ignore[arg-type]


def test_unavailable_in_the_container_says_how_to_mount() -> None:
    exc = TartUnavailable("the Tart binary '/app/bin/tart-binary' does not exist", CONTAINER_TART)
    detail = problem_for(exc).detail
    assert "Mount the Tart binary" in detail and f"at {CONTAINER_TART}" in detail
    assert "VM_OPERATOR_TART" in detail and "brew install" not in detail


@pytest.mark.parametrize("binary", ["tart", "/opt/homebrew/bin/tart", "/nonexistent/tart", ""])
def test_unavailable_natively_says_how_to_install(binary: str) -> None:
    detail = problem_for(TartUnavailable(f"the Tart binary {binary!r} does not exist",
                                           binary)).detail
    assert "Install Tart (brew install cirruslabs/cli/tart)" in detail
    assert "--tart" in detail and "VM_OPERATOR_TART" in detail
    assert CONTAINER_TART not in detail and "Mount" not in detail
