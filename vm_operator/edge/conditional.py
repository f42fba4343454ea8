"""Conditional GETs: an ``ETag`` on the answers of routes that declare ``etag=True``,
and ``304 Not Modified`` when the client already holds that answer (RFC 9110, section 13);
and ``Rendered``, the answers kept with the data they were made from, so that a read whose
data has not changed is neither encoded nor hashed again.

The entity tag is strong: a hash of the exact bytes of the body, so two answers share a tag
only when they are byte for byte the same. ``If-None-Match`` compares tags weakly, as RFC 9110
requires (``W/"x"`` matches ``"x"``); ``*`` matches any current answer. Only a 200 gets a tag
or a 304: a problem is never "not modified".
"""

from __future__ import annotations

import hashlib
import re

from vm_operator.edge.responses import JSON, Response, encode_json
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
    tag = response.etag
    if tag is None:
        tag = entity_tag(response.body)
        response = tagged(response, tag)
    wanted = headers.get("If-None-Match")
    if wanted is not None and (wanted == tag or none_match(wanted, tag)):
        return not_modified(response)
    return response


def not_modified(response: Response) -> Response:
    """The 304 that stands for ``response`` (its headers, ``ETag`` included, no body): made
    once for an answer kept for reads (``Rendered``), which pollers ask about again and again."""
    return response.kept("not_modified", _not_modified)


def _not_modified(response: Response) -> Response:
    return Response(304, b"", "", response.headers, etag=response.etag)


def tagged(response: Response, tag: str) -> Response:
    """The response with its ``ETag`` header, and ``etag`` saying it carries it."""
    return Response(response.status, response.body, response.content_type,
                    response.headers + (("ETag", tag),), response.close, response.stream,
                    response.tunnel, tag)


class Rendered:
    """The last 200 of each key (a read's path and what filters it), kept with the data it
    was made from. A read whose data equals the kept data gets the kept response: its bytes
    were encoded and its entity tag hashed once, when the data last changed. The data is
    compared, never trusted from the key, so a key only decides what is kept; past ``limit``
    keys everything kept is dropped. Data handed here is never changed in place afterwards
    (the reads' values are replaced whole), and equal data encodes alike: Python's ``==``
    (``True == 1``, key order) is looser than the bytes, which no field's type makes matter."""

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self._kept: dict[str, tuple[object, Response]] = {}

    def json(self, key: str, data: object) -> Response:
        kept = self._kept.get(key)
        if kept is not None and (kept[0] is data or kept[0] == data):  # the same: kept whole
            return kept[1]
        body = encode_json(data)
        response = tagged(Response(200, body, JSON), entity_tag(body))
        if len(self._kept) >= self.limit:
            self._kept.clear()
        self._kept[key] = (data, response)
        return response
