"""The client's pure pieces, table-driven: safe text, tables, the progress bar, URLs, exit
codes, token settings and the offsets of logs --follow."""

from __future__ import annotations

import email.message
import io
import re
import socket
import ssl
import urllib.error
from pathlib import Path

import pytest

from vm_operator.client import render
from vm_operator.client.commands import detail_pairs, log_step
from vm_operator.client.http import ClientError, TimedOut, Unreachable, refusal, transport_error
from vm_operator.client.main import (
    EXIT_INTERRUPTED,
    TABLE,
    UsageError,
    describe,
    exit_code,
    help_words,
    overview,
    read_token,
    token_on_command_line,
    topics,
)
from vm_operator.client.records import Health, LastExit, LogChunk, Problem, Spec, Vm, VmDetail
from vm_operator.client.urls import BadUrl, build_url, check_base_url, path
from vm_operator.command_line import Topic, command_index

# --- safe text -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, shown", [
    ("macos-sequoia-base", "macos-sequoia-base"),
    ("ghcr.io/org/img:tag", "ghcr.io/org/img:tag"),
    ("evil\x1b[2J\x1b[Hname", "evil\\x1b[2J\\x1b[Hname"),
    ("bell\x07", "bell\\x07"),
    ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
    ("del\x7f", "del\\x7f"),
    ("c1\x9bcsi", "c1\\x9bcsi"),                       # the 8-bit CSI
    ("rtl\u202eoverride", "rtl\\u202eoverride"),       # bidi override
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("line\u2028sep", "line\\u2028sep"),
    ("café 東京", "café 東京"),                          # printable non-ASCII stays
    ("", ""),
])
def test_safe(text: str, shown: str) -> None:
    assert render.safe(text) == shown


@pytest.mark.parametrize("text, shown", [
    ("one\ntwo\n", "one\ntwo\n"),
    ("crlf\r\nline\r\n", "crlf\nline\n"),
    ("tab\there\n", "tab\there\n"),
    ("\x1b[31mred\x1b[0m\n", "\\x1b[31mred\\x1b[0m\n"),
    ("over\rwrite\n", "over\\rwrite\n"),
])
def test_safe_log(text: str, shown: str) -> None:
    assert render.safe_log(text) == shown


@pytest.mark.parametrize("text, width", [
    ("abc", 3), ("東京", 4), ("e\u0301", 1), ("", 0),
])
def test_width_of(text: str, width: int) -> None:
    assert render.width_of(text) == width


@pytest.mark.parametrize("text, width, cut", [
    ("macos-sequoia-base", 30, "macos-sequoia-base"),
    ("macos-sequoia-base", 18, "macos-sequoia-base"),
    ("macos-sequoia-base", 17, "macos-sequoia-..."),
    ("macos-sequoia-base", 3, "..."),
    ("macos-sequoia-base", 2, ".."),
    ("東京東京", 7, "東京..."),
])
def test_cut(text: str, width: int, cut: str) -> None:
    assert render.cut(text, width) == cut
    assert render.width_of(render.cut(text, width)) <= width


# --- tables ----------------------------------------------------------------------------------

COLUMNS = (
    render.Column("NAME", shrink=True),
    render.Column("SOURCE", drop=1),
    render.Column("STATE"),
    render.Column("DISK", right=True, drop=2),
)
ROWS = [
    ["macos-sequoia-base", "local", "stopped", "50 GB"],
    ["ubuntu", "local", "running", "100 GB"],
    ["ghcr.io/cirruslabs/macos-sequoia-base:latest", "oci", "stopped", "50 GB"],
]


@pytest.mark.parametrize("width, expected", [
    (None, [
        "NAME                                          SOURCE  STATE      DISK",
        "macos-sequoia-base                            local   stopped   50 GB",
        "ubuntu                                        local   running  100 GB",
        "ghcr.io/cirruslabs/macos-sequoia-base:latest  oci     stopped   50 GB",
    ]),
    (60, [  # the name is cut first
        "NAME                                 SOURCE  STATE      DISK",
        "macos-sequoia-base                   local   stopped   50 GB",
        "ubuntu                               local   running  100 GB",
        "ghcr.io/cirruslabs/macos-sequoia...  oci     stopped   50 GB",
    ]),
    (40, [  # the name at its floor is not enough: DISK (drop 2) goes, then it fits
        "NAME                     SOURCE  STATE",
        "macos-sequoia-base       local   stopped",
        "ubuntu                   local   running",
        "ghcr.io/cirruslabs/m...  oci     stopped",
    ]),
    (30, [  # SOURCE goes too
        "NAME                   STATE",
        "macos-sequoia-base     stopped",
        "ubuntu                 running",
        "ghcr.io/cirruslabs...  stopped",
    ]),
    (10, [  # cannot fit: every droppable column gone, the name at its floor (20)
        "NAME                  STATE",
        "macos-sequoia-base    stopped",
        "ubuntu                running",
        "ghcr.io/cirruslab...  stopped",
    ]),
])
def test_table(width: int | None, expected: list[str]) -> None:
    assert render.table(COLUMNS, ROWS, width) == expected


