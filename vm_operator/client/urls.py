"""The server URL the client talks to, and the URLs of its requests (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlencode, urlsplit


class BadUrl(ValueError):
    """A server URL the client will not use."""


def check_base_url(url: str) -> str:
    """The server URL without a trailing slash, or ``BadUrl`` saying what is wrong.

    The message never repeats the URL: it may hold a password (``http://user:secret@…``).
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        raise BadUrl("the server URL cannot be parsed (expected http://HOST:PORT)") from None
    if parts.scheme not in ("http", "https"):
        raise BadUrl("the server URL must start with http:// or https://")
    if not parts.hostname:
        raise BadUrl("the server URL has no host")
    if parts.username is not None or parts.password is not None:
        raise BadUrl("the server URL must not hold credentials: give the token with "
                     "--token-file, VM_OPERATOR_TOKEN_FILE or VM_OPERATOR_TOKEN")
    if parts.query or parts.fragment:
        raise BadUrl("the server URL must not have a query or fragment")
    del port
    return url.rstrip("/")


def path(*segments: str) -> str:
    """An API path from segments, each percent-encoded whole: a VM name such as
    ``ghcr.io/org/img:tag`` stays one segment (``ghcr.io%2Forg%2Fimg%3Atag``)."""
    return "".join("/" + quote(segment, safe="") for segment in segments)


def build_url(base: str, api_path: str, query: Mapping[str, str | int | bool | None]) -> str:
    """``base`` + path + the query parameters that are set (None leaves one out)."""
    pairs = [(key, _query_value(value)) for key, value in query.items() if value is not None]
    return base + api_path + ("?" + urlencode(pairs, quote_via=quote) if pairs else "")


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- transport errors (pure) --------------------------------------------------------------
