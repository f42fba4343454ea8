"""Tokens, Host checks, cross-site refusals and CORS, as pure functions."""

import pytest

from vm_operator.edge.security import (
    Access,
    check_access,
    cors_headers,
    host_allowed,
    host_name,
    trusted,
)

TOKEN = "t" * 32
READ = "r" * 32
WITH_TOKENS = Access(token=TOKEN, read_token=READ)
OPEN = Access(allowed_hosts=("ci-mac.example",), cors_origins=("https://dash.example",))


def status(access: Access, method: str, headers: dict, probe: bool = False) -> int | None:
    error = check_access(access, method, probe, headers)
    return None if error is None else error.status


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {}, 401),
        ("GET", {"Authorization": f"Bearer {TOKEN}"}, None),
        ("POST", {"Authorization": f"Bearer {TOKEN}"}, None),
        ("GET", {"Authorization": f"bearer {READ}"}, None),
        ("POST", {"Authorization": f"Bearer {READ}"}, 403),
        # every method that is not a read is refused to the read token, not only POST
        ("PATCH", {"Authorization": f"Bearer {READ}"}, 403),
        ("DELETE", {"Authorization": f"Bearer {READ}"}, 403),
        ("PUT", {"Authorization": f"Bearer {READ}"}, 403),
        ("TRACE", {"Authorization": f"Bearer {READ}"}, 403),
        ("HEAD", {"Authorization": f"Bearer {READ}"}, None),
        ("OPTIONS", {"Authorization": f"Bearer {READ}"}, None),
        ("DELETE", {"Authorization": f"Bearer {TOKEN}"}, None),
        ("GET", {"Authorization": f"Bearer {TOKEN}x"}, 401),
        ("GET", {"Authorization": f"Basic {TOKEN}"}, 401),
        ("GET", {"Authorization": "Bearer"}, 401),
        ("GET", {"Authorization": f"Bearer {TOKEN[:-1]}"}, 401),
        # With tokens the Host check is not needed: a browser has no token to send.
        ("GET", {"Authorization": f"Bearer {TOKEN}", "Host": "evil.example"}, None),
    ],
)
def test_tokens(method: str, headers: dict, expected: int | None) -> None:
    assert status(WITH_TOKENS, method, headers) == expected


def test_401_carries_a_challenge_and_no_token() -> None:
    error = check_access(WITH_TOKENS, "GET", False, {"Authorization": f"Bearer {TOKEN}x"})
    assert error is not None
    assert dict(error.headers)["WWW-Authenticate"].startswith("Bearer ")
    assert TOKEN not in error.response().body.decode()