@pytest.mark.parametrize("width", [29, 30, 35, 41, 50, 57, 64, 70, 80, 200])
def test_table_fits_every_width_it_can(width: int) -> None:
    """29 = NAME at its floor (20), a gap, STATE: the narrowest this table gets."""
    lines = render.table(COLUMNS, ROWS, width)
    assert all(render.width_of(line) <= width for line in lines), lines
    header = lines[0]
    titles = header.split()
    for title in titles:
        start, end = header.index(title), header.index(title) + len(title)
        for line in lines[1:]:
            if title == "DISK":  # right-aligned: ends under its title
                assert line[end - 1] != " " and len(line) == end
            else:  # left-aligned: starts under its title
                assert line[start] != " " and (start == 0 or line[start - 1] == " ")


def test_table_escapes_hostile_cells_and_keeps_alignment() -> None:
    lines = render.table(COLUMNS[:3], [["evil\x1b[2Jname", "local", "stopped"],
                                       ["ok", "local", "running"]])
    assert lines == [
        "NAME             SOURCE  STATE",
        "evil\\x1b[2Jname  local   stopped",
        "ok               local   running",
    ]


def test_table_of_wide_characters_aligns_by_columns() -> None:
    lines = render.table(COLUMNS[:3], [["東京", "local", "stopped"], ["abcd", "oci", "running"]])
    assert render.width_of(lines[1][:lines[1].index("local")]) == lines[2].index("oci")


def test_pairs() -> None:
    assert render.pairs([("name", "a\x1bb"), ("last run pid", "12"), ("os", "-")]) == [
        "name:          a\\x1bb",
        "last run pid:  12",
        "os:            -",
    ]


# --- progress ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values, lines", [
    ([0, 0.4, 0.9, 1, 1.5, 50, 50.2, 99.9, 100, 100], ["0%", "1%", "50%", "99%", "100%"]),
    ([-5, 250], ["0%", "100%"]),                        # clamped
    ([10, 5, 10], ["10%", "5%", "10%"]),                # a value that goes back is shown
    ([float("nan"), 3], ["3%"]),                        # nonsense is ignored
])
def test_progress_plain(values: list[float], lines: list[str]) -> None:
    stream = io.StringIO()
    progress = render.Progress(stream, terminal=False)
    for value in values:
        progress.update(value)
    assert stream.getvalue().splitlines() == lines
    progress.finish(done=False)
    assert stream.getvalue().splitlines() == lines  # nothing more when not done


def test_progress_plain_with_label_and_finish() -> None:
    stream = io.StringIO()
    progress = render.Progress(stream, terminal=False, label="pull ghcr.io/a/b:c")
    progress.update(42)
    progress.finish()
    assert stream.getvalue() == "pull ghcr.io/a/b:c: 42%\npull ghcr.io/a/b:c: 100%\n"


def test_progress_terminal_redraws_one_line() -> None:
    stream = io.StringIO()
    progress = render.Progress(stream, terminal=True, width=40, label="pulling")
    for value in (0, 0.5, 25, 25, 50, 100):
        progress.update(value)
    progress.finish()
    text = stream.getvalue()
    frames = text.split("\r")[1:]
    assert len(frames) == 4  # 0, 25, 50, 100: redrawn only when it changes
    assert text.endswith("\n") and text.count("\n") == 1  # one line, ended once
    # 40 columns: "pulling " (8), the bar in brackets (25 + 2), " NNN%" (5)
    assert frames[0] == "pulling [" + "-" * 25 + "]   0%"
    assert frames[1] == "pulling [" + "#" * 6 + "-" * 19 + "]  25%"
    assert frames[-1] == "pulling [" + "#" * 25 + "] 100%\n"
    assert all(render.width_of(frame.rstrip("\n")) <= 40 for frame in frames)


