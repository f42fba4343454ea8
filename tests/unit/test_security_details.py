"""What each refusal of the access checks says, word for word, and the challenge it carries
(edge/security.py, called directly): a client learns from these why it was refused (RFC 6750's
``WWW-Authenticate`` error codes), so each is pinned here."""

from __future__ import annotations

import pytest

from vm_operator.edge.security import Access, check_access

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
