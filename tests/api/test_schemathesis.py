"""Requests generated from /openapi.json are answered as it says.

Schemathesis (a test-only dependency, installed by scripts/test.sh) reads the document a real
operator serves and sends what it describes — valid and invalid names and parameters, methods
it does not list, sequences of calls linked by their responses — against that operator driving
the Tart simulator, with every check on. Any failure fails this test, with schemathesis' report.

The run is reproducible (deterministic generation, hence no example database, and no crash
cache replaying earlier runs), bounded (a few examples per operation, short stateful scenarios,
one worker) and talks to loopback only (proxies are cleared from its environment).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import LOCAL_VMS, Operator

SEQUOIA = LOCAL_VMS[0]

MAX_EXAMPLES = 10  # per operation and phase: the whole run stays well under two minutes
RUN_TIMEOUT = 600  # seconds: a hung run is killed (its process group) and fails the test
HEARTBEAT = 0.2  # seconds: the operator's heartbeat on a quiet event stream, below STREAM_READ
STREAM_READ = 2  # seconds schemathesis reads an event stream (its request timeout there)

# What a WebSocket route's answers may be, in both WebSocket entries of CONFIG (see there).
WEBSOCKET_STATUSES = """\
checks.negative_data_rejection.expected-statuses = ["400", "401", "403", "404", "409", "414",
                                                    "415", "426"]
checks.missing_required_header.expected-statuses = ["400", "401", "403", "426"]
checks.positive_data_acceptance.expected-statuses = ["101", "2xx", "401", "403", "404", "409",
                                                     "414", "5xx"]"""

CONFIG = """\
# written by tests/api/test_schemathesis.py
# Hypothesis gives up on an operation whose only parameter is a patterned path parameter (e.g.
# DELETE /images/{ref}) when too few of its negative draws negate anything: a limit of the
# generator, not a finding about the API.
suppress-health-check = ["filter_too_much"]

[cache]
enabled = false

[phases.stateful]
max-steps = 4

# In a stateful scenario schemathesis may send a value it drew in negative mode (a control
# character in a path parameter) and judge the answer as if it were positive; acceptance of
# valid data is checked by the coverage and fuzzing phases.
[phases.stateful.checks.positive_data_acceptance]
enabled = false

# The event stream never ends by itself: schemathesis reads each answer for STREAM_READ seconds
# at most (or its first events) and checks every event it read against the document (ST108).
# The operator's bus holds events before the run (a start and a stop), so a watcher that resumes
# (last_event_id) gets a backlog or a reset.
[[operations]]
include-path = "/events"
include-method = "GET"
request-timeout = {STREAM_READ}
max-stream-events = 5

# Tart refuses resources below the image's minimum or a shrinking disk (422): a schema cannot say
# what a VM's minimum or current disk is.
[[operations]]
include-path = "/vms/{name}"
include-method = "PATCH"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# A WebSocket (RFC 6455): a request without the opening handshake, or of another version, is
# told 426 Upgrade Required; a valid one is upgraded (101) or refused before it (the guest's port
# refuses: 502).
[[operations]]
include-path = "/vms/{name}/port-forward"
include-method = "GET"
{WEBSOCKET_STATUSES}

# The interactive exec is a WebSocket too: without the handshake 426, else 101 or a refusal.
# Its command rides in the query, so a long one meets the 8 KiB bound of the request line (414,
# documented; POST /vms/{name}/exec carries long commands). This entry also reaches POST
# /vms/{name}/exec (the same path), whose body without its JSON media type is a 415. The two
# WebSocket entries hold the same lists: schemathesis lets the first entry that matches an
# operation by its path or by its method speak for it.
[[operations]]
include-path = "/vms/{name}/exec"
include-method = "GET"
{WEBSOCKET_STATUSES}
"""


def schemathesis_env() -> dict[str, str]:
    """The test's environment without proxies or schemathesis settings from outside."""
    env = {key: value for key, value in os.environ.items()
           if not key.lower().endswith("_proxy") and not key.startswith("SCHEMATHESIS_")}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env["PYTHONHASHSEED"] = "0"
    return env


def run_schemathesis(op: Operator, workdir: Path) -> tuple[int, str]:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG.replace("{STREAM_READ}", str(STREAM_READ))
                      .replace("{WEBSOCKET_STATUSES}", WEBSOCKET_STATUSES))
    argv = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
        "run", f"{op.url}/openapi.json",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "60",
    ]
    proc = subprocess.Popen(argv, cwd=workdir, env=schemathesis_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"schemathesis did not finish within {RUN_TIMEOUT} s:\n{output[-20000:]}")
    return proc.returncode, output


def test_generated_requests_are_answered_as_the_document_says(operator_factory: Any,
                                                              tmp_path: Path) -> None:
    # A quiet stream sends a heartbeat comment every HEARTBEAT s: schemathesis' read never waits
    # longer than its timeout for a byte, and the operator sees a closed stream at its next write.
    operator = operator_factory(env={"VM_OPERATOR_EVENTS_HEARTBEAT": str(HEARTBEAT)})
    if importlib.util.find_spec("schemathesis") is None:
        pytest.fail("schemathesis is not installed: pip install schemathesis (scripts/test.sh does)")
    for action in ("start", "stop"):  # events in the bus's history, for /events to resume
        assert operator.request("POST", f"/vms/{SEQUOIA}/{action}")[0] in (200, 202), action
    code, report = run_schemathesis(operator, tmp_path)
    print(report)
    assert code == 0, f"schemathesis found mismatches (exit {code}):\n{report[-30000:]}"
    # not a vacuous pass: every operation of the document was exercised, the stream included
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    tested = re.search(r"Tested: (\d+)", report)
    assert selected and tested, report[-3000:]
    assert int(tested.group(1)) == int(selected.group(1)) == int(selected.group(2)) >= 10, \
        report[-3000:]
