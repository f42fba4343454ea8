"""The HTTP contract, end to end: CORS on every response,
metrics labels, problem types that resolve to pages the operator serves, methods and Host as
RFC 9110/9112 say, JSON that ends with a newline, and bodies refused where a route takes none.

A real operator over loopback, driving the simulator; raw sockets wherever http.client would
add or hide something (the Host header, the framing, the method).
"""

from __future__ import annotations

import html
import json
import re
import socket
from typing import Any
from urllib.parse import urljoin

import pytest
from conftest import Operator
from support import raw_exchange, wait_for

from vm_operator.edge.problems import CATALOGUE

TOKEN = "full-access-token-0123456789abcdef"
READ_TOKEN = "read-only-token-0123456789abcdef"
ORIGIN = "https://dash.example"
SEQUOIA = "macos-sequoia-base"


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of one raw response."""
    assert raw, "no answer"
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers, body


def request(op: Operator, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """``head`` is the request line and header lines, without the blank line."""
    return parse(raw_exchange(op.port, head.encode("latin-1") + b"\r\n\r\n" + body))


def problem_doc(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"] == "application/problem+json", (status, headers)
    doc: dict[str, Any] = json.loads(body)
    assert doc["status"] == status and doc["detail"], doc
    return doc


# --- CORS on every response to an allowed origin ---------------------------------------

FULL = f"Authorization: Bearer {TOKEN}"
# (request line, header lines besides Host and Origin, body, the status of the refusal)
CORS_CASES = [
    ("GET /vms", [], b"", 401),
    ("GET /vms", [f"Authorization: Bearer {TOKEN}x"], b"", 401),
    (f"POST /vms/{SEQUOIA}/start", [f"Authorization: Bearer {READ_TOKEN}"], b"", 403),
    (f"POST /vms/{SEQUOIA}/start", [FULL, "Content-Type: text/plain", "Content-Length: 3"],
     b"a=b", 415),
    ("DELETE /vms", [FULL], b"", 405),
    ("GET /nope", [FULL], b"", 404),
    (f"POST /vms/{SEQUOIA}/stop", [FULL, "Content-Length: 5000"], b"", 413),
    (f"POST /vms/{SEQUOIA}/stop", [FULL, "Transfer-Encoding: chunked"], b"", 411),
    ("GET /vms", [FULL, "Host: 127.0.0.2"], b"", 400),
    (f"POST /vms/{SEQUOIA}/start", [FULL, "Content-Type: application/json", "Content-Length: 2"],
     b"{}", 400),
    ("GET /vms", [f"X-Filler-{i}: y" for i in range(120)], b"", 431),
    ("GET /vms", ["X-Long: " + "z" * 70000], b"", 431),
]


def cors_case(line: str, headers: list[str], origin: str) -> str:
    return "\r\n".join([f"{line} HTTP/1.1", "Host: 127.0.0.1", f"Origin: {origin}", *headers,
                        "Connection: close"])


def test_every_refusal_to_an_allowed_origin_carries_cors_headers(operator_factory: Any) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN, "VM_OPERATOR_READ_TOKEN": READ_TOKEN},
                          args=["--cors-origins", ORIGIN])
    failures = []
    for line, extra, body, expected in CORS_CASES:
        status, headers, answer = request(op, cors_case(line, extra, ORIGIN), body)
        if status != expected:
            failures.append(f"{line}: {status}, expected {expected}")
            continue
        problem_doc(status, headers, answer)
        if (headers.get("access-control-allow-origin") != ORIGIN
                or "Origin" not in headers.get("vary", "")):
            failures.append(f"{line} -> {status}: no CORS headers: {headers}")
        exposed = headers.get("access-control-expose-headers", "")
        if "WWW-Authenticate" not in exposed or "Allow" not in exposed:
            failures.append(f"{line} -> {status}: Access-Control-Expose-Headers {exposed!r}")
        # Another origin gets the same refusal and no CORS header.
        status, headers, _ = request(op, cors_case(line, extra, "https://evil.example"), body)
        if status != expected or "access-control-allow-origin" in headers:
            failures.append(f"{line} from another origin -> {status} {headers}")
    assert not failures, "\n".join(failures)
    assert op.calls("run") == []


def test_a_401_lets_the_browser_read_why(operator_factory: Any) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN}, args=["--cors-origins", ORIGIN])
    status, headers, body = op.request("GET", "/vms", {"Origin": ORIGIN})
    assert status == 401 and headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert "WWW-Authenticate" in headers["Access-Control-Expose-Headers"]
    assert json.loads(body)["type"] == "/problems/unauthorized"


def test_the_503_past_the_connection_cap_carries_cors_headers(operator_factory: Any) -> None:
    op = operator_factory(args=["--max-connections", "2", "--header-timeout", "30",
                                "--cors-origins", ORIGIN])
    idle = [socket.create_connection(("127.0.0.1", op.port)) for _ in range(2)]
    try:
        # The two idle connections hold both slots (they are accepted first).
        def overloaded(origin: str) -> tuple[int, dict[str, str], bytes]:
            return request(op, f"GET /vms HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {origin}")

        status, headers, body = wait_for(lambda: (r := overloaded(ORIGIN))[0] == 503 and r)
        assert headers["retry-after"] == "1"
        assert headers["access-control-allow-origin"] == ORIGIN
        doc = problem_doc(503, headers, body)
        assert doc["type"] == "/problems/overloaded" and body.endswith(b"\n")
        status, headers, _ = overloaded("https://evil.example")
        assert status == 503 and "access-control-allow-origin" not in headers
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: op.request("GET", "/health")[0] == 200)


# --- /metrics labels and the Tart call counter ------------------------------------------


def samples(op: Operator, family: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample of one metric family."""
    text = op.request("GET", "/metrics")[2].decode()
    found = []
    for line in text.splitlines():
        match = re.fullmatch(rf"{family}\{{(.*)\}} (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            found.append((labels, float(match.group(2))))
    return found


def counted(op: Operator, **want: str) -> float:
    return sum(value for labels, value in samples(op, "vm_operator_http_requests_total")
               if want.items() <= labels.items())


@pytest.mark.parametrize(
    ("method", "target", "route", "status"),
    [
        ("GET", "/vms?state=bogus", "/vms", "400"),
        ("GET", "/vms?colour=red", "/vms", "400"),
        ("GET", "/vms/-rf", "/vms/{name}", "400"),
        ("GET", "/vms/a%00b/ip", "/vms/{name}/ip", "400"),
        ("POST", f"/vms/{SEQUOIA}/stop?timeout=301", "/vms/{name}/stop", "400"),
        ("OPTIONS", "/vms/x/start", "/vms/{name}/start", "204"),
        ("OPTIONS", "/problems/nope", "/problems/{slug}", "204"),
        ("DELETE", "/vms", "/vms", "405"),
        ("GET", "/nope", "unmatched", "404"),
        ("OPTIONS", "/nope", "unmatched", "404"),
    ],
)
def test_refused_requests_are_counted_under_their_route(
    operator: Operator, method: str, target: str, route: str, status: str
) -> None:
    got = operator.request(method, target)[0]
    assert str(got) == status
    want = {"method": method, "route": route, "status": status}
    wait_for(lambda: counted(operator, **want) == 1,
             message=f"one request counted as {want}: {samples(operator, 'vm_operator_http_requests_total')}")
    if route != "unmatched":
        assert counted(operator, route="unmatched") == 0


def test_refusals_made_by_the_server_shell_are_counted_under_their_route(operator: Operator) -> None:
    status, _, _ = request(operator, f"POST /vms/{SEQUOIA}/stop HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     "Content-Length: 99999\r\nConnection: close")
    assert status == 413
    status, _, _ = request(operator, "TRACE /vms HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close")
    assert status == 405
    wait_for(lambda: counted(operator, method="POST", route="/vms/{name}/stop", status="413") == 1
             and counted(operator, method="other", route="/vms", status="405") == 1, timeout=3,
             message="413 and 405 counted under their routes")


def test_tart_run_launches_are_counted(operator: Operator) -> None:
    assert operator.request("POST", f"/vms/{SEQUOIA}/start")[0] == 202
    assert len(operator.calls("run")) == 1

    def runs() -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for labels, value in samples(operator, "vm_operator_tart_calls_total")
                if labels["command"] == "run"]

    assert runs() == [({"command": "run", "outcome": "ok"}, 1.0)]
    durations = [value for labels, value in samples(operator, "vm_operator_tart_call_duration_seconds_count")
                 if labels == {"command": "run"}]
    assert durations == [1.0]


# --- problem types resolve to pages the operator serves ---------------------------------


def test_every_problem_type_resolves_to_its_page(operator_factory: Any) -> None:
    # Tokens on: the documentation is public, like the probes.
    op = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN})
    status, headers, body = op.request("GET", "/problems")
    assert status == 200 and headers.get_content_type() == "text/html"
    index = body.decode()
    failures = []
    for problem in CATALOGUE:
        if f'href="/problems/{problem.slug}"' not in index:
            failures.append(f"{problem.slug}: not in the index")
        status, headers, body = op.request("GET", f"/problems/{problem.slug}")
        page = body.decode()
        if status != 200 or headers.get_content_type() != "text/html":
            failures.append(f"{problem.slug}: {status} {headers.get('Content-Type')}")
        elif html.escape(problem.title) not in page or str(problem.status) not in page:
            failures.append(f"{problem.slug}: the page lacks its title or status")
    assert not failures, "\n".join(failures)


