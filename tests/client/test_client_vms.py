"""The command-line client end to end: ``python -m vm_operator.client`` run as a real
subprocess against a real operator driving the simulator (the ``operator`` fixtures), or
against loopback sockets that misbehave (a closed port, a server that never answers, a web
server that is not the operator).
"""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import LOCAL_VMS, OCI_NAME, REPO_ROOT, Operator
from support import (
    CLIENT,
    CLIENT_TOKEN,
    QuietHandler,
    StandIn,
    api,
    cli,
    client_env,
    columns_of,
    free_port,
    reaped,
    run_client,
    succeeded,
    wait_for,
)

# --- vms -------------------------------------------------------------------------------------


def test_vms_json_is_the_api_array(operator: Operator) -> None:
    listed = json.loads(succeeded(cli(operator, "vms", "--json")))
    assert listed == api(operator, "GET", "/vms")
    assert {vm["name"] for vm in listed} == {*LOCAL_VMS, OCI_NAME}


def test_the_vm_operator_command_dispatches_client_subcommands(operator: Operator) -> None:
    """`vm-operator vms …` (the console script's entry, ``python -m vm_operator``) runs the
    client; flags alone still serve (the rest of the suite starts servers that way)."""
    result = subprocess.run([sys.executable, "-m", "vm_operator", "vms", "--json",
                             "--url", operator.url], cwd=REPO_ROOT, env=client_env(),
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                            check=False)
    assert json.loads(succeeded(result)) == api(operator, "GET", "/vms")
    helped = subprocess.run([sys.executable, "-m", "vm_operator", "--help"], cwd=REPO_ROOT,
                            env=client_env(), capture_output=True, timeout=60, check=False)
    assert "\n  vms " in succeeded(helped) and "\n  serve " in succeeded(helped)  # every command is listed


def test_vms_filters_go_to_the_server(operator: Operator) -> None:
    succeeded(cli(operator, "start", "ubuntu-runner"))
    running = json.loads(succeeded(cli(operator, "vms", "--json", "--state", "running")))
    assert [vm["name"] for vm in running] == ["ubuntu-runner"]
    oci = json.loads(succeeded(cli(operator, "vms", "--json", "--source", "oci")))
    assert [vm["name"] for vm in oci] == [OCI_NAME]
    stopped_local = succeeded(cli(operator, "vms", "--state", "stopped", "--source", "local"))
    names = [line.split()[0] for line in stopped_local.splitlines()[1:]]
    assert names == [name for name in LOCAL_VMS if name != "ubuntu-runner"]


def test_vms_table_is_aligned_and_matches_the_api(operator: Operator) -> None:
    lines = succeeded(cli(operator, "vms")).splitlines()
    vms = api(operator, "GET", "/vms")
    assert isinstance(vms, list)
    header, rows = lines[0], lines[1:]
    spans = columns_of(header)
    assert list(spans) == ["NAME", "SOURCE", "STATE", "DISK", "SIZE", "ACCESSED"]
    assert len(rows) == len(vms)
    for row, vm in zip(rows, vms):
        for title, key in (("NAME", "name"), ("SOURCE", "source"), ("STATE", "state"),
                           ("ACCESSED", "accessed")):  # left-aligned: start under the title
            start = spans[title][0]
            assert row[start:].split()[0] == vm[key], (title, row)
            assert start == 0 or row[start - 1] == " "
        for title, key in (("DISK", "disk_gb"), ("SIZE", "size_gb")):  # right-aligned
            end = spans[title][1]
            assert row[:end].endswith(f" {vm[key]} GB"), (title, row)
            assert row[end] == " "


def test_vms_table_fits_the_terminal_width(operator: Operator) -> None:
    lines = succeeded(cli(operator, "vms", env=client_env(COLUMNS="50"))).splitlines()
    assert all(len(line) <= 50 for line in lines), lines
    spans = columns_of(lines[0])
    assert "STATE" in spans and "ACCESSED" not in spans
    oci_row = next(line for line in lines if line.startswith("ghcr.io/"))
    assert "..." in oci_row.split()[0]  # the long OCI name is cut, visibly
    wide = succeeded(cli(operator, "vms"))  # not a terminal, no COLUMNS: nothing is cut
    assert OCI_NAME in wide and "..." not in wide


