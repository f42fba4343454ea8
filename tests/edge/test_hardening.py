"""Hardening, end to end: tokens, browser defences, hostile input, slow clients, faults, load.

Every test talks to a real operator over loopback; each defence has a test that fails
without it.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import MACOS_VMS, Operator
from support import bytes_in_flight, children_of, memory_of, raw_exchange, threads_of, wait_for

from vm_operator.api import ROUTES
from vm_operator.edge.http1 import MAX_HEAD, MAX_HEADERS

TOKEN = "full-access-token-0123456789abcdef"
READ_TOKEN = "read-only-token-0123456789abcdef"


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, body


def settled_threads(op: Operator) -> int:
    """The server's thread count once start-up threads (the Tart version probe) are done."""
    wait_for(lambda: op.json("GET", "/health")[1]["tart"]["version"]
             or not op.json("GET", "/health")[1]["tart"]["available"])
    counts: list[int] = []

    def steady() -> bool:
        counts.append(threads_of(op.pid))
        return len(counts) > 5 and len(set(counts[-5:])) == 1

    wait_for(steady, interval=0.05)
    return counts[-1]


# --- who may do what ------------------------------------------------------------------


@pytest.fixture
def guarded(operator_factory: Any) -> Operator:
    return operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN, "VM_OPERATOR_READ_TOKEN": READ_TOKEN})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_guard_every_route_but_the_probes(guarded: Operator) -> None:
    for path in ("/health", "/ready"):
        assert guarded.request("GET", path)[0] == 200
    for method, path in (("GET", "/vms"), ("GET", "/metrics"), ("GET", "/openapi.json"),
                         ("POST", "/vms/macos-sequoia-base/start")):
        status, headers, _ = guarded.request(method, path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert headers["Content-Type"] == "application/problem+json"
        status, headers, _ = guarded.request(method, path, bearer(TOKEN + "x"))
        assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    assert guarded.request("GET", "/vms", bearer(TOKEN))[0] == 200
    assert guarded.request("GET", "/vms", bearer(READ_TOKEN))[0] == 200
    status, _, _ = guarded.request("POST", "/vms/macos-sequoia-base/start", bearer(READ_TOKEN))
    assert status == 403
    assert guarded.calls("run") == []
    assert guarded.request("POST", "/vms/macos-sequoia-base/start", bearer(TOKEN))[0] == 202


WRITE_TARGETS = {"{name}": "macos-sequoia-base", "{id}": "AAAAAAAAAAAAAAAA",
                 "{ref}": "ghcr.io%2Fcirruslabs%2Fmacos-sequoia-base%3Alatest"}


def test_the_read_token_may_use_no_write_method(guarded: Operator) -> None:
    """Every route that is not GET/HEAD/OPTIONS refuses the read-only token with 403 before
    its handler runs (PATCH and DELETE included, not only POST), and PUT, which no route
    takes, is never served; Tart sees no write."""
    writes = [route for route in ROUTES if route.method not in ("GET", "HEAD", "OPTIONS")]
    assert {"POST", "PATCH", "DELETE"} <= {route.method for route in writes}
    before = guarded.json("GET", "/vms", bearer(TOKEN))[1]
    for route in writes:
        path = route.pattern
        for param, value in WRITE_TARGETS.items():
            path = path.replace(param, value)
        media = "application/merge-patch+json" if route.method == "PATCH" else "application/json"
        body = b'{"cpu": 4}' if route.body is not None else None
        status, _, raw = guarded.request(route.method, path,
                                         {**bearer(READ_TOKEN), "Content-Type": media}, body)
        assert status == 403, (route.method, path, raw)
        assert json.loads(raw)["type"] == "/problems/forbidden", (route.method, path)
    status, _, _ = guarded.request("PUT", "/vms/macos-sequoia-base",
                                   {**bearer(READ_TOKEN), "Content-Type": "application/json"},
                                   b'{"cpu": 4}')
    assert status in (403, 405)
    assert guarded.json("GET", "/vms", bearer(TOKEN))[1] == before
    written = {"run", "stop", "suspend", "delete", "set", "clone", "pull", "prune"}
    assert [call.argv for call in guarded.calls() if call.command in written] == []


def test_tokens_never_appear_in_logs_errors_or_metrics(guarded: Operator) -> None:
    guarded.request("GET", "/vms", bearer(TOKEN))
    _, _, error_body = guarded.request("GET", "/vms", bearer(TOKEN + "-wrong"))
    guarded.request("POST", "/vms/x/start", bearer(READ_TOKEN))
    _, _, metrics = guarded.request("GET", "/metrics", bearer(TOKEN))
    seen = (guarded.stdout_path.read_bytes() + guarded.stderr_path.read_bytes() + error_body + metrics)
    for secret in (TOKEN, READ_TOKEN, TOKEN[:12], READ_TOKEN[:12]):
        assert secret.encode() not in seen


def test_token_from_a_file(operator_factory: Any, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    op = operator_factory(env={"VM_OPERATOR_TOKEN_FILE": str(secret)})
    assert op.request("GET", "/vms")[0] == 401
    assert op.request("GET", "/vms", bearer(TOKEN))[0] == 200


def test_without_tokens_a_rebound_host_is_refused(operator: Operator) -> None:
    assert operator.request("GET", "/vms", {"Host": "attacker.example"})[0] == 403
    assert operator.request("GET", "/health", {"Host": "attacker.example"})[0] == 200
    assert operator.request("GET", "/vms", {"Host": "localhost:8082"})[0] == 200


def test_without_tokens_a_host_must_be_a_host_and_a_port_and_nothing_more(operator: Operator) -> None:
    for host in ("[::1]evil.com", "[::1].evil.com", "[::1]:8082evil.com", "[::1]:8082.evil.com",
                 "[::1]@evil.com", "127.0.0.1:8082:evil.com"):
        status, _, body = operator.request("GET", "/vms", {"Host": host})
        assert status == 403 and json.loads(body)["type"] == "/problems/host-not-allowed", host
    for host in ("[::1]", "[::1]:8082", "127.0.0.1:8082"):
        assert operator.request("GET", "/vms", {"Host": host})[0] == 200, host


FOREIGN = {"Host": "rebound.attacker.example:8082"}  # what a DNS-rebinding page's requests carry


@pytest.mark.parametrize("tokens", [False, True], ids=["open", "with-tokens"])
def test_the_probes_tell_a_foreign_host_their_status_only(operator_factory: Any, tokens: bool) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN} if tokens else None)
    assert op.json("GET", "/health", FOREIGN) == (200, {"status": "healthy"})
    assert op.json("GET", "/ready", FOREIGN) == (200, {"status": "ready"})
    status, health = op.json("GET", "/health")
    assert status == 200 and health["tart"]["path"] and health["version"]
    status, ready = op.json("GET", "/ready")
    assert status == 200 and ready["status"] == "ready" and ready["vms"] > 0
    if tokens:  # a token is no DNS rebinding either
        status, health = op.json("GET", "/health", {**FOREIGN, **bearer(TOKEN)})
        assert status == 200 and health["tart"]["path"]
        assert op.json("GET", "/ready", {**FOREIGN, **bearer(TOKEN)})[1]["vms"] > 0