def test_the_type_of_problems_met_over_http_resolves(operator_factory: Any) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": TOKEN})
    auth = {"Authorization": f"Bearer {TOKEN}"}
    met = [
        op.request("GET", "/vms"),  # 401
        op.request("GET", "/vms/no-such-vm", auth),  # 404
        op.request("GET", "/vms?state=bogus", auth),  # 400
        op.request("PUT", "/vms", auth),  # 405
        op.request("GET", "/problems/no-such-problem"),  # 404, public
    ]
    slugs = []
    for status, headers, body in met:
        doc = json.loads(body)
        assert doc["type"].startswith("/problems/"), doc
        slugs.append(doc["type"].removeprefix("/problems/"))
        # A relative reference: resolved against the request URI, as a client would.
        target = urljoin(f"{op.url}/vms/whatever", doc["type"]).removeprefix(op.url)
        got, page_headers, page = op.request("GET", target)
        assert got == 200 and page_headers.get_content_type() == "text/html", (doc, got)
        assert html.escape(doc["title"]) in page.decode(), doc
    assert slugs == ["unauthorized", "vm-not-found", "invalid-parameter", "method-not-allowed",
                     "unknown-problem"]


def test_an_unknown_problem_type_is_a_404(operator: Operator) -> None:
    for target in ("/problems/no-such-problem", "/problems/%2e%2e", "/problems/" + "a" * 300):
        status, headers, body = operator.request("GET", target)
        assert status == 404 and headers.get_content_type() == "application/problem+json"
        assert json.loads(body)["type"] == "/problems/unknown-problem"
    status, headers, _ = operator.request("POST", "/problems/vm-not-found")
    assert status == 405 and headers["Allow"] == "GET, HEAD, OPTIONS"