def test_hostile_vm_name_is_escaped_in_the_table(operator: Operator) -> None:
    hostile = "evil\x1b[2J\x1b[Hname\x07"
    made = operator.tart("clone", "ubuntu-runner", hostile)
    assert made.returncode == 0, made.stderr
    wait_for(lambda: any(vm["name"] == hostile for vm in api(operator, "GET", "/vms")),
             message="the hostile VM is listed")
    result = cli(operator, "vms")
    out = succeeded(result)
    assert b"\x1b" not in result.stdout and b"\x07" not in result.stdout
    assert "evil\\x1b[2J\\x1b[Hname\\x07" in out
    lines = out.splitlines()
    state_at = columns_of(lines[0])["STATE"][0]
    row = next(line for line in lines if line.startswith("evil"))
    assert row[state_at:].split()[0] == "stopped"  # alignment holds around the escaped name
    # --json is the server's JSON: the name escaped by JSON itself, intact once parsed
    listed = json.loads(succeeded(cli(operator, "vms", "--json")))
    assert hostile in [vm["name"] for vm in listed]


# --- get, start, stop, suspend -----------------------------------------------------------------


def test_get_json_and_table(operator: Operator) -> None:
    succeeded(cli(operator, "start", "ubuntu-runner"))
    detail = json.loads(succeeded(cli(operator, "get", "ubuntu-runner", "--json")))
    assert detail == api(operator, "GET", "/vms/ubuntu-runner")
    pairs = dict(line.split(":  ", 1) for line in succeeded(cli(operator, "get", "ubuntu-runner"))
                 .splitlines())
    values = {key: value.strip() for key, value in pairs.items()}
    assert values["name"] == "ubuntu-runner"
    assert values["state"] == "running"
    assert values["os"] == "linux"
    assert values["last run pid"] == str(detail["last_run"]["pid"])
    value_columns = {len(key) + 2 + (len(pairs[key]) - len(pairs[key].lstrip()))
                     for key in pairs}
    assert len(value_columns) == 1  # every value starts in the same column


def test_get_oci_name_is_one_percent_encoded_segment(operator: Operator) -> None:
    detail = json.loads(succeeded(cli(operator, "get", OCI_NAME, "--json")))
    assert detail["name"] == OCI_NAME and detail["source"] == "oci"


def test_start_stop_and_their_messages(operator: Operator) -> None:
    assert succeeded(cli(operator, "start", "ubuntu-runner")) == "started ubuntu-runner\n"
    assert api(operator, "GET", "/vms/ubuntu-runner")["state"] == "running"
    assert succeeded(cli(operator, "start", "ubuntu-runner")) == "ubuntu-runner was already running\n"
    again = json.loads(succeeded(cli(operator, "start", "ubuntu-runner", "--json")))
    assert again["changed"] is False and again["state"] == "running"
    assert succeeded(cli(operator, "stop", "ubuntu-runner", "--timeout", "7")) == "stopped ubuntu-runner\n"
    assert operator.calls("stop")[-1].argv[-4:] == ("stop", "--timeout", "7", "ubuntu-runner")
    assert api(operator, "GET", "/vms/ubuntu-runner")["state"] == "stopped"
    stopped = json.loads(succeeded(cli(operator, "stop", "ubuntu-runner", "--json")))
    assert stopped["changed"] is False


def test_start_suspendable_then_suspend(operator: Operator) -> None:
    succeeded(cli(operator, "start", "macos-sequoia-base", "--suspendable"))
    detail = api(operator, "GET", "/vms/macos-sequoia-base")
    assert detail["last_run"]["suspendable"] is True
    assert succeeded(cli(operator, "suspend", "macos-sequoia-base")) == "suspended macos-sequoia-base\n"
    assert api(operator, "GET", "/vms/macos-sequoia-base")["state"] == "suspended"
    again = json.loads(succeeded(cli(operator, "suspend", "macos-sequoia-base", "--json")))
    assert again["changed"] is False and again["state"] == "suspended"


# --- ip, logs, health ----------------------------------------------------------------------------


def test_ip_plain_and_json(operator: Operator) -> None:
    succeeded(cli(operator, "start", "ubuntu-runner"))
    expected = api(operator, "GET", "/vms/ubuntu-runner/ip?wait=10")["ip"]
    assert succeeded(cli(operator, "ip", "ubuntu-runner", "--wait", "10")) == f"{expected}\n"
    assert json.loads(succeeded(cli(operator, "ip", "ubuntu-runner", "--json"))) == {
        "name": "ubuntu-runner", "ip": expected}


