"""The dashboard's way into a guest, in a VM's details panel, in the real browser (test_dashboard's):
the `vm-operator ssh` line to copy, and the command box that runs a command through
POST /vms/{name}/exec and shows its stdout, stderr and exit code, or the refusal's detail.
"""
# ruff: noqa: F811 (the fixtures browser and page, imported by name, are test arguments here)

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Operator
from support import wait_for
from test_dashboard import (  # noqa: F401 (browser and page: fixtures)
    READ_TOKEN,
    TOKEN,
    UBUNTU,
    WAIT,
    Page,
    browser,
    page,
    run_module,
    start_via_api,
)

from vm_operator.tart.guest_exec import OUTPUT_CAP

VANILLA = "ghcr.io/cirruslabs/macos-sequoia-vanilla:latest"  # its guests have no Tart agent


def open_details(page: Page, name: str) -> None:
    page.wait_row(name).find_element(page.by.CSS_SELECTOR, ".vm-name").click()
    wait_for(lambda: page.visible("#guest"), WAIT, message=f"the guest box of {name}")


def run_enabled(page: Page) -> bool:
    return page.find("#exec-run").get_attribute("disabled") is None


def open_running_box(page: Page, name: str) -> None:
    """The guest box of ``name`` once it runs, its Run button enabled."""
    page.wait_state(name, "running")
    open_details(page, name)
    wait_for(lambda: run_enabled(page), WAIT, message=f"Run enabled for the running {name}")


def run_command(page: Page, line: str) -> str:
    """Types ``line`` into the command box, runs it and returns the status line once it ended."""
    field = page.find("#exec-command")
    field.clear()
    field.send_keys(line)
    page.find("#exec-run").click()
    return status_once(page, ("Refused", "Not run", "exit code"))


def status_once(page: Page, saying: tuple[str, ...]) -> str:
    """The box's status line once it says one of ``saying``."""
    def said() -> str | None:
        text = str(page.find("#exec-status").text)
        return text if any(word in text for word in saying) else None

    return str(wait_for(said, WAIT, message=f"the status says one of {saying}"))


def test_the_command_box_runs_a_command_and_shows_its_output_and_exit_code(page: Page) -> None:
    start_via_api(page.operator, UBUNTU)
    open_running_box(page, UBUNTU)
    status = run_command(page, "sh -c 'echo hi; echo oops >&2; exit 3'")
    assert status == "sh ended with exit code 3.", status
    assert page.find("#exec-stdout").text == "hi"
    assert page.find("#exec-stderr").text == "oops"
    assert page.find("#exec-exit").text == "3"
    assert not page.visible("#exec-truncated")
    # a JSON array is taken word for word, HTML in the output stays text
    status = run_command(page, json.dumps(["printf", "%s", "<b id=injected>x</b>"]))
    assert status == "printf ended with exit code 0.", status
    assert page.find("#exec-stdout").text == "<b id=injected>x</b>"
    assert page.all("#injected") == []
    assert page.severe_logs() == []


def test_output_cut_at_the_cap_says_truncated(page: Page) -> None:
    start_via_api(page.operator, UBUNTU)
    open_running_box(page, UBUNTU)
    status = run_command(page, "sh -c 'yes | head -c 1100000'")
    assert status == "sh ended with exit code 0.", status
    assert page.visible("#exec-truncated")
    assert page.script("return document.getElementById('exec-stdout').textContent.length;") \
        == OUTPUT_CAP


def test_the_ssh_line_names_the_vm_and_the_operator(page: Page) -> None:
    open_details(page, UBUNTU)
    line = page.find("#ssh-line").get_attribute("value")
    assert line == f"vm-operator ssh --url {page.operator.url} {UBUNTU}"
    assert page.find("#ssh-line").get_attribute("readonly") is not None


