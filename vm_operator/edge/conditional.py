"""Conditional GETs (pure): an ``ETag`` on the answers of routes that declare ``etag=True``,
and ``304 Not Modified`` when the client already holds that answer (RFC 9110, section 13).

The entity tag is strong: a hash of the exact bytes of the body, so two answers share a tag
only when they are byte for byte the same. ``If-None-Match`` compares tags weakly, as RFC 9110
requires (``W/"x"`` matches ``"x"``); ``*`` matches any current answer. Only a 200 gets a tag
or a 304: a problem is never "not modified".
"""

from __future__ import annotations

import hashlib
import re

from vm_operator.edge.responses import Response
from vm_operator.edge.security import Headers

# One entity tag in a list: an optional weak marker, then a quoted opaque tag (RFC 9110 8.8.3).
_ENTITY_TAG = re.compile(r'\s*(?:W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')


def entity_tag(body: bytes) -> str:
    """The strong ``ETag`` of a body: 128 bits of its SHA-256, quoted."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def none_match(header: str, tag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``tag`` (weak comparison) or is ``*``. A value
    that is not a list of entity tags matches nothing: the full answer is always safe."""
    if header.strip() == "*":
        return True
    opaque, position, found = tag.strip('"'), 0, False
    while position < len(header):
        match = _ENTITY_TAG.match(header, position)
        if match is None:
            return False
        found = found or match.group(1) == opaque
        position = match.end()
    return found


def conditional(response: Response, headers: Headers) -> Response:
    """A 200 with its ``ETag``, or the 304 that replaces it for a client that holds it."""
    if response.status != 200:
        return response
    tag = entity_tag(response.body)
    wanted = headers.get("If-None-Match")
    if wanted is not None and none_match(wanted, tag):
        return Response(304, b"", "", response.headers + (("ETag", tag),))
    return response.with_headers(("ETag", tag))
