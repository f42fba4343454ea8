"""The client's TLS options, pure: pins, flags over variables, the refusals that name the
option at fault."""

from __future__ import annotations

import pytest

from vm_operator.client.tls import VARIABLES, TlsOptions, TlsSettingError, parse_pin, tls_options
from vm_operator.config import known_variables

PIN_HEX = "21e27cfad19a033f6b0c0e751f7a6ab9fc64eb769ada432324614d9817e67eb6"


@pytest.mark.parametrize("text", [
    f"sha256:{PIN_HEX}",
    f"sha256:{PIN_HEX.upper()}",
    "sha256:" + ":".join(PIN_HEX[i:i + 2] for i in range(0, 64, 2)),
    f"  sha256:{PIN_HEX}\n",
])
def test_a_pin_is_sha256_and_64_hex_digits_with_or_without_colons(text: str) -> None:
    assert parse_pin(text) == bytes.fromhex(PIN_HEX)


@pytest.mark.parametrize("text", [
    PIN_HEX, f"sha1:{PIN_HEX[:40]}", f"sha256:{PIN_HEX[:-2]}", f"sha256:{PIN_HEX}00",
    f"sha256:{PIN_HEX[:-1]}g", "sha256:", f"SHA256 Fingerprint={PIN_HEX}",
])
def test_anything_else_is_no_pin(text: str) -> None:
    with pytest.raises(TlsSettingError, match="sha256: and 64 hex digits"):
        parse_pin(text)


URL = "https://ops.example:8082"


def test_no_tls_option_means_the_defaults() -> None:
    assert tls_options({}, {}, URL) is None
    assert tls_options({"--fingerprint": None}, {"VM_OPERATOR_FINGERPRINT": ""}, URL) is None


def test_a_flag_wins_over_its_variable() -> None:
    other = "sha256:" + "00" * 32
    options = tls_options({"--fingerprint": f"sha256:{PIN_HEX}"},
                          {"VM_OPERATOR_FINGERPRINT": other}, URL)
    assert options == TlsOptions(pin=bytes.fromhex(PIN_HEX))
    assert tls_options({}, {"VM_OPERATOR_FINGERPRINT": other}, URL) == TlsOptions(
        pin=bytes(32))


@pytest.mark.parametrize(("given", "env", "url", "message"), [
    ({"--fingerprint": "sha256:" + "00" * 32}, {}, "http://127.0.0.1:8082",
     "--fingerprint: TLS options need an https:// server URL"),
    ({}, {"VM_OPERATOR_FINGERPRINT": "sha256:00"}, URL,
     "VM_OPERATOR_FINGERPRINT: a fingerprint is sha256:"),
    ({"--fingerprint": " "}, {}, URL, "--fingerprint is empty"),
    ({}, {"VM_OPERATOR_CLIENT_KEY": "/k.pem", "VM_OPERATOR_FINGERPRINT": "sha256:" + "00" * 32},
     URL, "VM_OPERATOR_CLIENT_KEY: needs --client-cert"),
    ({"--ca-file": "/nonexistent/ca.pem"}, {}, URL, "--ca-file /nonexistent/ca.pem: cannot be"),
])
def test_an_option_the_client_cannot_use_is_named(given: dict[str, str | None],
                                                  env: dict[str, str], url: str,
                                                  message: str) -> None:
    with pytest.raises(TlsSettingError) as caught:
        tls_options(given, env, url)
    assert str(caught.value).startswith(message)


def test_the_clients_tls_variables_are_known_to_the_operator() -> None:
    """A shell that exports them for the client and starts the operator gets no warning."""
    assert VARIABLES <= known_variables()