def test_progress_terminal_wipes_a_longer_frame() -> None:
    stream = io.StringIO()
    progress = render.Progress(stream, terminal=True, width=40)
    progress.update(5)
    progress.width = 20  # the terminal got narrower
    progress.update(6)
    first, second = stream.getvalue().split("\r")[1:]
    assert len(second) == len(first)  # padded with spaces over the old frame
    assert second.rstrip().endswith("6%")


@pytest.mark.parametrize("percent, label, width", [
    (0, "", 80), (37, "", 20), (100, "pull", 30),
    (50, "a very long label that cannot fit on the line", 40),
    (99, "pull ghcr.io/cirruslabs/macos-sequoia-base:latest", 60),
])
def test_bar_line_fits(percent: int, label: str, width: int) -> None:
    line = render.bar_line(percent, label, width)
    assert render.width_of(line) <= width
    assert line.endswith(f"{percent:3d}%")
    inside = line[line.index("[") + 1:line.index("]")]
    assert inside.count("#") == len(inside) * percent // 100


# --- URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("segments, built", [
    (("vms",), "/vms"),
    (("vms", "macos-ci", "start"), "/vms/macos-ci/start"),
    (("vms", "ghcr.io/cirruslabs/macos-sequoia-base:latest"),
     "/vms/ghcr.io%2Fcirruslabs%2Fmacos-sequoia-base%3Alatest"),
    (("vms", "img@sha256:ab"), "/vms/img%40sha256%3Aab"),
    (("vms", "a b?c#d%e"), "/vms/a%20b%3Fc%23d%25e"),
    (("vms", ".."), "/vms/.."),  # sent as is: the server refuses it (400 invalid-name)
])
def test_path(segments: tuple[str, ...], built: str) -> None:
    assert path(*segments) == built


@pytest.mark.parametrize("base, api_path, query, url", [
    ("http://127.0.0.1:8082", "/vms", {}, "http://127.0.0.1:8082/vms"),
    ("http://127.0.0.1:8082", "/vms", {"state": None, "source": "oci"},
     "http://127.0.0.1:8082/vms?source=oci"),
    ("http://h:1", "/vms/x/start", {"suspendable": True}, "http://h:1/vms/x/start?suspendable=true"),
    ("http://h:1", "/vms/x/stop", {"timeout": 0}, "http://h:1/vms/x/stop?timeout=0"),
    ("https://h/prefix", "/health", {}, "https://h/prefix/health"),
])
def test_build_url(base: str, api_path: str, query: dict[str, str | int | bool | None],
                   url: str) -> None:
    assert build_url(base, api_path, query) == url


@pytest.mark.parametrize("url, checked", [
    ("http://127.0.0.1:8082", "http://127.0.0.1:8082"),
    ("http://127.0.0.1:8082/", "http://127.0.0.1:8082"),
    ("https://vm-operator.vm-operator.svc:8082", "https://vm-operator.vm-operator.svc:8082"),
    ("http://[::1]:8082", "http://[::1]:8082"),
    ("http://host/behind/a/proxy/", "http://host/behind/a/proxy"),
])
def test_base_url_accepted(url: str, checked: str) -> None:
    assert check_base_url(url) == checked


@pytest.mark.parametrize("url, why", [
    ("ftp://host", "http:// or https://"),
    ("127.0.0.1:8082", "http:// or https://"),
    ("http://", "no host"),
    ("http://user:s3cret@host", "credentials"),
    ("http://host:99999", "cannot be parsed"),
    ("http://host/?x=1", "query"),
])
def test_base_url_refused(url: str, why: str) -> None:
    with pytest.raises(BadUrl) as caught:
        check_base_url(url)
    assert why in str(caught.value)
    assert "s3cret" not in str(caught.value)


# --- errors and exit codes -------------------------------------------------------------------------

PROBLEM = Problem("/problems/oci-image", "Tart runs only local VMs", 409, "clone it first")


def _refused(status: int) -> ClientError:
    return ClientError(status, Problem("/problems/x", "X", status, "why"), b"{}")