def test_the_box_waits_for_a_running_vm_and_shows_a_refusals_detail(
        browser: Any, operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory()
    page = Page(browser, op)
    open_details(page, UBUNTU)
    assert not run_enabled(page)  # stopped: nothing to run in
    assert page.find("#exec-note").text == "Start the VM to run a command in it."
    # a VM stopped behind the page's back: the problem's detail is shown
    start_via_api(op, UBUNTU)
    wait_for(lambda: run_enabled(page), WAIT, message="Run enabled once it runs")
    status, _ = op.json("POST", f"/vms/{UBUNTU}/stop")
    assert status == 200
    # submitted in one step, before the page can hear of the stop
    page.script("document.getElementById('exec-command').value = 'true';"
                "document.getElementById('exec-form').requestSubmit();")
    status_line = status_once(page, ("Refused",))
    assert status_line == f"Refused: VM \"{UBUNTU}\" is not running: it is stopped; start it first", \
        status_line
    assert page.find("#exec-result").get_attribute("hidden") is not None


def test_a_guest_without_the_agent_is_refused_with_the_problems_detail(
        browser: Any, operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory()
    status, made = op.json("POST", "/vms", {"Content-Type": "application/json"},
                           json.dumps({"name": "plain", "from": VANILLA, "start": True}))
    assert status == 202, made
    wait_for(lambda: op.json("GET", f"/operations/{made['id']}")[1]["state"] == "succeeded",
             WAIT, message="the vanilla VM is created and started")
    page = Page(browser, op)
    open_running_box(page, "plain")
    status_line = run_command(page, "true")
    assert status_line.startswith("Refused: "), status_line
    assert "Tart Guest Agent" in status_line


def test_a_read_token_cannot_run_commands(browser: Any,
                                          operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN, "VM_OPERATOR_READ_TOKEN": READ_TOKEN})
    status, body = op.json("POST", f"/vms/{UBUNTU}/start", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 202, body
    page = Page(browser, op)
    wait_for(lambda: page.visible("#login"), WAIT, message="the page asks for a token")
    page.find("#token-input").send_keys(READ_TOKEN)
    page.find("#login-form button").click()
    page.wait_state(UBUNTU, "running")
    open_details(page, UBUNTU)
    assert not run_enabled(page)
    assert page.find("#exec-note").text == "This token may not run commands (read-only)."


SPLIT_CASES = [  # (the line typed, the words sent, or the reason it is refused)
    ("true", ["true"]),
    ("  ls   -l\t/tmp ", ["ls", "-l", "/tmp"]),
    ("sh -c 'echo hi; exit 3'", ["sh", "-c", "echo hi; exit 3"]),
    ("echo \"a \\\"b\\\" \\\\ $HOME\"", ["echo", "a \"b\" \\ $HOME"]),
    ("echo a\\ b '' x''y", ["echo", "a b", "", "xy"]),
    ("echo \"it's\" 'say \"no\"'", ["echo", "it's", "say \"no\""]),
    ('["printf", "%s\\n", "a b", ""]', ["printf", "%s\n", "a b", ""]),
    ("", "type a command to run"),
    ("echo 'open", "a single quote is not closed"),
    ("echo \"open", "a double quote is not closed"),
    ("echo \\", "the command ends with a lone backslash"),
    ("[]", "a JSON command is a non-empty array of strings"),
    ("[1, 2]", "a JSON command is a non-empty array of strings"),
    ("[oops", "the command is not a JSON array"),
]


@pytest.mark.parametrize(("line", "expected"), SPLIT_CASES)
def test_the_command_line_is_split_into_words(page: Page, line: str, expected: Any) -> None:
    got = run_module(page, "/ui/guest.js",
                     f"try {{ done({{words: m.splitWords({json.dumps(line)})}}); }}"
                     "catch (error) { done({error: error.message}); }")
    assert got == ({"words": expected} if isinstance(expected, list) else {"error": expected})


SSH_CASES = [  # (VM name, the page's origin, the line shown)
    ("ci", "http://127.0.0.1:8082", "vm-operator ssh ci"),
    ("ci", "https://mac.local:8443", "vm-operator ssh --url https://mac.local:8443 ci"),
    ("it's$x", "http://127.0.0.1:8082", "vm-operator ssh 'it'\\''s$x'"),
]


@pytest.mark.parametrize(("name", "origin", "expected"), SSH_CASES)
def test_the_ssh_line_is_quoted_for_a_shell(page: Page, name: str, origin: str,
                                            expected: str) -> None:
    got = run_module(page, "/ui/guest.js",
                     f"done(m.sshLine({json.dumps(name)}, {json.dumps(origin)}));")
    assert got == expected