def test_ip_wait_lengthens_the_request_timeout(operator_factory: Callable[..., Operator]) -> None:
    """The VM has an address 3 s after it starts; a 1 s request timeout alone would give up
    (exit 4), --wait 10 adds its 10 s to it."""
    op = operator_factory(env={"TART_SIM_BOOT_DELAY": "3"})
    succeeded(cli(op, "start", "ubuntu-runner"))
    result = cli(op, "ip", "ubuntu-runner", "--wait", "10", "--request-timeout", "1")
    address = succeeded(result).strip()
    assert ipaddress.ip_address(address).is_loopback  # the simulator's guests
    assert address == api(op, "GET", "/vms/ubuntu-runner/ip")["ip"]


def test_logs_whole_and_tail(operator: Operator) -> None:
    succeeded(cli(operator, "start", "ubuntu-runner"))
    wait_for(lambda: b"booted" in operator.request("GET", "/vms/ubuntu-runner/logs")[2],
             message="the boot line is in the log")
    body = operator.request("GET", "/vms/ubuntu-runner/logs")[2]
    assert cli(operator, "logs", "ubuntu-runner").stdout == body
    last = cli(operator, "logs", "ubuntu-runner", "--tail", "1")
    assert last.returncode == 0 and last.stdout == body.splitlines(keepends=True)[-1]


def test_logs_follow_prints_new_lines_once_and_ends_when_the_vm_stops(
        operator: Operator, tmp_path: Path) -> None:
    succeeded(cli(operator, "start", "ubuntu-runner"))
    out_path = tmp_path / "follow.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([*CLIENT, "logs", "ubuntu-runner", "--follow", "--interval",
                                 "0.2", "--url", operator.url], cwd=REPO_ROOT, env=client_env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE)
    with reaped(proc):
        wait_for(lambda: b"starting VM ubuntu-runner" in out_path.read_bytes(), timeout=15,
                 message="follow printed the log so far")
        assert proc.poll() is None  # still following while the VM runs
        succeeded(cli(operator, "stop", "ubuntu-runner"))  # writes a last line, then the VM stops
        assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else b""
    printed = out_path.read_bytes()
    assert printed == operator.request("GET", "/vms/ubuntu-runner/logs")[2]  # all, each once
    assert printed.rstrip().endswith(b"VM ubuntu-runner shut down")


def test_logs_follow_ends_with_130_on_ctrl_c(operator: Operator, tmp_path: Path) -> None:
    succeeded(cli(operator, "start", "ubuntu-runner"))
    out_path = tmp_path / "follow.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([*CLIENT, "logs", "ubuntu-runner", "-f", "--interval", "0.2",
                                 "--url", operator.url], cwd=REPO_ROOT, env=client_env(),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL)
    with reaped(proc):
        wait_for(lambda: b"starting VM" in out_path.read_bytes(), timeout=15,
                 message="follow started")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130


def test_health_json_and_table(operator: Operator) -> None:
    health = json.loads(succeeded(cli(operator, "health", "--json")))
    assert health["status"] == "healthy" and health["tart"]["available"] is True
    lines = succeeded(cli(operator, "health")).splitlines()
    assert "status:          healthy" in lines
    assert f"version:         {health['version']}" in lines


# --- exit codes ---------------------------------------------------------------------------------


def test_exit_1_refused_with_the_problem_detail(operator: Operator) -> None:
    status, problem = operator.json("POST", "/vms/" + OCI_NAME.replace("/", "%2F")
                                    .replace(":", "%3A") + "/start")
    assert status == 409
    result = cli(operator, "start", OCI_NAME)
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode() == f"vm-operator: 409 oci-image: {problem['detail']}\n"
    as_json = cli(operator, "start", OCI_NAME, "--json")
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout) == problem  # scripts get the problem document itself


def test_exit_1_for_a_missing_vm(operator: Operator) -> None:
    result = cli(operator, "get", "no-such-vm")
    assert result.returncode == 1
    assert result.stderr.startswith(b"vm-operator: 404 vm-not-found: ")