@pytest.mark.parametrize("exc, code", [
    (_refused(409), 1),
    (_refused(400), 1),
    (_refused(401), 1),
    (_refused(503), 1),
    (_refused(504), 4),  # the server's own time-out (tart-timeout, start-timeout)
    (Unreachable("refused"), 3),
    (TimedOut("late"), 4),
    (UsageError("bad"), 2),
    (BadUrl("bad"), 2),
    (KeyboardInterrupt(), EXIT_INTERRUPTED),
])
def test_exit_code(exc: BaseException, code: int) -> None:
    assert exit_code(exc) == code


URL = "http://127.0.0.1:8082/vms"


@pytest.mark.parametrize("exc, kind, words", [
    (ConnectionRefusedError(111, "Connection refused"), Unreachable, "refused"),
    (urllib.error.URLError(ConnectionRefusedError(111, "x")), Unreachable, "refused"),
    (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")), Unreachable,
     "cannot resolve"),
    (urllib.error.URLError(ssl.SSLCertVerificationError(1, "certificate verify failed")),
     Unreachable, "TLS"),
    (urllib.error.URLError(ssl.SSLError(1, "wrong version number")), Unreachable, "TLS"),
    (TimeoutError("timed out"), TimedOut, "no answer"),
    (urllib.error.URLError(TimeoutError("timed out")), TimedOut, "no answer"),
    (ConnectionResetError(104, "reset"), Unreachable, "broke"),
    (OSError(113, "No route to host"), Unreachable, "cannot reach"),
])
def test_transport_error(exc: BaseException, kind: type, words: str) -> None:
    mapped = transport_error(exc, URL)
    assert type(mapped) is kind
    assert words in str(mapped)
    assert "http://127.0.0.1:8082" in str(mapped)


def _headers(content_type: str) -> email.message.Message:
    message = email.message.Message()
    message["Content-Type"] = content_type
    return message


@pytest.mark.parametrize("content_type, body, kind", [
    ("application/problem+json",
     b'{"type":"/problems/oci-image","title":"T","status":409,"detail":"clone it first"}',
     ClientError),
    ("application/problem+json; charset=utf-8",
     b'{"type":"/problems/oci-image","title":"T","status":409,"detail":"clone it first"}',
     ClientError),
    ("application/problem+json", b'{"type":"/problems/oci-image"}', Unreachable),
    ("application/problem+json", b"not json", Unreachable),
    ("text/html", b"<h1>502 Bad Gateway</h1>", Unreachable),
    ("application/json", b'{"detail":"x"}', Unreachable),
])
def test_refusal(content_type: str, body: bytes, kind: type) -> None:
    found = refusal(409, _headers(content_type), body, URL)
    assert type(found) is kind
    if isinstance(found, ClientError):
        assert found.problem.slug == "oci-image" and found.problem.detail == "clone it first"


# --- the token -------------------------------------------------------------------------------------

TOKEN = "a-token-of-some-length-0123"


def _file(tmp_path: Path, content: bytes) -> str:
    target = tmp_path / "token"
    target.write_bytes(content)
    return str(target)


@pytest.mark.parametrize("flag, env, token", [
    (None, {}, None),
    (None, {"VM_OPERATOR_TOKEN": TOKEN}, TOKEN),
    (None, {"VM_OPERATOR_TOKEN": f"  {TOKEN}\n"}, TOKEN),
    (None, {"VM_OPERATOR_TOKEN_FILE": "FILE"}, TOKEN),
    ("FILE", {}, TOKEN),
    ("FILE", {"VM_OPERATOR_TOKEN": "other-token-from-env"}, TOKEN),  # the flag wins
])
def test_read_token(tmp_path: Path, flag: str | None, env: dict[str, str],
                    token: str | None) -> None:
    name = _file(tmp_path, TOKEN.encode() + b"\n")
    env = {key: name if value == "FILE" else value for key, value in env.items()}
    assert read_token(name if flag == "FILE" else flag, env) == token


