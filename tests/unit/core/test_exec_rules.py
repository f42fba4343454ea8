"""The pure rules of a command run in a guest: which ``tart exec`` endings are Tart's own
refusals (by its exact message) and which are the command's exit code; which commands the API
takes; what the client reads back."""

from __future__ import annotations

import pytest

from vm_operator.api.vm_exec import Words
from vm_operator.client.guest import ExecOutcome
from vm_operator.client.records import BadAnswer
from vm_operator.tart.errors import (
    TartCommandError,
    TartGuestAgentUnreachable,
    TartNotRunning,
    TartVmMissing,
)
from vm_operator.tart.guest_exec import refusal
from vm_operator.tart.records import ExecResult

AGENT = ("Failed to connect to the VM using its control socket: connection refused, is the Tart "
         "Guest Agent running?")


@pytest.mark.parametrize(("code", "stderr", "kind"), [
    (2, 'VM "ci" is not running\n', TartNotRunning),
    (2, 'the specified VM "ci" does not exist\n', TartVmMissing),
    (1, AGENT + "\n", TartGuestAgentUnreachable),
    (1, "warming up\n" + AGENT, TartGuestAgentUnreachable),  # the last line is Tart's message
    (2, 'VM "other" is not running\n', None),  # another VM's name: the command printed it
    (1, 'VM "ci" is not running\n', None),  # Tart says it with exit 2 only
    (3, AGENT, None),
    (2, 'VM "ci" is not running\nand then the command went on\n', None),
    (0, "", None),
    (127, "sh: nope: not found\n", None),
])
def test_tart_s_refusals_are_told_from_the_command_s_exit(code: int, stderr: str,
                                                            kind: type | None) -> None:
    found = refusal("ci", ExecResult(code, b"", stderr.encode(), False))
    if kind is None:
        assert found is None
    else:
        assert type(found) is kind and isinstance(found, TartCommandError)
        assert found.exit_code == code


@pytest.mark.parametrize("value", [
    [], "ls", ["ls", 1], [None], [""], ["-c"], ["ls", "a\x00b"], ["x"] * 4097, {"ls": 1},
])
def test_a_command_is_refused_unless_it_is_words_naming_a_program(value: object) -> None:
    with pytest.raises(ValueError, match="command"):
        Words().from_json("command", value)


@pytest.mark.parametrize("value", [["ls"], ["sh", "-c", "echo $HOME; exit 3"], ["a b", "", "-"]])
def test_a_command_of_words_is_taken_as_sent(value: list[str]) -> None:
    assert Words().from_json("command", value) == tuple(value)


def test_the_client_reads_the_answer_and_nothing_else() -> None:
    good = {"exit_code": 3, "stdout": "o", "stderr": "e", "truncated": False}
    assert ExecOutcome.from_json(good) == ExecOutcome(3, "o", "e", False)
    for bad in ([], {**good, "exit_code": True}, {**good, "stdout": None},
                {k: v for k, v in good.items() if k != "truncated"}):
        with pytest.raises(BadAnswer):
            ExecOutcome.from_json(bad)
