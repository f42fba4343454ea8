"""Who may do what: bearer tokens, and the defences that stand in for them when there are none.

Pure functions of the settings and the request headers; the threat model is in the
README's Security section.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from vm_operator.edge.authz import ANONYMOUS, FULL_TOKEN, READ_TOKEN, Caller, default_role, refusal
from vm_operator.edge.body import JSON_MEDIA, MERGE_PATCH_MEDIA, Body
from vm_operator.edge.errors import ApiError
from vm_operator.edge.problems.client_errors import (
    CROSS_SITE,
    FORBIDDEN,
    HOST_NOT_ALLOWED,
    UNAUTHORIZED,
    UNSUPPORTED_MEDIA_TYPE,
)
from vm_operator.edge.token_file import NamedTokens

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The content types a browser may send cross-site without a CORS preflight.
SIMPLE_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")
# Response headers a browser app may read besides the CORS-safelisted ones: why it was refused.
EXPOSED_HEADERS = "Allow, ETag, Retry-After, WWW-Authenticate"
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class Headers(Protocol):
    """What the checks read of request headers: a dict, or http.server's message object."""

    def get(self, name: str, /) -> str | None: ...


@dataclass(frozen=True)
class Access:
    token: str | None = None
    read_token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    named: NamedTokens | None = None  # the tokens file (--tokens-file), when there is one
    exposed: bool = False  # the API listens beyond loopback (--host)

    @property
    def authenticated(self) -> bool:
        return bool(self.token or self.read_token or (self.named and self.named.enabled))


def is_loopback(host: str) -> bool:
    """Whether a listening address (``--host``) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _matches(candidate: str, secret: str | None) -> bool:
    """Constant-time comparison, so timing tells nothing about a token's prefix."""
    return secret is not None and hmac.compare_digest(candidate.encode(), secret.encode())


# RFC 9110 section 7.2: uri-host [ ":" port ], where an IPv6 address is bracketed (RFC 3986
# section 3.2.2) and a name is made of unreserved, percent-encoded and sub-delims characters.
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9\-._~%!$&'()*+,;=]*))"
                   r"(?::[0-9]{0,5})?")


def host_name(host_header: str) -> str | None:
    """The host part of a ``Host`` header, lower-case, without port or IPv6 brackets; None
    when the header is not a host and an optional port (``[::1]evil.example`` is not)."""
    found = _HOST.fullmatch(host_header.lower())
    if found is None:
        return None
    if found["ipv6"] is None:
        return found["name"]
    try:
        return str(ipaddress.IPv6Address(found["ipv6"]))
    except ValueError:
        return None


@lru_cache(maxsize=256)
def host_allowed(host_header: str | None, allowed: tuple[str, ...]) -> bool:
    """IP literals, loopback names and configured names: anything else may be DNS rebinding."""
    if host_header is None:
        return True
    host = host_name(host_header)
    if host is None:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return host in LOOPBACK_NAMES or host.endswith(".localhost") or host in allowed


def _refuse_token(detail: str, error: str) -> ApiError:
    challenge = f'Bearer realm="vm-operator", error="{error}"' if error else 'Bearer realm="vm-operator"'
    return ApiError(UNAUTHORIZED, detail, (("WWW-Authenticate", challenge),))


def identify(access: Access, authorization: str | None) -> Caller | ApiError:
    """Who presents this ``Authorization`` header: the full-access token, the read-only
    token or a named token (each compared in constant time), or why not (401). Without any
    token configured, everyone is ``anonymous`` with every role."""
    if not access.authenticated:
        return ANONYMOUS
    if not authorization:
        return _refuse_token("this API needs 'Authorization: Bearer <token>'", "")
    scheme, _, presented = authorization.partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        return _refuse_token("this API takes only Bearer tokens", "invalid_request")
    full, read = _matches(presented, access.token), _matches(presented, access.read_token)
    named = access.named.find(presented) if access.named is not None else None
    if full:
        return FULL_TOKEN
    if read:
        return READ_TOKEN
    if named is not None:
        return named
    return _refuse_token("the token is not valid", "invalid_token")