# --- methods and Host -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "PATCH", "PUT", "DELETE", "CONNECT", "FOO"])
def test_a_method_a_route_does_not_take_is_405_with_allow(operator: Operator, method: str) -> None:
    for target, allow in ((f"/vms/{SEQUOIA}/start", "OPTIONS, POST"),
                          ("/vms", "GET, HEAD, OPTIONS, POST"),
                          ("/health", "GET, HEAD, OPTIONS")):
        status, headers, body = request(
            operator, f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close")
        assert (status, headers.get("allow")) == (405, allow), (method, target, body)
        assert problem_doc(status, headers, body)["type"] == "/problems/method-not-allowed"
    status, headers, body = request(
        operator, f"{method} /no/such/path HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close")
    assert status == 404 and problem_doc(status, headers, body)["type"] == "/problems/no-route"
    assert [c for c in operator.calls() if c.command not in ("--version", "list")] == []


def test_a_method_that_is_not_a_token_is_a_400(operator: Operator) -> None:
    status, headers, body = request(operator, "G(E)T /vms HTTP/1.1\r\nHost: 127.0.0.1")
    assert status == 400 and problem_doc(status, headers, body)["type"] == "/problems/malformed-request"


def test_http_1_1_without_host_is_a_400_and_http_1_0_is_served(operator: Operator) -> None:
    status, headers, body = request(operator, "GET /vms HTTP/1.1\r\nConnection: close")
    doc = problem_doc(status, headers, body)
    assert status == 400 and doc["type"] == "/problems/bad-header" and "Host" in doc["detail"]
    status, headers, body = request(operator, "GET /health HTTP/1.1\r\nConnection: close")
    assert status == 400, "probes too: the Host rule is HTTP's, not the API's"
    status, headers, body = request(operator, "GET /vms HTTP/1.0")
    assert status == 200 and isinstance(json.loads(body), list)


# --- JSON ends with a newline ------------------------------------------------------------


def test_json_and_problem_documents_end_with_a_newline(operator: Operator) -> None:
    for method, target, status in (("GET", "/vms", 200), ("GET", "/health", 200),
                                   ("GET", f"/vms/{SEQUOIA}", 200), ("GET", "/openapi.json", 200),
                                   ("POST", f"/vms/{SEQUOIA}/start", 202),
                                   ("GET", "/vms/no-such-vm", 404), ("GET", "/nope", 404),
                                   ("GET", "/vms?state=x", 400)):
        got, headers, body = operator.request(method, target)
        assert got == status, (target, got)
        assert headers.get_content_type() in ("application/json", "application/problem+json")
        assert body.endswith((b"}\n", b"]\n")), (target, body[-20:])
        assert len(body) == int(headers["Content-Length"])
    # Problems made by the server shell, before any route.
    for head in ("GET /vms HTTP/1.1\r\nHost: a\r\nHost: b",
                 "GET /vms HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + "y" * 70000,
                 "GET /vms HTTP/2.0\r\nHost: 127.0.0.1"):
        status, headers, body = request(operator, head)
        assert status >= 400 and body.endswith(b"}\n"), (head[:40], status, body)


# --- a body on a route that takes none ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "body", "says"),
    [
        ("POST", f"/vms/{SEQUOIA}/start", b'{"suspendable": true}',
         "this route takes no body; pass suspendable as a query parameter: ?suspendable=true"),
        ("POST", f"/vms/{SEQUOIA}/stop", b'{"timeout": 5}',
         "pass timeout as a query parameter: ?timeout=5"),
        ("POST", f"/vms/{SEQUOIA}/start", b"{}", "its parameters go in the query string: suspendable"),
        ("POST", f"/vms/{SEQUOIA}/suspend", b'{"force": true}', "this route takes no body"),
        ("GET", "/vms", b'{"state": "running"}', "pass state as a query parameter: ?state=running"),
    ],
)
def test_a_body_on_a_route_that_takes_none_is_refused(
    operator: Operator, method: str, target: str, body: bytes, says: str
) -> None:
    status, headers, answer = operator.request(method, target, {"Content-Type": "application/json"},
                                               body=body)
    doc = problem_doc(status, {k.lower(): v for k, v in headers.items()}, answer)
    assert status == 400 and doc["type"] == "/problems/unexpected-body", doc
    assert says in doc["detail"], doc["detail"]
    assert operator.calls("run") == [] and operator.calls("stop") == []


