"""``tls init``'s pure parts: the names it puts in a certificate and the configuration it gives
``openssl``."""

from __future__ import annotations

import pytest

from vm_operator.platform.certificate import (
    CertificateError,
    certificate_names,
    openssl_config,
    subject_alternative_name,
)


@pytest.mark.parametrize(("name", "entry"), [
    ("localhost", "DNS:localhost"),
    ("Build-Mac.local", "DNS:build-mac.local"),
    ("ops.example.com.", "DNS:ops.example.com"),
    ("*.example.com", "DNS:*.example.com"),
    ("127.0.0.1", "IP:127.0.0.1"),
    ("::1", "IP:::1"),
    ("fe80::1", "IP:fe80::1"),
    ("two words", None),
    ("a,DNS:evil.example", None),
    ("name\nkeyUsage = x", None),
    ("-leading-dash", None),
    ("under_score", None),
    ("", None),
    ("a" * 64 + ".example", None),
])
def test_a_name_becomes_one_subject_alternative_name_or_none(name: str,
                                                             entry: str | None) -> None:
    assert subject_alternative_name(name) == entry


def test_names_are_the_built_in_ones_the_host_and_the_given_without_repeats() -> None:
    assert certificate_names(["ci.example.com", "LOCALHOST", "10.0.0.5"], "mac-mini") == [
        "DNS:localhost", "IP:127.0.0.1", "IP:::1", "DNS:mac-mini", "DNS:ci.example.com",
        "IP:10.0.0.5"]


def test_a_host_name_that_is_no_dns_name_is_left_out_but_a_given_one_is_refused() -> None:
    assert certificate_names([], "my_host") == ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    with pytest.raises(CertificateError, match="--name 'my_host'"):
        certificate_names(["my_host"], "mac")


def test_the_configuration_asks_for_what_strict_verifiers_require() -> None:
    lines = openssl_config(["DNS:localhost", "IP:127.0.0.1"]).splitlines()
    for line in ("subjectAltName = DNS:localhost, IP:127.0.0.1",
                 "basicConstraints = critical, CA:FALSE",
                 "keyUsage = critical, digitalSignature",
                 "extendedKeyUsage = serverAuth",
                 "subjectKeyIdentifier = hash",
                 "authorityKeyIdentifier = keyid:always"):
        assert line in lines
