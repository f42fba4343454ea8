"""PEM text: the first certificate of a chain, which the operator checks (``edge.tls``) and
whose fingerprint ``vm-operator tls init`` prints (``platform.certificate``)."""

from __future__ import annotations

import ssl


def first_certificate(text: str) -> bytes:
    """The DER bytes of the first PEM certificate in ``text`` (a chain's leaf); ValueError when
    there is none, or it is not base64 (``binascii.Error`` is a ValueError)."""
    start = text.index(ssl.PEM_HEADER)
    end = text.index(ssl.PEM_FOOTER, start) + len(ssl.PEM_FOOTER)
    return ssl.PEM_cert_to_DER_cert(text[start:end])