def test_bodies_keep_their_other_refusals_and_an_empty_body_is_fine(operator: Operator) -> None:
    start = f"/vms/{SEQUOIA}/start"
    status, _, _ = operator.request("POST", start, {"Content-Type": "text/plain"}, body=b"x=1")
    assert status == 415
    status, _, _ = request(operator, f"POST {start} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     "Content-Length: 2000\r\nConnection: close")
    assert status == 413
    status, _, _ = request(operator, f"POST {start} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     "Transfer-Encoding: chunked\r\nConnection: close", b"0\r\n\r\n")
    assert status == 411
    assert operator.calls("run") == []
    status, _, _ = request(operator, f"POST {start} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     "Content-Length: 0\r\nConnection: close")
    assert status == 202


# --- numbers, whitespace and the request line, as strictly as RFC 9112 reads them ------------------

# str.isdigit() is true for these, and int() then fails or a bound is blown.
UNREADABLE_NUMBERS = [
    f"POST /vms/{SEQUOIA}/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \u00b2",
    f"POST /vms/{SEQUOIA}/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \u00b9\u00b3",
    f"POST /vms/{SEQUOIA}/stop HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {'9' * 5000}",
    "GET /health HTTP/\u00b2.0\r\nHost: 127.0.0.1",
    "GET /health HTTP/1.\u00b9\r\nHost: 127.0.0.1",
]


def test_numbers_that_are_not_ascii_digits_get_a_400_that_is_logged_and_counted(
    operator: Operator
) -> None:
    def refused() -> list[dict[str, Any]]:
        return [r for r in operator.log_records() if r.get("status") == 400]

    counted_before, logged_before = counted(operator, status="400"), len(refused())
    for head in UNREADABLE_NUMBERS:
        status, headers, body = request(operator, head + "\r\nConnection: close")
        doc = problem_doc(status, headers, body)
        assert status == 400 and doc["type"] in ("/problems/bad-header",
                                                 "/problems/malformed-request"), (head[:60], doc)
    wait_for(lambda: counted(operator, status="400") == counted_before + len(UNREADABLE_NUMBERS)
             and len(refused()) == logged_before + len(UNREADABLE_NUMBERS), timeout=3,
             message="each refusal counted in /metrics and written to the access log")
    assert b"Traceback" not in operator.stderr_path.read_bytes()
    assert operator.calls("stop") == []


# Whitespace to Python's str.strip() and str.split(), but not to HTTP (RFC 9110's OWS is SP and
# HTAB): a proxy in front may read these heads otherwise, so they are refused, never guessed at.
NOT_WHITESPACE = ["\x0b", "\x0c", "\x1c", "\x85", "\xa0"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_only_sp_and_htab_are_whitespace_in_a_header_value(operator: Operator, where: str) -> None:
    for char in NOT_WHITESPACE:
        value = char + "0" if where == "before" else "0" + char
        status, headers, body = request(operator, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                  f"Content-Length: {value}\r\nConnection: close")
        assert status == 400, (value, status)
        problem_doc(status, headers, body)
    status, _, _ = request(operator, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                     "Content-Length: \t 0 \t\r\nConnection: close")
    assert status == 200


def test_only_sp_separates_the_words_of_a_request_line(operator: Operator) -> None:
    for char in NOT_WHITESPACE + ["\t", "  "]:
        line = char.join(["GET", "/health", "HTTP/1.1"])
        status, headers, body = request(operator, f"{line}\r\nHost: 127.0.0.1\r\nConnection: close")
        assert status == 400, (line, status)
        assert problem_doc(status, headers, body)["type"] == "/problems/malformed-request"


def test_one_empty_line_before_a_request_is_ignored(operator: Operator) -> None:
    health = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    status, _, body = parse(raw_exchange(operator.port, b"\r\n" + health + b"Connection: close\r\n\r\n"))
    assert status == 200 and json.loads(body)["status"] == "healthy"
    # Between two requests on one connection too (as after a body that a client ended with CRLF).
    reply = raw_exchange(operator.port, health + b"\r\n" + b"\r\n" + health + b"Connection: close\r\n\r\n")
    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 2, reply
    # One is ignored, not any number of them.
    status, _, _ = parse(raw_exchange(operator.port, b"\r\n\r\n" + health + b"\r\n"))
    assert status == 400


# --- a 415 names the media types the route takes (from its declaration) -----------------------


@pytest.mark.parametrize("sent", ["text/plain", "application/xml", "multipart/form-data"])
def test_a_415_names_every_media_type_the_route_takes(operator: Operator, sent: str) -> None:
    from vm_operator.api import ROUTES

    bodied = [route for route in ROUTES if route.body is not None and route.method != "GET"]
    assert {route.method for route in bodied} >= {"POST", "PATCH"}, bodied
    for route in bodied:
        target = route.pattern.replace("{name}", SEQUOIA).replace("{ref}", "ghcr.io%2Fa%2Fb")
        status, headers, answer = operator.request(route.method, target, {"Content-Type": sent},
                                                   body=b"{}")
        doc = problem_doc(status, {k.lower(): v for k, v in headers.items()}, answer)
        assert status == 415 and doc["type"] == "/problems/unsupported-media-type", doc
        for media in route.body.media_types:
            assert media in doc["detail"], (route.method, route.pattern, doc["detail"])
        assert "send no body" not in doc["detail"], doc["detail"]
    patch = next(route for route in bodied if route.method == "PATCH")
    assert "application/merge-patch+json" in patch.body.media_types
    # a route that takes no body says so
    status, _, answer = operator.request("POST", f"/vms/{SEQUOIA}/stop", {"Content-Type": sent},
                                         body=b"{}")
    assert status == 415 and "send no body" in json.loads(answer)["detail"], answer
    assert operator.calls("set") == [] and operator.calls("stop") == []