@pytest.mark.parametrize("flag, env, content, why", [
    (None, {"VM_OPERATOR_TOKEN": ""}, b"", "VM_OPERATOR_TOKEN is empty"),
    (None, {"VM_OPERATOR_TOKEN": " \n"}, b"", "VM_OPERATOR_TOKEN is empty"),
    (None, {"VM_OPERATOR_TOKEN": "s3cr3t has space"}, b"", "printable ASCII"),
    (None, {"VM_OPERATOR_TOKEN": "s3cr3t\x1bk"}, b"", "printable ASCII"),
    (None, {"VM_OPERATOR_TOKEN": "s3cr3t", "VM_OPERATOR_TOKEN_FILE": "FILE"}, b"s3cr3t",
     "not both"),
    (None, {"VM_OPERATOR_TOKEN_FILE": ""}, b"", "VM_OPERATOR_TOKEN_FILE is empty"),
    (None, {"VM_OPERATOR_TOKEN_FILE": "FILE"}, b"\n", "is empty"),
    ("FILE", {}, b"s3cr3t-one\ns3cr3t-two\n", "on one line"),
    ("FILE", {}, b"s3cr3t" * 1000, "on one line"),
    ("FILE", {}, "s3cr3t-tøken".encode(), "printable ASCII"),
    ("/nonexistent/token", {}, b"", "cannot read --token-file (/nonexistent/token)"),
])
def test_read_token_refused(tmp_path: Path, flag: str | None, env: dict[str, str],
                            content: bytes, why: str) -> None:
    name = _file(tmp_path, content)
    env = {key: name if value == "FILE" else value for key, value in env.items()}
    with pytest.raises(UsageError) as caught:
        read_token(name if flag == "FILE" else flag, env)
    assert why in str(caught.value)
    assert "s3cr3t" not in str(caught.value)  # never the token, whatever is wrong with it


@pytest.mark.parametrize("argv, found", [
    (["vms"], False),
    (["vms", "--token-file", "/t"], False),
    (["vms", "--token-file=/t"], False),
    (["vms", "--token", "x"], True),
    (["vms", "--token=x"], True),
    (["vms", "--tok", "x"], True),
    (["--token", "x", "vms"], True),
    (["get", "--", "--token"], False),  # after --, an argument (argparse refuses the name)
])
def test_token_on_command_line(argv: list[str], found: bool) -> None:
    assert token_on_command_line(argv) is found


# --- logs --follow ----------------------------------------------------------------------------------


@pytest.mark.parametrize("data, omitted, shown, final, printed, after, skipped", [
    # the first answer: all of it but a line still being written
    (b"one\ntwo\nthr", 0, 0, False, b"one\ntwo\n", 8, 0),
    # the next answer, from the start of the log: only what is new
    (b"one\ntwo\nthree\nfour\n", 0, 8, False, b"three\nfour\n", 19, 0),
    # a tail answer that starts before what was shown (omitted < shown)
    (b"two\nthree\nfour\nfive\n", 4, 19, False, b"five\n", 24, 0),
    # nothing new
    (b"four\n", 14, 19, False, b"", 19, 0),
    # the VM stopped: the unfinished last line is printed too
    (b"four\nfive", 14, 19, True, b"five", 23, 0),
    # the answer starts after what was shown: 6 bytes were lost in between
    (b"seven\n", 25, 19, False, b"seven\n", 31, 6),
    # no complete new line yet
    (b"one\ntw", 0, 4, False, b"", 4, 0),
])
def test_log_step(data: bytes, omitted: int, shown: int, final: bool, printed: bytes,
                  after: int, skipped: int) -> None:
    step = log_step(LogChunk(data, omitted, False), shown, final)
    assert (step.data, step.shown, step.skipped) == (printed, after, skipped)


def test_log_chunk_end() -> None:
    assert LogChunk(b"abc\n", 10, True).end == 14


def test_health_is_read_with_or_without_its_details() -> None:
    # The operator tells the status only to a request whose Host is not its address.
    assert Health.from_json({"status": "healthy"}) == Health("healthy", None)
    full = Health.from_json({"status": "degraded", "message": "m", "timestamp": "t", "version": "v",
                             "tart": {"path": "/t", "available": False, "version": None}})
    assert full.details is not None and full.details.tart.path == "/t"


# --- the command line: where the command is, help, get's details ---------------------------------


@pytest.mark.parametrize("words, index", [
    (["vms"], 0),
    (["--url", "http://h:1", "events"], 2),
    (["--url=http://h:1", "--json", "get", "x"], 2),
    (["--json", "--request-timeout", "5", "--token-file", "t", "vms", "--url", "u"], 5),
    (["help", "get"], 0),
    ([], None),
    (["--port", "0"], None),                       # the server's flags
    (["--url", "u", "--port", "0", "vms"], None),  # a flag no client option is: the server's
    (["--url"], None),                             # options and no command
    (["--json=yes", "vms"], None),                 # --json takes no value
])
def test_command_index(words: list[str], index: int | None) -> None:
    assert command_index(words) == index


