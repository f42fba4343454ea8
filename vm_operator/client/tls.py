"""The client's TLS: whom it trusts with an ``https://`` URL, and the certificate it presents.

Trust is the system's CAs by default, a CA file (``--ca-file``, ``VM_OPERATOR_CA_FILE``: the
operator's own ``cert.pem`` will do), or a pinned certificate (``--fingerprint sha256:HEX``,
``VM_OPERATOR_FINGERPRINT``, as ``vm-operator tls init`` prints it). A pin is checked right
after the handshake, before a byte of the request (and so the token) is written: a server
with another certificate is refused, naming the fingerprint it showed. A pin alone trusts
that certificate whatever its names or issuer; with a CA file too, both must hold.
``--client-cert`` / ``--client-key`` (``VM_OPERATOR_CLIENT_CERT`` / ``_KEY``) answer an
operator that asks for mutual TLS.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.client
import re
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vm_operator.command_line import TLS_OPTIONS as OPTIONS

FLAGS = frozenset(option for option, _, _, _ in OPTIONS)
VARIABLES = frozenset(variable for _, variable, _, _ in OPTIONS)
_PIN = re.compile(r"sha256:((?:[0-9a-fA-F]{2}:?){31}[0-9a-fA-F]{2})")


class TlsSettingError(ValueError):
    """A TLS option the client cannot use (the message names it)."""


class PinMismatch(ssl.SSLCertVerificationError):
    """The server showed a certificate other than the pinned one: nothing was sent to it."""

    def __init__(self, seen: str, pinned: str) -> None:
        self.message = (f"its certificate has the fingerprint {seen}, not the pinned {pinned}: "
                        "refused before sending anything")
        super().__init__(self.message)
        self.seen = seen

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class TlsOptions:
    ca_file: str | None = None
    pin: bytes | None = None  # the SHA-256 digest of the certificate (DER)
    client_cert: str | None = None
    client_key: str | None = None


def parse_pin(text: str) -> bytes:
    """``sha256:HEX`` (64 hex digits, pairs optionally joined by colons) as its digest."""
    found = _PIN.fullmatch(text.strip())
    if found is None:
        raise TlsSettingError("a fingerprint is sha256: and 64 hex digits (as vm-operator tls "
                              "init prints it)")
    return bytes.fromhex(found.group(1).replace(":", ""))


def show_pin(digest: bytes) -> str:
    return "sha256:" + digest.hex()


def add_options(group: Any, top: bool) -> None:
    """The TLS options, to a parser's group: ``top`` holds their defaults (None); a command's
    own copies have none (``argparse.SUPPRESS``), so one given before the command counts."""
    for option, variable, metavar, text in OPTIONS:
        group.add_argument(option, metavar=metavar, default=None if top else argparse.SUPPRESS,
                           help=f"{text} (default: {variable})")


def tls_options(given: Mapping[str, str | None], env: Mapping[str, str],
                url: str) -> TlsOptions | None:
    """The TLS options from the flags ``given`` (by option) or their variables (empty counts
    as unset); None when none is set. A TLS option with an ``http://`` URL is refused: the
    token would go in clear to a server the option meant to check."""
    values: dict[str, str] = {}
    where: dict[str, str] = {}  # how an error names each: its flag, or its variable
    for option, variable, _, _ in OPTIONS:
        flag = given.get(option)
        value = flag if flag is not None else (env.get(variable) or None)
        if value is not None:
            where[option] = option if flag is not None else variable
            if not value.strip():
                raise TlsSettingError(f"{where[option]} is empty")
            values[option] = value
    if not values:
        return None
    if not url.lower().startswith("https://"):
        raise TlsSettingError(f"{', '.join(where.values())}: TLS options need an https:// "
                              "server URL")
    pin = None
    if "--fingerprint" in values:
        try:
            pin = parse_pin(values["--fingerprint"])
        except TlsSettingError as exc:
            raise TlsSettingError(f"{where['--fingerprint']}: {exc}") from None
    if "--client-key" in values and "--client-cert" not in values:
        raise TlsSettingError(f"{where['--client-key']}: needs --client-cert "
                              "(VM_OPERATOR_CLIENT_CERT) too")
    options = TlsOptions(values.get("--ca-file"), pin, values.get("--client-cert"),
                         values.get("--client-key"))
    client_context(options)  # a file that cannot be used is a usage error, before any request
    return options


def client_context(options: TlsOptions) -> ssl.SSLContext:
    """The context of every connection: TLS 1.2 and later, the trust the options say."""
    if options.pin is not None and options.ca_file is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # the pin, checked after the handshake, is the trust
        context.verify_mode = ssl.CERT_NONE
    else:
        try:
            context = ssl.create_default_context(cafile=options.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsSettingError(f"--ca-file {options.ca_file}: cannot be read as PEM "
                                  f"certificates ({getattr(exc, 'strerror', None) or exc})"
                                  ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if options.client_cert is not None:
        try:
            context.load_cert_chain(options.client_cert, options.client_key,
                                    password=lambda: b"")
        except (OSError, ssl.SSLError) as exc:
            raise TlsSettingError(f"--client-cert {options.client_cert}: not a PEM certificate "
                                  "with its unencrypted key "
                                  f"({getattr(exc, 'strerror', None) or exc})") from None
    return context


class PinnedConnection(http.client.HTTPSConnection):
    """An HTTPS connection that checks the pinned certificate once the handshake is done,
    before the request is written."""

    def __init__(self, *args: Any, pin: bytes | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pin = pin

    def connect(self) -> None:
        super().connect()
        assert isinstance(self.sock, ssl.SSLSocket)
        check_pin(self.sock, self._pin)


def check_pin(sock: ssl.SSLSocket, pin: bytes | None) -> None:
    """After the handshake, before anything is written: the peer's certificate must be the
    pinned one (``PinMismatch``, the socket closed); nothing to check without a pin."""
    if pin is None:
        return
    seen = hashlib.sha256(sock.getpeercert(binary_form=True) or b"").digest()
    if seen != pin:
        sock.close()
        raise PinMismatch(show_pin(seen), show_pin(pin))


class HttpsHandler(urllib.request.HTTPSHandler):
    """urllib's HTTPS with this context, and the pin checked before the request is sent."""

    def __init__(self, options: TlsOptions) -> None:
        super().__init__(context=client_context(options))
        self._connection = functools.partial(PinnedConnection, pin=options.pin)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=self._context)  # type: ignore[attr-defined]
