"""The first certificate of a PEM text, cut in one place (``vm_operator.pem``) for the edge's
check of ``--tls-cert`` and the fingerprint ``vm-operator tls init`` prints."""

from __future__ import annotations

import re
import ssl
from pathlib import Path

import pytest

from vm_operator.pem import first_certificate

PACKAGE = Path(__file__).resolve().parents[2] / "vm_operator"
LEAF, ISSUER = b"leaf certificate bytes", b"issuer certificate bytes"
CHAIN = ssl.DER_cert_to_PEM_cert(LEAF) + ssl.DER_cert_to_PEM_cert(ISSUER)


@pytest.mark.parametrize(("text", "der"), [
    (CHAIN, LEAF),
    ("a comment first\n" + CHAIN, LEAF),
    (ssl.DER_cert_to_PEM_cert(ISSUER), ISSUER),
])
def test_the_first_certificate_of_a_chain_is_cut(text: str, der: bytes) -> None:
    assert first_certificate(text) == der


@pytest.mark.parametrize("text", [
    "",
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ssl.PEM_HEADER + "\nAAAA\n",  # no footer
    ssl.PEM_FOOTER + "\n" + ssl.PEM_HEADER + "\n",  # a footer only before the header
    f"{ssl.PEM_HEADER}\n!!not base64!!\n{ssl.PEM_FOOTER}\n",
])
def test_a_text_without_a_readable_certificate_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        first_certificate(text)


def test_no_other_module_cuts_pem_text() -> None:
    cutting = re.compile(r"PEM_HEADER|PEM_FOOTER|PEM_cert_to_DER_cert")
    found = [str(path.relative_to(PACKAGE)) for path in sorted(PACKAGE.rglob("*.py"))
             if cutting.search(path.read_text())]
    assert found == ["pem.py"]