@pytest.mark.parametrize("probe_method", ["GET", "HEAD"])
def test_probes_need_no_token_and_no_host(probe_method: str) -> None:
    assert status(WITH_TOKENS, probe_method, {}, probe=True) is None
    assert status(OPEN, probe_method, {"Host": "rebound.evil"}, probe=True) is None


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {"Host": "127.0.0.1:8082"}, None),
        ("GET", {"Host": "[::1]:8082"}, None),
        ("GET", {"Host": "localhost:8082"}, None),
        ("GET", {"Host": "foo.localhost"}, None),
        ("GET", {"Host": "192.168.1.20"}, None),
        ("GET", {"Host": "CI-MAC.example:8082"}, None),
        ("GET", {"Host": "attacker.example"}, 403),
        ("GET", {"Host": "localhost.attacker.example"}, 403),
        # Only "localhost" itself and names under ".localhost" (RFC 6761): a name that merely
        # ends in the letters, or starts with them, is anybody's DNS name.
        ("GET", {"Host": "evillocalhost"}, 403),
        ("GET", {"Host": "evillocalhost:8082"}, 403),
        ("GET", {"Host": "EvilLocalhost"}, 403),
        ("GET", {"Host": "[evillocalhost]:8082"}, 403),
        ("GET", {"Host": "evil-localhost.localdomain"}, 403),
        ("GET", {"Host": "localhost.evil.com"}, 403),
        ("GET", {"Host": "localhost.evil.com:8082"}, 403),
        ("GET", {"Host": "127.0.0.1.evil.com"}, 403),
        # A bracketed IPv6 address may be followed by a port and nothing else (RFC 3986).
        ("GET", {"Host": "[::1]evil.com"}, 403),
        ("GET", {"Host": "[::1].evil.com"}, 403),
        ("GET", {"Host": "[::1]:8082evil.com"}, 403),
        ("GET", {"Host": "[::1]:8082.evil.com"}, 403),
        ("GET", {"Host": "[::1]@evil.com"}, 403),
        ("GET", {"Host": "[::1]/evil.com"}, 403),
        ("GET", {"Host": "[::1"}, 403),
        ("GET", {"Host": "[::1]]"}, 403),
        ("GET", {"Host": "[127.0.0.1]"}, 403),
        ("GET", {"Host": "[v1.fe]"}, 403),
        ("GET", {"Host": "::1"}, 403),  # an IPv6 address is bracketed in a Host header
        ("GET", {"Host": "127.0.0.1:8082:80"}, 403),
        ("GET", {"Host": "127.0.0.1:808200"}, 403),
        ("GET", {"Host": "127.0.0.1 evil.com"}, 403),
        ("GET", {"Host": "localhost@evil.com"}, 403),
        ("GET", {"Host": "[0:0:0:0:0:0:0:1]:8082"}, None),
        ("GET", {"Host": "[::ffff:127.0.0.1]"}, None),
        ("GET", {"Host": "127.0.0.1:"}, None),  # an empty port is a port (RFC 3986)
        ("GET", {"Host": "LOCALHOST"}, None),
        ("GET", {"Host": "Foo.LocalHost:8082"}, None),
        ("GET", {"Host": "a.b.localhost"}, None),
        ("GET", {"Host": "localhost.localdomain"}, None),
        # A trailing dot is not folded away: refused, on the safe side.
        ("GET", {"Host": "LOCALHOST."}, 403),
        ("GET", {"Host": "foo.localhost."}, 403),
        ("POST", {"Host": "evillocalhost"}, 403),
        ("POST", {"Host": "127.0.0.1:8082"}, None),
        ("POST", {"Host": "127.0.0.1:8082", "Origin": "http://127.0.0.1:8082"}, None),
        ("POST", {"Host": "127.0.0.1:8082", "Origin": "https://evil.example"}, 403),
        ("POST", {"Host": "127.0.0.1:8082", "Origin": "null"}, 403),
        ("POST", {"Host": "127.0.0.1:8082", "Origin": "https://dash.example"}, None),
        ("POST", {"Host": "127.0.0.1:8082", "Sec-Fetch-Site": "cross-site"}, 403),
        ("POST", {"Host": "127.0.0.1", "Content-Type": "application/x-www-form-urlencoded"}, 415),
        ("POST", {"Host": "127.0.0.1", "Content-Type": "multipart/form-data; boundary=x"}, 415),
        ("POST", {"Host": "127.0.0.1", "Content-Type": "text/plain"}, 415),
        ("POST", {"Host": "127.0.0.1", "Content-Type": "application/json; charset=utf-8"}, None),
        ("GET", {"Host": "127.0.0.1", "Origin": "https://evil.example"}, None),
    ],
)
def test_without_tokens_the_host_is_defended(method: str, headers: dict, expected: int | None) -> None:
    assert status(OPEN, method, headers) == expected


@pytest.mark.parametrize(
    ("header", "host"),
    [("127.0.0.1:8082", "127.0.0.1"), ("[::1]:80", "::1"), ("[::1]", "::1"),
     ("Example.COM", "example.com"), ("[::1]evil.com", None), ("[::1].evil.com", None),
     ("[::1]:80x", None), ("::1", None), ("a:1:2", None), ("[::1", None), ("[fe80::1%25en0]", None),
     ("[0::1]", "::1"), ("ci-mac.example:8082", "ci-mac.example")],
)
def test_host_name(header: str, host: str | None) -> None:
    assert host_name(header) == host


@pytest.mark.parametrize(
    ("access", "headers", "expected"),
    [
        # A probe's details go to a Host that DNS rebinding cannot give, or to a token.
        (OPEN, {"Host": "127.0.0.1:8082"}, True),
        (OPEN, {"Host": "localhost"}, True),
        (OPEN, {"Host": "ci-mac.example"}, True),
        (OPEN, {}, True),  # HTTP/1.0 without Host: no browser sends that
        (OPEN, {"Host": "rebound.evil"}, False),
        (OPEN, {"Host": "[::1]evil.com"}, False),
        (OPEN, {"Host": "rebound.evil", "Authorization": f"Bearer {TOKEN}"}, False),
        (WITH_TOKENS, {"Host": "127.0.0.1"}, True),
        (WITH_TOKENS, {"Host": "rebound.evil"}, False),
        (WITH_TOKENS, {"Host": "rebound.evil", "Authorization": f"Bearer {TOKEN}"}, True),
        (WITH_TOKENS, {"Host": "rebound.evil", "Authorization": f"Bearer {READ}"}, True),
        (WITH_TOKENS, {"Host": "rebound.evil", "Authorization": f"Bearer {TOKEN}x"}, False),
    ],
)
def test_who_is_told_a_probes_details(access: Access, headers: dict, expected: bool) -> None:
    assert trusted(access, "GET", headers) is expected


def test_missing_host_is_allowed() -> None:
    assert host_allowed(None, ())


def test_cors_is_off_unless_listed() -> None:
    assert cors_headers(Access(), {"Origin": "https://dash.example"}) == ()
    assert cors_headers(OPEN, {"Origin": "https://evil.example"}) == ()
    headers = dict(cors_headers(OPEN, {"Origin": "https://dash.example"}, "GET, POST"))
    assert headers["Access-Control-Allow-Origin"] == "https://dash.example"
    assert "*" not in headers.values()
    assert headers["Access-Control-Allow-Methods"] == "GET, POST"
