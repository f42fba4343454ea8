"""Tokens, Host checks, cross-site refusals and CORS, as pure functions (edge/security.py), and
what each refusal of the access checks says, word for word, with the challenge it carries: a
client learns from these why it was refused (RFC 6750's ``WWW-Authenticate`` error codes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytest

from vm_operator.edge.body import JSON_MEDIA, MERGE_PATCH_MEDIA, Body, Field
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
    ("host", "expected"),
    [
        ("127.0.0.1:8082", None),
        ("[::1]:8082", None),
        ("localhost:8082", None),
        ("foo.localhost", None),
        ("192.168.1.20", None),
        ("CI-MAC.example:8082", None),
        ("attacker.example", 403),
        ("localhost.attacker.example", 403),
        # Only "localhost" itself and names under ".localhost" (RFC 6761): a name that merely
        # ends in the letters, or starts with them, is anybody's DNS name.
        ("evillocalhost", 403),
        ("evillocalhost:8082", 403),
        ("EvilLocalhost", 403),
        ("[evillocalhost]:8082", 403),
        ("evil-localhost.localdomain", 403),
        ("localhost.evil.com", 403),
        ("localhost.evil.com:8082", 403),
        ("127.0.0.1.evil.com", 403),
        # A bracketed IPv6 address may be followed by a port and nothing else (RFC 3986).
        ("[::1]evil.com", 403),
        ("[::1].evil.com", 403),
        ("[::1]:8082evil.com", 403),
        ("[::1]:8082.evil.com", 403),
        ("[::1]@evil.com", 403),
        ("[::1]/evil.com", 403),
        ("[::1", 403),
        ("[::1]]", 403),
        ("[127.0.0.1]", 403),
        ("[v1.fe]", 403),
        ("::1", 403),  # an IPv6 address is bracketed in a Host header
        ("127.0.0.1:8082:80", 403),
        ("127.0.0.1:808200", 403),
        ("127.0.0.1 evil.com", 403),
        ("localhost@evil.com", 403),
        ("[0:0:0:0:0:0:0:1]:8082", None),
        ("[::ffff:127.0.0.1]", None),
        ("127.0.0.1:", None),  # an empty port is a port (RFC 3986)
        ("LOCALHOST", None),
        ("Foo.LocalHost:8082", None),
        ("a.b.localhost", None),
        ("localhost.localdomain", None),
        # A trailing dot is not folded away: refused, on the safe side.
        ("LOCALHOST.", 403),
        ("foo.localhost.", 403),
    ],
)
def test_without_tokens_only_a_local_or_listed_host_is_served(host: str,
                                                            expected: int | None) -> None:
    assert status(OPEN, "GET", {"Host": host}) == expected


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
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


CHALLENGE = 'Bearer realm="vm-operator"'


@pytest.mark.parametrize(("method", "authorization", "status", "detail", "headers"), [
    ("GET", None, 401, "this API needs 'Authorization: Bearer <token>'",
     (("WWW-Authenticate", CHALLENGE),)),
    ("GET", "", 401, "this API needs 'Authorization: Bearer <token>'",
     (("WWW-Authenticate", CHALLENGE),)),
    ("GET", f"Basic {TOKEN}", 401, "this API takes only Bearer tokens",
     (("WWW-Authenticate", CHALLENGE + ', error="invalid_request"'),)),
    ("GET", "Bearer ", 401, "this API takes only Bearer tokens",
     (("WWW-Authenticate", CHALLENGE + ', error="invalid_request"'),)),
    ("GET", f"Bearer {TOKEN}x", 401, "the token is not valid",
     (("WWW-Authenticate", CHALLENGE + ', error="invalid_token"'),)),
    ("POST", f"Bearer {READ}", 403, "the read-only token may not change VMs", ()),
])
def test_each_token_refusal_says_why(method: str, authorization: str | None, status: int,
                                     detail: str, headers: tuple[tuple[str, str], ...]) -> None:
    sent = {} if authorization is None else {"Authorization": authorization}
    error = check_access(WITH_TOKENS, method, False, sent)
    assert error is not None
    assert (error.status, error.detail, error.headers) == (status, detail, headers)


@pytest.mark.parametrize("authorization", [
    f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer  {TOKEN} ",
])
def test_the_scheme_is_case_insensitive_and_the_token_trimmed(authorization: str) -> None:
    assert check_access(WITH_TOKENS, "POST", False, {"Authorization": authorization}) is None


@pytest.mark.parametrize("authorization", [f"Bearer{TOKEN}", f"Token {TOKEN}", TOKEN])
def test_a_token_without_the_bearer_scheme_is_refused(authorization: str) -> None:
    error = check_access(WITH_TOKENS, "GET", False, {"Authorization": authorization})
    assert error is not None and error.detail == "this API takes only Bearer tokens"


@pytest.mark.parametrize(("headers", "detail"), [
    ({"Host": "localhost:8082", "Origin": "http://localhost:8082"}, None),
    ({"Host": "LocalHost:8082", "Origin": "http://localhost:8082"}, None),
    ({"Host": "localhost:8082", "Origin": "HTTP://LOCALHOST:8082"}, None),
    ({"Host": "ci-mac.example", "Origin": "https://ci-mac.example"}, None),
    ({"Host": "127.0.0.1:8082", "Origin": "http://evil.example://127.0.0.1:8082"},
     "cross-site request from origin 'http://evil.example://127.0.0.1:8082' refused"),
    ({"Host": "localhost:8082", "Origin": "http://localhost:8083"},
     "cross-site request from origin 'http://localhost:8083' refused"),
    # no Host: no origin is the same site
    ({"Origin": "http://xxxx"}, "cross-site request from origin 'http://xxxx' refused"),
    ({"Host": "localhost", "Sec-Fetch-Site": "cross-site"}, "cross-site request refused"),
    ({"Host": "localhost", "Sec-Fetch-Site": "same-site"}, None),
    ({"Host": "localhost", "Origin": "https://dash.example", "Sec-Fetch-Site": "cross-site"},
     None),  # an allowed origin is not cross-site
])
def test_a_cross_site_write_is_refused_saying_so(headers: dict[str, str],
                                                 detail: str | None) -> None:
    error = check_access(OPEN, "POST", False, headers)
    assert (None if error is None else (error.status, error.slug, error.detail)) == (
        None if detail is None else (403, "cross-site", detail))


@pytest.mark.parametrize("host", ["[::1", "[127.0.0.1", "[::1:8082", "[::"])
def test_an_unclosed_bracket_is_no_ip_address(host: str) -> None:
    host_allowed.cache_clear()  # the verdicts are cached: this test asks afresh
    error = check_access(OPEN, "GET", False, {"Host": host})
    assert error is not None and error.slug == "host-not-allowed"


def test_the_cors_headers_exactly() -> None:
    asked = {"Origin": "https://dash.example"}
    assert cors_headers(OPEN, asked) == (
        ("Access-Control-Allow-Origin", "https://dash.example"), ("Vary", "Origin"),
        ("Access-Control-Expose-Headers", "Allow, ETag, Retry-After, WWW-Authenticate"))
    assert cors_headers(OPEN, asked, "GET, POST") == (
        ("Access-Control-Allow-Origin", "https://dash.example"), ("Vary", "Origin"),
        ("Access-Control-Allow-Methods", "GET, POST"),
        ("Access-Control-Allow-Headers", "Authorization, Content-Type, If-None-Match"),
        ("Access-Control-Max-Age", "600"))
    assert cors_headers(OPEN, {}) == ()


@pytest.mark.parametrize(("content_type", "kind"), [
    ("text/plain", "a form or plain-text body"),
    ("application/x-www-form-urlencoded; charset=x", "a form or plain-text body"),
    ("multipart/form-data; boundary=b", "a form or plain-text body"),
    ("application/xml", "content type 'application/xml'"),
    ("Application/XML ; a=b", "content type 'application/xml'"),
])
def test_a_write_of_another_media_type_is_refused_naming_it(content_type: str,
                                                            kind: str) -> None:
    error = check_access(OPEN, "POST", False, {"Host": "localhost", "Content-Type": content_type})
    assert error is not None and (error.status, error.slug) == (415, "unsupported-media-type")
    assert error.detail == f"{kind} is not accepted: send no body"  # the route takes none


@dataclass(frozen=True)
class _Patch:
    cpu: Annotated[int, Field()] = 0


SEND_JSON = "send Content-Type: application/json"
SEND_EITHER = "send Content-Type: application/merge-patch+json or application/json"


@pytest.mark.parametrize(("media_types", "content_type", "detail"), [
    ((JSON_MEDIA,), "text/plain", f"a form or plain-text body is not accepted: {SEND_JSON}"),
    ((JSON_MEDIA,), MERGE_PATCH_MEDIA,
     f"content type 'application/merge-patch+json' is not accepted: {SEND_JSON}"),
    ((MERGE_PATCH_MEDIA, JSON_MEDIA), "application/xml",
     f"content type 'application/xml' is not accepted: {SEND_EITHER}"),
    ((MERGE_PATCH_MEDIA,), None, None),
    ((MERGE_PATCH_MEDIA,), "Application/Merge-Patch+JSON", None),
])
def test_a_write_to_a_route_with_a_body_takes_its_media_types(
        media_types: tuple[str, ...], content_type: str | None, detail: str | None) -> None:
    sent = {"Host": "localhost"} | ({} if content_type is None else {"Content-Type": content_type})
    error = check_access(OPEN, "POST", False, sent, Body(_Patch, media_types=media_types))
    assert (None if error is None else (error.status, error.slug, error.detail)) == (
        None if detail is None else (415, "unsupported-media-type", detail))


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8; x=y", "application/merge-patch+json",
])
def test_a_json_write_passes_whatever_its_parameters(content_type: str) -> None:
    assert check_access(OPEN, "POST", False,
                        {"Host": "localhost", "Content-Type": content_type}) is None


def test_a_foreign_host_is_told_what_is_allowed() -> None:
    error = check_access(OPEN, "GET", False, {"Host": "rebound.example"})
    assert error is not None
    assert (error.status, error.slug) == (403, "host-not-allowed")
    assert error.detail == ("the Host header names neither an IP address, localhost nor an "
                            "allowed host (VM_OPERATOR_ALLOWED_HOSTS)")