def check_token(access: Access, method: str, authorization: str | None) -> ApiError | None:
    """401 for no valid token; 403 for the read-only token on a method that changes something
    (as before named tokens; the role each route declares is checked by ``dispatch``)."""
    found = identify(access, authorization)
    if isinstance(found, ApiError):
        return found
    if found is not READ_TOKEN or method in READ_METHODS:
        return None
    why = refusal(found, default_role(method))
    return None if why is None else ApiError(FORBIDDEN, why)


# What a write to a route that takes no body may say it carries (with no body): JSON (a JSON merge
# patch, RFC 7396, is JSON too). Neither is a type a cross-site form can send without a CORS
# preflight. A route that takes a body takes the media types its ``Body`` declares.
JSON_TYPES = (JSON_MEDIA, MERGE_PATCH_MEDIA)


def _media_type(headers: Headers) -> str | None:
    value = headers.get("Content-Type")
    return value.split(";", 1)[0].strip().lower() if value is not None else None


def check_browser(access: Access, method: str, headers: Headers) -> ApiError | None:
    """Without tokens, a browser on another site must not be able to start or stop VMs."""
    if method in READ_METHODS:
        return None
    origin = headers.get("Origin")
    if origin is not None and origin not in access.cors_origins:
        host = headers.get("Host") or ""
        if origin.lower().split("://", 1)[-1] != host.lower():
            return ApiError(CROSS_SITE, f"cross-site request from origin {origin!r} refused")
    if headers.get("Sec-Fetch-Site") == "cross-site" and origin not in access.cors_origins:
        return ApiError(CROSS_SITE, "cross-site request refused")
    return None


def check_access(
    access: Access, method: str, is_probe: bool, headers: Headers, body: Body[Any] | None = None,
    writes: bool = False,
) -> ApiError | None:
    """Return why a request is refused, or None. Probes stay open so health checks work.
    ``body`` is what the route takes (None: no body): a write's media type must be one of its
    ``media_types``, and the refusal names them. ``writes``: a GET that acts as a write (a
    WebSocket tunnel): the read token is refused, and so is a cross-site browser (a WebSocket
    is not subject to CORS)."""
    if writes and method in READ_METHODS:
        method = "POST"
    media = _media_type(headers)
    accepted = JSON_TYPES if body is None else body.media_types
    if method not in READ_METHODS and media is not None and media not in accepted:
        kind = "a form or plain-text body" if media in SIMPLE_TYPES else f"content type {media!r}"
        advice = "send no body" if body is None else body.media_advice
        return ApiError(UNSUPPORTED_MEDIA_TYPE, f"{kind} is not accepted: {advice}")
    if is_probe:
        return None
    if access.authenticated:
        return check_token(access, method, headers.get("Authorization"))
    if not host_allowed(headers.get("Host"), access.allowed_hosts):
        return ApiError(HOST_NOT_ALLOWED,
                        "the Host header names neither an IP address, localhost nor an allowed "
                        "host (VM_OPERATOR_ALLOWED_HOSTS)")
    return check_browser(access, method, headers)


def trusted(access: Access, method: str, headers: Headers) -> bool:
    """Whether the caller of a public route may read what only the operator's users are told
    (the probes' details: Tart's path, the VM count): a ``Host`` that DNS rebinding cannot
    give (an IP literal, a loopback or allowed name), or a valid token. A page that rebinds
    its own name to the operator has neither."""
    if host_allowed(headers.get("Host"), access.allowed_hosts):
        return True
    return access.authenticated and check_token(access, method, headers.get("Authorization")) is None


def cors_headers(
    access: Access, headers: Headers, preflight_methods: str | None = None
) -> tuple[tuple[str, str], ...]:
    """CORS is off unless the origin is on the allow-list; ``*`` is never sent.

    Every response to an allowed origin carries these, refusals (401, 403, 413, 503, ...)
    included, so that a browser app can read why it was refused; the headers that say so
    (``WWW-Authenticate``, ``Allow``, ``Retry-After``) are exposed to it.
    """
    origin = headers.get("Origin")
    if origin is None or origin not in access.cors_origins:
        return ()
    result = [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    if preflight_methods is None:
        result.append(("Access-Control-Expose-Headers", EXPOSED_HEADERS))
    else:
        result += [
            ("Access-Control-Allow-Methods", preflight_methods),
            ("Access-Control-Allow-Headers", "Authorization, Content-Type, If-None-Match"),
            ("Access-Control-Max-Age", "600"),
        ]
    return tuple(result)
