"""HTTPS on the API's own port: the server's TLS context, and each connection's handshake.

The listening socket stays a plain one: the accept loop only wraps a connection it accepted
(no I/O), and the handshake happens in the connection's own thread, under the same deadline
as a request head (``Connections.awaiting_head``). So a client that connects and says nothing
holds its own thread until the watchdog cuts it, never the accept loop or anyone else. A
handshake that fails (a plain HTTP request, TLS 1.1, no client certificate when one is
required) ends the connection without an answer: nothing of the API is said in clear text.
"""

from __future__ import annotations

import socket
import ssl

from vm_operator.edge.connections import Connections
from vm_operator.pem import first_certificate


class TlsSetupError(Exception):
    """The certificate, key or client CA cannot be used: the line start-up stops with."""


def server_context(cert: str, key: str, client_ca: str | None = None) -> ssl.SSLContext:
    """A server context for ``cert`` and ``key`` (PEM files), TLS 1.2 and later only; with
    ``client_ca``, clients must present a certificate signed by one of its CAs."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    _check_certificate(cert)
    try:  # an encrypted key is refused, never asked for on a terminal
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
            raise TlsSetupError(f"the key {key} is not the key of the certificate {cert}"
                                ) from None
        raise TlsSetupError(f"{key} is not an unencrypted PEM private key") from None
    except OSError as exc:
        raise TlsSetupError(f"cannot read {exc.filename or key}: {exc.strerror or exc}"
                            ) from None
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(cafile=client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise TlsSetupError(f"{client_ca} holds no PEM CA certificate that can be read "
                                f"({getattr(exc, 'reason', None) or exc})") from None
    return context


def _check_certificate(cert: str) -> None:
    """``cert`` begins with a PEM certificate, or ``TlsSetupError`` saying so."""
    try:
        with open(cert, encoding="ascii", errors="replace") as handle:
            text = handle.read(1 << 20)
    except OSError as exc:
        raise TlsSetupError(f"cannot read {cert}: {exc.strerror or exc}") from None
    try:  # the first of a chain
        first_certificate(text)
    except ValueError:  # no header or footer, or not base64 (binascii.Error)
        raise TlsSetupError(f"{cert} holds no PEM certificate") from None


def wrap(context: ssl.SSLContext, conn: socket.socket) -> ssl.SSLSocket:
    """The accepted ``conn`` as a TLS socket whose handshake has not begun (no I/O here: this
    runs in the accept loop)."""
    return context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)


def handshake(conn: ssl.SSLSocket, connections: Connections) -> bool:
    """Run the handshake in the connection's own thread, within the head deadline; whether
    it succeeded (a failed one is closed by the caller, unanswered)."""
    connections.awaiting_head(conn)
    try:
        conn.do_handshake()
    except (OSError, ValueError):  # ssl.SSLError is an OSError; ValueError: closed meanwhile
        return False
    finally:
        connections.clear_deadline(conn)
    return True