def test_a_foreign_host_is_not_told_where_tart_is_nor_why_it_fails(operator_factory: Any) -> None:
    op = operator_factory(args=["--tart", "/home/someone/bin/tart"])
    status, body = op.json("GET", "/health", FOREIGN)
    assert (status, body) == (200, {"status": "degraded"})
    status, _, raw = op.request("GET", "/ready", FOREIGN)
    assert status == 503 and b"someone" not in raw
    assert json.loads(raw)["type"] == "/problems/not-ready"
    assert b"/home/someone/bin/tart" in op.request("GET", "/health")[2]
    assert op.request("GET", "/ready")[0] == 503


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415),
    ],
)
def test_without_tokens_a_cross_site_write_is_refused(
    operator: Operator, headers: dict[str, str], status: int
) -> None:
    got, _, body = operator.request("POST", "/vms/macos-sequoia-base/start", headers, body=b"a=b")
    assert got == status
    assert json.loads(body)["status"] == status
    assert operator.calls("run") == []


def test_cors_is_off_by_default_and_follows_the_allow_list(operator_factory: Any) -> None:
    plain = operator_factory()
    _, headers, _ = plain.request("GET", "/vms", {"Origin": "https://dash.example"})
    assert headers.get("Access-Control-Allow-Origin") is None
    allowed = operator_factory(args=["--cors-origins", "https://dash.example"])
    _, headers, _ = allowed.request("GET", "/vms", {"Origin": "https://dash.example"})
    assert headers["Access-Control-Allow-Origin"] == "https://dash.example"
    status, headers, _ = allowed.request(
        "OPTIONS", "/vms/a/start",
        {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"})
    assert status == 204 and "POST" in headers["Access-Control-Allow-Methods"]
    _, headers, _ = allowed.request("GET", "/vms", {"Origin": "https://evil.example"})
    assert headers.get("Access-Control-Allow-Origin") is None


def test_unauthenticated_beyond_loopback_warns_loudly(operator_factory: Any) -> None:
    op = operator_factory(args=["--host", "0.0.0.0"])
    # written just after the listening line the factory waits for
    warnings = wait_for(lambda: [r for r in op.log_records() if r.get("event") == "unauthenticated"],
                        message="the unauthenticated warning")
    assert "WITHOUT authentication" in warnings[0]["message"]
    quiet = operator_factory()
    assert not [r for r in quiet.log_records() if r.get("event") == "unauthenticated"]


def test_the_macos_cap_refuses_before_tart_is_asked(operator_factory: Any) -> None:
    op = operator_factory(args=["--max-running", "1"])
    assert op.request("POST", f"/vms/{MACOS_VMS[0]}/start")[0] == 202
    status, body = op.json("POST", f"/vms/{MACOS_VMS[1]}/start")
    assert status == 409 and "at most 1 macOS VMs" in body["detail"]
    assert [c.argv[-1] for c in op.calls("run")] == [MACOS_VMS[0]]
    # Linux guests do not count against Apple's licence.
    assert op.request("POST", "/vms/ubuntu-runner/start")[0] == 202


# --- bad input: a seeded fuzzer -------------------------------------------------------

HOSTILE_NAMES = ["-rf", "--help", "..", "a%2F..%2Fb", "a%00b", "a%0Ab", "a%20b", "%E2%80%8Bzw",
                 "%E2%80%AEevil", "e%CC%81", "%C0%AF", "%zz", "%", "a%2", "%FF%FE", "a%09b",
                 "x" * 300, "%2e%2e", "%2D-version", "a%7Fb", "%EF%BB%BFbom"]


def _fuzz_case(rng: random.Random) -> tuple[bytes, set[int]]:
    """One hostile request and the statuses it may get (all 4xx)."""
    kind = rng.randrange(9)
    name = rng.choice(HOSTILE_NAMES)
    action = rng.choice(["", "/start", "/stop", "/suspend", "/ip", "/logs"])
    method = "POST" if action in ("/start", "/stop", "/suspend") else "GET"
    end = b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
    if kind == 0:
        return f"{method} /vms/{name}{action} HTTP/1.1\r\n".encode() + end, {400}
    if kind == 1:  # malformed request lines
        line = rng.choice([b"GARBAGE\r\n", b"GET\r\n", b"GET / HTTP/9.9\r\n", b"GET / FTP/1.0\r\n",
                           b"GET  /vms HTTP/1.1 extra\r\n", bytes(rng.randrange(1, 256) for _ in
                                                                 range(rng.randrange(1, 40))) + b"\r\n"])
        return line + end, {400, 404, 405, 505}
    if kind == 2:  # over-long URL
        return b"GET /vms/" + b"a" * rng.randrange(9000, 20000) + b" HTTP/1.1\r\n" + end, {414}
    if kind == 3:  # over-long header / too many headers
        if rng.random() < 0.5:
            return b"GET /vms HTTP/1.1\r\nX-Big: " + b"b" * 70000 + b"\r\n" + end, {431}
        many = b"".join(b"X-%d: y\r\n" % i for i in range(120))
        return b"GET /vms HTTP/1.1\r\n" + many + end, {431}
    if kind == 4:  # bodies over the limit: answered without reading them
        size = rng.randrange(1025, 10_000_000)
        return (f"POST /vms/macos-sequoia-base/stop HTTP/1.1\r\nContent-Length: {size}\r\n".encode()
                + end + b"z" * min(size, 4096)), {413}
    if kind == 5:  # wrong content types
        ctype = rng.choice(["text/plain", "application/x-www-form-urlencoded", "application/xml",
                            "multipart/form-data; boundary=q", "image/png"])
        return (f"POST /vms/macos-sequoia-base/start HTTP/1.1\r\nContent-Type: {ctype}\r\n"
                "Content-Length: 3\r\n").encode() + end + b"a=b", {415}
    if kind == 6:  # invalid query values
        target = rng.choice(["/vms?state=RUNNING", "/vms?source=ftp", "/vms?state=", "/vms?x=1",
                             "/vms?state=running&state=stopped", "/vms?state=%zz", "/vms?%FF=1",
                             "/vms/macos-sequoia-base/ip?wait=121", "/vms/macos-sequoia-base/ip?wait=-1",
                             "/vms/macos-sequoia-base/ip?wait=1e3"])
        post = ["/vms/macos-sequoia-base/stop?timeout=301", "/vms/macos-sequoia-base/stop?timeout=x",
                "/vms/macos-sequoia-base/start?suspendable=maybe"]
        if rng.random() < 0.4:
            return f"POST {rng.choice(post)} HTTP/1.1\r\n".encode() + end, {400}
        return f"GET {target} HTTP/1.1\r\n".encode() + end, {400}
    if kind == 7:  # unknown routes and wrong methods
        # ("/" is the dashboard's page since the dashboard came: not an unknown route)
        target = rng.choice(["/ui/nope.js", "/vm", "/vms/a/b/c", "/admin", "/vms/a/start/x",
                             "/../etc/passwd"])
        verb = rng.choice(["GET", "PUT", "DELETE", "PATCH"])
        if rng.random() < 0.5:
            return f"{verb} {target} HTTP/1.1\r\n".encode() + end, {404}
        return b"DELETE /vms HTTP/1.1\r\n" + end, {405}
    # kind 8: bad framing
    header = rng.choice(["Transfer-Encoding: chunked", "Content-Length: -1", "Content-Length: 1x",
                         "Host: a\r\nHost: b"])
    return f"POST /vms/macos-sequoia-base/stop HTTP/1.1\r\n{header}\r\n".encode() + end, {400, 411}


def test_seeded_fuzz_gets_precise_4xx_and_never_reaches_tart(operator: Operator) -> None:
    rng = random.Random(20261128)
    cases = [_fuzz_case(rng) for _ in range(3000)]
    for raw, expected in cases:
        reply = raw_exchange(operator.port, raw)
        assert reply, f"no answer to {raw[:80]!r}"
        status, headers, body = parse_response(reply)
        assert status in expected, f"{status} for {raw[:120]!r}"
        assert headers["content-type"] == "application/problem+json", raw[:80]
        doc = json.loads(body)
        assert doc["status"] == status and doc["detail"]
        assert b"Traceback" not in body
    # None of it reached Tart (the start-up version probe aside).
    assert [call.argv for call in operator.calls() if call.command != "--version"] == []
    assert b"Traceback" not in operator.stderr_path.read_bytes()
    assert operator.request("GET", "/health")[0] == 200
    # Hostile methods and paths must not become metric labels (unbounded series).
    metrics = operator.request("GET", "/metrics")[2].decode()
    methods = set(re.findall(r'method="([^"]*)"', metrics))
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}
    routes = set(re.findall(r'route="([^"]*)"', metrics))
    assert routes <= {route.pattern for route in ROUTES} | {"unmatched"}, routes


# --- slow clients and bounded concurrency ---------------------------------------------


def test_a_slow_head_is_cut_off_and_frees_its_worker(operator_factory: Any) -> None:
    op = operator_factory(args=["--header-timeout", "1"])
    baseline = settled_threads(op)
    with socket.create_connection(("127.0.0.1", op.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /vms HTTP/1.1\r\n")
        closed_after = None
        for _ in range(40):  # one header byte every 0.2 s: never finishes on its own
            try:
                sock.sendall(b"X")
                sock.settimeout(0.2)
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - started
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
    assert closed_after is not None and closed_after < 2.5, closed_after
    wait_for(lambda: threads_of(op.pid) <= baseline, message="worker thread not freed")


def test_a_client_that_never_reads_is_cut_off_and_frees_its_worker(operator_factory: Any) -> None:
    op = operator_factory(args=["--header-timeout", "1"])
    baseline = settled_threads(op)
    request = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", op.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(0.5)
        try:  # pipeline requests and never read: the server's writes back up and block
            for _ in range(20000):
                sock.sendall(request)
        except OSError:
            pass
        wait_for(lambda: threads_of(op.pid) <= baseline,
                 message="the worker stuck writing to a non-reading client was not freed")
    assert op.request("GET", "/health")[0] == 200


def test_request_heads_are_bounded_in_all_and_so_is_what_they_cost(operator_factory: Any) -> None:
    """Many connections each send as much head as a bound on each line (64 KiB, as http.client)
    and on the count of lines alone would let through: each gets a 431 past ``MAX_HEAD``, and
    the operator's peak memory grows by what the declared bound costs, not by what was sent."""
    conns = 32
    op = operator_factory(args=["--max-connections", str(conns), "--header-timeout", "120"])
    threads = settled_threads(op)
    request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    # The same number of connections served at once first: their threads' cost is in the
    # baseline, which is the peak (VmHWM) so far.
    warm = [socket.create_connection(("127.0.0.1", op.port), timeout=30) for _ in range(conns)]
    for sock in warm:
        sock.sendall(request + b"\r\n")
    for sock in warm:
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    for sock in warm:
        sock.close()
    wait_for(lambda: threads_of(op.pid) <= threads, message="the warm-up's connections ended")
    baseline = memory_of(op.pid, "VmHWM")
    line = b"X-Filler: " + b"a" * (64 * 1024 - 12) + b"\r\n"
    # Each connection first sends a head just under the bound and leaves it unfinished: the
    # server holds all of them at once (nothing of them left unread in its sockets)...
    held = b"".join(b"X-%d: %s\r\n" % (i, b"h" * 1000) for i in range((MAX_HEAD - 2048) // 1008))
    attackers = [socket.create_connection(("127.0.0.1", op.port), timeout=30) for _ in range(conns)]
    for sock in attackers:
        sock.sendall(request + held)

    def all_read(connections: int | None = None) -> bool:
        flight = bytes_in_flight(op.port)
        return (connections in (None, len(flight["unread"]))
                and not any(flight["unread"] + flight["unsent"]))

    wait_for(lambda: all_read(conns), timeout=30, message="the server read every unfinished head")
    # ...then the rest of what the per-line bound alone would take (Host is one of the lines).
    for sock in attackers:
        try:
            sock.sendall(line * (MAX_HEADERS - 1 - held.count(b"\n")))
        except OSError:
            pass  # answered and closed before it read everything
    wait_for(all_read, timeout=30, message="the server read all it was going to read")
    grown = memory_of(op.pid, "VmHWM") - baseline
    bound = conns * 2 * MAX_HEAD + 8 * 1024 * 1024  # the heads (and their decoded copies)
    assert grown <= bound, f"peak memory grew by {grown >> 20} MiB (bound {bound >> 20} MiB)"
    for sock in attackers:
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
        sock.close()
        status, _, body = parse_response(reply)
        assert status == 431 and json.loads(body)["type"] == "/problems/headers-too-large"
    assert op.request("GET", "/health")[0] == 200


def test_past_the_connection_cap_a_prompt_503(operator_factory: Any) -> None:
    op = operator_factory(args=["--max-connections", "4", "--header-timeout", "30"])
    baseline = settled_threads(op)
    idle = [socket.create_connection(("127.0.0.1", op.port)) for _ in range(4)]
    try:
        wait_for(lambda: threads_of(op.pid) >= baseline + 4)
        started = time.monotonic()
        reply = raw_exchange(op.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert time.monotonic() - started < 1.0
        status, headers, _ = parse_response(reply)
        assert status == 503 and headers["retry-after"] == "1"
        assert threads_of(op.pid) <= baseline + 4
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: op.request("GET", "/health")[0] == 200)


# --- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "args", "status"),
    [
        ({}, ["--tart", "/nonexistent/tart"], 503),
        ({"TART_SIM_HANG": "list"}, [], 504),
        ({"TART_SIM_GARBAGE": "list"}, [], 502),
    ],
)
def test_tart_faults_answer_in_time_and_leave_nothing_behind(
    operator_factory: Any, env: dict[str, str], args: list[str], status: int
) -> None:
    op = operator_factory(env=env, args=["--tart-timeout", "1", *args])
    baseline = settled_threads(op)
    for _ in range(3):
        started = time.monotonic()
        got, body = op.json("GET", "/vms")
        assert got == status and body["status"] == status
        assert time.monotonic() - started < 2.0
    wait_for(lambda: children_of(op.pid) == [], message="a Tart child is left")
    wait_for(lambda: threads_of(op.pid) <= baseline, message="threads not back to baseline")
    assert op.request("GET", "/health")[0] == 200


def test_not_executable_tart_is_a_503(operator_factory: Any, tmp_path: Path) -> None:
    plain = tmp_path / "tart"
    plain.write_text("#!/bin/sh\necho 2.31.0\n")
    plain.chmod(0o644)
    op = operator_factory(args=["--tart", str(plain)])
    status, body = op.json("GET", "/vms")
    assert status == 503 and "not executable" in body["detail"]
    assert op.json("GET", "/health")[1]["status"] == "degraded"


def test_tart_exiting_non_zero_or_killed_mid_call(operator_factory: Any) -> None:
    op = operator_factory(env={"TART_SIM_HANG": "get"}, args=["--tart-timeout", "5"])
    result: dict[str, Any] = {}
    reader = threading.Thread(
        target=lambda: result.update(zip(("status", "body"),
                                         op.json("GET", "/vms/macos-sequoia-base"))))
    reader.start()
    hung = wait_for(lambda: [c for c in op.calls("get") if not c.finished])
    os.kill(hung[0].pid, signal.SIGKILL)  # someone kills Tart mid-call
    reader.join(10)
    assert result["status"] == 502 and "killed by signal 9" in result["body"]["detail"]
    wait_for(lambda: children_of(op.pid) == [])
    status, _ = op.json("POST", "/vms/no-such-vm/stop")
    assert status == 404


# --- load -------------------------------------------------------------------------------


def test_load_holds_and_every_vm_ends_where_its_last_command_put_it(operator_factory: Any) -> None:
    op = operator_factory(args=["--no-access-log"])
    vms = ("macos-sequoia-base", "macos-sonoma-xcode", "ubuntu-runner")
    clients, duration = 200, 8.0
    deadline = time.monotonic() + duration
    unexpected: list[tuple[str, str, int]] = []
    accepted: list[tuple[float, str, str]] = []
    served, shed = [0], [0]
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            roll = rng.random()
            vm = rng.choice(vms)
            if roll < 0.02:
                method, path = "POST", f"/vms/{vm}/{rng.choice(['start', 'stop'])}?timeout=2"
                path = path.replace("start?timeout=2", "start")
            elif roll < 0.5:
                method, path = "GET", "/vms"
            elif roll < 0.9:
                method, path = "GET", f"/vms/{vm}"
            else:
                method, path = "GET", "/health"
            try:
                status, _, body = op.request(method, path, timeout=30)
            except OSError as exc:
                with lock:
                    unexpected.append((method, path, -1))
                raise AssertionError(f"connection failed: {exc}") from exc
            with lock:
                served[0] += 1
                if status == 503 and json.loads(body)["type"].endswith("vm-busy"):
                    shed[0] += 1  # deliberate: the VM's write queue is full, retry later
                elif status not in (200, 202, 409):
                    unexpected.append((method, path, status))
                if method == "POST" and status in (200, 202):
                    accepted.append((time.monotonic(), vm, path.split("/")[3].split("?")[0]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    print(f"\nload: {clients} clients, {served[0]} requests in {duration:g} s, "
          f"{len(accepted)} accepted starts/stops, {shed[0]} shed (vm-busy), "
          f"unexpected: {unexpected[:5]}")
    assert unexpected == []
    assert served[0] > 1000
    # At most one tart run per VM at any moment: run intervals of one VM never overlap.
    runs: dict[str, list[tuple[float, float]]] = {}
    ends = _run_ends(op)
    for call in op.calls("run"):
        runs.setdefault(call.argv[-1], []).append((call.started, ends.get(call.pid, float("inf"))))
    for vm, spans in runs.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two tart run of {vm} overlapped"
    # Each VM is in the state its last accepted command implies.
    final = {vm["name"]: vm["state"] for vm in op.json("GET", "/vms")[1]}
    for vm in vms:
        commands = [cmd for _, name, cmd in sorted(accepted) if name == vm]
        if commands:
            assert final[vm] == ("running" if commands[-1] == "start" else "stopped"), vm
    assert [state for _, state in children_of(op.pid) if state == "Z"] == []


def _run_ends(op: Operator) -> dict[int, float]:
    """pid → end time of each finished ``tart run`` in the call log."""
    ends = {}
    for line in op.call_log.read_text().splitlines():
        parts = line.split(" ", 3)
        if len(parts) >= 3 and parts[2] != "start" and "run" in line:
            ends[int(parts[0])] = float(parts[2])
    return ends
