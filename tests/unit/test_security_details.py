"""What each refusal of the access checks says, word for word, and the challenge it carries
(edge/security.py, called directly): a client learns from these why it was refused (RFC 6750's
``WWW-Authenticate`` error codes), so each is pinned here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pytest

from vm_operator.edge.body import JSON_MEDIA, MERGE_PATCH_MEDIA, Body, Field
from vm_operator.edge.security import Access, check_access, cors_headers, host_allowed

TOKEN = "t" * 32
READ = "r" * 32
WITH_TOKENS = Access(token=TOKEN, read_token=READ)
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


OPEN = Access(allowed_hosts=("ci-mac.example",), cors_origins=("https://dash.example",))


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
