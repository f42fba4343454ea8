"""Tart's failures as the simulator reports them: a message on stderr and an exit code."""

from __future__ import annotations

EX_USAGE = 64


class TartError(Exception):
    """An error Tart reports as a plain message on stderr with an exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class UsageError(TartError):
    """A validation error: ArgumentParser prints `Error: …` and exits 64."""

    def __init__(self, message: str) -> None:
        super().__init__(f"Error: {message}", EX_USAGE)


def does_not_exist(name: str) -> TartError:
    return TartError(f'the specified VM "{name}" does not exist', 2)


def not_running(name: str) -> TartError:
    return TartError(f'VM "{name}" is not running', 2)


def not_suspendable(name: str) -> str:
    return f'failed to suspend VM "{name}": it was not started with --suspendable'