@pytest.mark.parametrize("topic, words", [
    ([], ["--help"]),
    (["get"], ["get", "--help"]),
    (["images"], ["images", "--help"]),
    (["images", "pull"], ["images", "pull", "--help"]),
    (["images", "frob"], None),
    (["get", "extra"], None),
    (["serve"], None),  # not the client's: cli.py answers it
    (["frobnicate"], None),
])
def test_help_words(topic: list[str], words: list[str] | None) -> None:
    assert help_words(topic) == words


def test_overview_groups_in_order_and_aligns_wrapped_summaries() -> None:
    listed = [Topic("events", "print the events", "events"),
              Topic("serve", "run the operator " + "and more " * 12, "the operator"),
              Topic("images pull", "pull an image", "images"),
              Topic("vms", "list the VMs", "VMs")]
    text = overview(listed, width=60)
    assert [line for line in text.splitlines() if line.endswith(":")] == [
        "the operator:", "VMs:", "images:", "events:"]  # GROUPS' order, empty ones left out
    lines = text.splitlines()
    assert lines[1].startswith("  serve        run the operator")
    assert all(len(line) <= 60 for line in lines)
    assert lines[2].startswith(" " * 15) and lines[2].strip()  # the summary's next line, aligned
    assert "  images pull  pull an image" in lines


def test_every_client_command_is_in_the_overview() -> None:
    text = describe()
    for topic in topics(TABLE):
        assert re.search(rf"^  {re.escape(topic.name)}  ", text, re.MULTILINE), topic.name


def _vm_detail(**fields: object) -> VmDetail:
    vm = Vm("ci", "local", "running", True, 50, 20, None)
    return VmDetail(vm, "linux", 2, 4096, "raw", "1024x768", None,
                    **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("detail, shown", [
    (_vm_detail(), {"ready": "-", "ip": "-",
                 "desired": "- (not managed: the operator only observes it)"}),
    (_vm_detail(ready=True, ip="192.168.64.5", spec=Spec("running", "always", "api"),
             restart_count=2, condition=None,
             last_exit=LastExit(3, None, "2026-12-07T06:00:00Z")),
     {"ready": "yes", "ip": "192.168.64.5", "desired": "running", "restart policy": "always",
      "condition": "-", "restart count": "2", "last exit": "exit code 3 at 2026-12-07T06:00:00Z"}),
    (_vm_detail(ready=False, spec=Spec("running", "on-failure", "config"), restart_count=1,
             condition="backing-off", next_attempt_at="2026-12-07T06:00:05Z",
             last_exit=LastExit(None, 9, "2026-12-07T06:00:01Z")),
     {"ready": "no", "desired": "running", "condition":
      "backing-off (next attempt at 2026-12-07T06:00:05Z)", "last exit":
      "signal 9 at 2026-12-07T06:00:01Z"}),
    (_vm_detail(spec=Spec(None, "never", "api"), restart_count=0,
             last_exit=LastExit(None, None, "2026-12-07T06:00:02Z")),
     {"desired": "-", "restart count": "0", "last exit": "unknown at 2026-12-07T06:00:02Z"}),
])
def test_detail_pairs_show_readiness_and_the_desired_state(detail: VmDetail,
                                                           shown: dict[str, str]) -> None:
    pairs = dict(detail_pairs(detail))
    assert {key: pairs[key] for key in shown} == shown
    if detail.spec is None:
        assert "restart count" not in pairs and "condition" not in pairs


def test_vm_detail_reads_the_desired_state_and_leaves_out_what_an_older_operator_lacks() -> None:
    base = {"name": "ci", "source": "local", "state": "stopped", "running": False,
            "disk_gb": 50, "size_gb": 20, "accessed": None, "last_run": None}
    old = VmDetail.from_json(base)
    assert (old.ready, old.ip, old.spec, old.restart_count, old.last_exit) == (
        None, None, None, None, None)
    new = VmDetail.from_json({**base, "ready": False, "ip": None, "restart_count": 1,
                              "spec": {"desired": "stopped", "restart": "always",
                                       "source": "api", "created_at": None},
                              "last_exit": {"exit_code": 0, "signal": None, "at": "t"},
                              "next_attempt_at": None, "condition": "exited"})
    assert new.spec == Spec("stopped", "always", "api")
    assert new.last_exit == LastExit(0, None, "t")
    assert (new.ready, new.restart_count, new.condition) == (False, 1, "exited")
