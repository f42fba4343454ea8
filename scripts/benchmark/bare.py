"""The reference: a bare ``ThreadingHTTPServer`` answering a fixed JSON body, with the same
fairness fixes as the operator (HTTP/1.1 keep-alive, TCP_NODELAY, one write per response): the
ceiling of this design. It runs as a process of its own, ``bench.py --serve-bare`` (HTTPS with
``--bare-tls-cert`` and ``--bare-tls-key``, the operator's certificate: the TLS reference)."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from benchmark.common import HOST


def serve_bare(cert: str | None = None, key: str | None = None) -> int:
    """A bare ThreadingHTTPServer: one pre-built response, one write, keep-alive, no Nagle;
    with ``cert`` and ``key``, HTTPS (the handshake in the connection's thread, as the
    operator does it)."""
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps({
        "status": "healthy", "message": "vm-operator is serving",
        "timestamp": "2025-01-01T00:00:00.000Z", "version": "0.0.0",
        "tart": {"path": "/usr/local/bin/tart", "available": True, "version": "2.31.0"},
    }, separators=(",", ":")).encode()
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.wfile.write(response)

        do_POST = do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        block_on_close = False
        request_queue_size = 256

        def finish_request(self, request: Any, client_address: Any) -> None:
            if tls is not None:
                request = tls.wrap_socket(request, server_side=True)
            super().finish_request(request, client_address)

    tls = None
    if cert and key:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE  # as the operator's
        tls.load_cert_chain(cert, key)
    server = Server((HOST, 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(json.dumps({"event": "listening", "port": server.server_address[1]}), flush=True)
    server.serve_forever()
    return 0