@pytest.mark.parametrize("args", [
    [],                                           # no command
    ["frobnicate"],                               # no such command
    ["get"],                                      # NAME missing
    ["get", ""],                                  # an empty name
    ["logs", "x", "--tail", "0"],                 # out of range
    ["stop", "x", "--timeout", "301"],
    ["vms", "--state", "paused"],
    ["logs", "x", "--json"],                      # logs are text
    ["vms", "--url", "ftp://127.0.0.1:1"],
    ["vms", "--request-timeout", "0"],
])
def test_exit_2_usage(args: list[str]) -> None:
    result = run_client(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == b""
    assert result.stderr


def test_help_documents_the_exit_codes() -> None:
    for args in ([], ["vms"], ["logs"]):
        out = succeeded(run_client(*args, "--help"))
        assert "exit codes:" in out
        for line in ("0    done", "1    refused by the server", "2    usage",
                     "3    unreachable", "4    timed out"):
            assert line in out, (args, line)


def test_exit_3_unreachable() -> None:
    port = free_port()
    result = run_client("vms", "--url", f"http://127.0.0.1:{port}")
    assert result.returncode == 3
    assert b"refused" in result.stderr


class Loopback(StandIn):
    """A tiny loopback web server that is not the operator: it answers every GET with
    ``status``, ``headers`` and ``body``, and records each request's path and Authorization."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.seen: list[tuple[str, str | None]] = []
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                outer.seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


@pytest.fixture
def loopback() -> Iterator[Callable[[int, dict[str, str], bytes], Loopback]]:
    started: list[Loopback] = []

    def start(status: int, headers: dict[str, str], body: bytes) -> Loopback:
        started.append(Loopback(status, headers, body))
        return started[-1]

    yield start
    for server in started:
        server.close()


def test_exit_3_for_an_answer_that_is_not_the_operators(
        loopback: Callable[[int, dict[str, str], bytes], Loopback]) -> None:
    page = loopback(200, {"Content-Type": "text/html"}, b"<html>hello</html>")
    result = run_client("vms", "--url", page.url)
    assert result.returncode == 3
    assert b"is the URL that of vm-operator?" in result.stderr
    proxy_error = loopback(502, {"Content-Type": "text/html"}, b"<h1>Bad Gateway</h1>")
    result = run_client("vms", "--url", proxy_error.url)
    assert result.returncode == 3
    assert b"HTTP 502 without a problem document" in result.stderr


def test_no_redirect_carries_the_token_elsewhere(
        loopback: Callable[[int, dict[str, str], bytes], Loopback]) -> None:
    elsewhere = loopback(200, {"Content-Type": "application/json"}, b"[]\n")
    redirect = loopback(302, {"Location": elsewhere.url + "/vms"}, b"")
    result = run_client("vms", "--url", redirect.url, env=client_env(VM_OPERATOR_TOKEN=CLIENT_TOKEN))
    assert result.returncode == 3
    assert redirect.seen == [("/vms", f"Bearer {CLIENT_TOKEN}")]
    assert elsewhere.seen == []
    _no_token_shown(result)


def test_proxy_variables_are_ignored(operator: Operator) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    env = client_env(http_proxy=closed, HTTP_PROXY=closed, all_proxy=closed)
    assert json.loads(succeeded(cli(operator, "vms", "--json", env=env)))


def test_exit_4_a_server_that_never_answers() -> None:
    with socket.socket() as sock:  # the kernel accepts connections; nobody ever reads them
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        port = sock.getsockname()[1]
        result = run_client("vms", "--url", f"http://127.0.0.1:{port}", "--request-timeout", "1")
    assert result.returncode == 4
    assert b"timed out" in result.stderr


def test_exit_4_when_the_server_answers_504(operator_factory: Callable[..., Operator]) -> None:
    op = operator_factory(env={"TART_SIM_RUN_DELAY": "5"}, args=["--start-timeout", "1"])
    result = cli(op, "start", "ubuntu-runner")
    assert result.returncode == 4
    assert result.stderr.startswith(b"vm-operator: 504 start-timeout: ")


# --- the token -----------------------------------------------------------------------------------


@pytest.fixture
def guarded(operator_factory: Callable[..., Operator]) -> Operator:
    return operator_factory(env={"VM_OPERATOR_TOKEN": CLIENT_TOKEN})


def _no_token_shown(*results: subprocess.CompletedProcess[bytes]) -> None:
    for result in results:
        assert CLIENT_TOKEN.encode() not in result.stdout + result.stderr


def test_token_needed_and_taken_from_file_or_environment(guarded: Operator,
                                                         tmp_path: Path) -> None:
    refused = cli(guarded, "vms")
    assert refused.returncode == 1 and b"401 unauthorized" in refused.stderr
    token_file = tmp_path / "token"
    token_file.write_text(CLIENT_TOKEN + "\n")
    token_file.chmod(0o600)
    by_flag = cli(guarded, "vms", "--json", "--token-file", str(token_file))
    by_env = cli(guarded, "vms", "--json", env=client_env(VM_OPERATOR_TOKEN=CLIENT_TOKEN))
    by_env_file = cli(guarded, "vms", "--json",
                      env=client_env(VM_OPERATOR_TOKEN_FILE=str(token_file)))
    expected = guarded.json("GET", "/vms", {"Authorization": f"Bearer {CLIENT_TOKEN}"})[1]
    for result in (by_flag, by_env, by_env_file):
        assert json.loads(succeeded(result)) == expected
    wrong = cli(guarded, "vms", env=client_env(VM_OPERATOR_TOKEN="not-the-token-at-all"))
    assert wrong.returncode == 1 and b"401" in wrong.stderr
    _no_token_shown(refused, by_flag, by_env, by_env_file, wrong)


@pytest.mark.parametrize("args", [
    ["vms", "--token", CLIENT_TOKEN],
    ["vms", f"--token={CLIENT_TOKEN}"],
    ["vms", "--tok", CLIENT_TOKEN],
    ["--token", CLIENT_TOKEN, "vms"],
])
def test_token_on_the_command_line_is_refused(guarded: Operator, args: list[str]) -> None:
    before = len(guarded.log_records())
    result = cli(guarded, *args)
    assert result.returncode == 2
    assert b"there is no --token option" in result.stderr
    _no_token_shown(result)
    assert len(guarded.log_records()) == before  # nothing was sent


def test_token_in_the_url_is_refused(guarded: Operator) -> None:
    url = guarded.url.replace("http://", f"http://user:{CLIENT_TOKEN}@")
    result = run_client("vms", "--url", url)
    assert result.returncode == 2
    assert b"must not hold credentials" in result.stderr
    _no_token_shown(result)


@pytest.mark.parametrize("env", [
    {"VM_OPERATOR_TOKEN": ""},
    {"VM_OPERATOR_TOKEN": "two words"},
    {"VM_OPERATOR_TOKEN_FILE": "/nonexistent/token"},
    {"VM_OPERATOR_TOKEN": CLIENT_TOKEN, "VM_OPERATOR_TOKEN_FILE": "/nonexistent/token"},
])
def test_unusable_token_settings_are_usage_errors(guarded: Operator,
                                                  env: dict[str, str]) -> None:
    result = cli(guarded, "vms", env=client_env(**env))
    assert result.returncode == 2, result.stderr
    assert b"VM_OPERATOR_TOKEN" in result.stderr
    _no_token_shown(result)


# --- the package -----------------------------------------------------------------------------------


def test_the_client_imports_nothing_of_the_server() -> None:
    code = ("import json, sys, vm_operator.client\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('vm_operator'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=client_env(),
                            capture_output=True, text=True, timeout=30, check=True)
    loaded = json.loads(result.stdout)
    # vocabulary: the contract's words and bounds; websocket: the framing the tunnels share;
    # sockets: closing a connection; command_line: the options and help groups cli.py reads
    # too; all import nothing (test_layers.py)
    assert loaded and all(name in ("vm_operator", "vm_operator.vocabulary",
                                   "vm_operator.websocket", "vm_operator.sockets",
                                   "vm_operator.command_line")
                          or name.startswith("vm_operator.client") for name in loaded), loaded
    from vm_operator.client import COMMANDS, main  # the lead's dispatch uses these

    assert {"vms", "get", "start", "stop", "suspend", "logs", "ip", "health", "create", "delete",
            "set", "images", "ops", "host", "events", "exec", "run", "proxy", "ssh",
            "port-forward"} == COMMANDS
    assert callable(main)
