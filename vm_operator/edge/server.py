"""The thin imperative shell around ``dispatch``: sockets, threads, bodies, logs, shutdown.

Built on ``http.server.ThreadingHTTPServer`` with four changes that matter:
every response goes out in one write with TCP_NODELAY (no Nagle delay on
keep-alive connections), connections are capped with a prompt 503 past the cap
(``overflow.py``), a watchdog closes connections that are slow to send a request head (or sit
idle), and shutdown drains in-flight requests instead of cutting them off (both
``connections.py``).

Every method reaches the router (a path that exists answers 405 with ``Allow``, never
http.server's 501), and every response to an allowed CORS origin carries its CORS headers,
the refusals made here (400, 411, 413, 431, the 503 past the cap) included.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vm_operator.core.clock import utc_now
from vm_operator.edge.connections import Connections
from vm_operator.edge.dispatch import UNMATCHED, Site, dispatch, route_body, route_label
from vm_operator.edge.errors import ApiError
from vm_operator.edge.hangups import Hangups
from vm_operator.edge.http1 import (
    MAX_HEAD,
    MAX_REQUEST_LINE,
    SERVER_HEADER,
    Headers,
    RequestLine,
    closing,
    read_headers,
    request_line,
    serialize,
    serialize_stream_head,
)
from vm_operator.edge.metrics import Metrics
from vm_operator.edge.overflow import Overflow
from vm_operator.edge.params import whole_number
from vm_operator.edge.problems import ProblemType
from vm_operator.edge.problems.client_errors import (
    BAD_HEADER,
    BODY_TOO_LARGE,
    HEADERS_TOO_LARGE,
    LENGTH_REQUIRED,
    MALFORMED_REQUEST,
    URI_TOO_LONG,
)
from vm_operator.edge.problems.server_errors import HTTP_VERSION_NOT_SUPPORTED
from vm_operator.edge.responses import Response, Stream, TunnelEnd
from vm_operator.edge.security import cors_headers
from vm_operator.edge.tls import handshake, wrap
from vm_operator.edge.tunnels import Pump, upgrade_head

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# A streamed response (GET /events) holds at most this much in the kernel for a reader that
# does not read: past it a write blocks, the write deadline cuts the connection, and the bus
# drops the reader's subscription. Without a bound Linux grows the buffer to megabytes.
STREAM_SEND_BUFFER = 16 * 1024
MAX_BODY = 1024  # a larger body is refused unread (413), unless its route takes a JSON body
LENGTH_DIGITS = 18  # a longer Content-Length is refused (400): no body is that large
# Problems found here, before a route is known: http.server's own statuses, each its type.
_SHELL_PROBLEMS: dict[int, ProblemType] = {
    400: MALFORMED_REQUEST,
    414: URI_TOO_LONG,
    431: HEADERS_TOO_LARGE,
    505: HTTP_VERSION_NOT_SUPPORTED,
}


def log_line(record: Mapping[str, object]) -> None:
    """One JSON object per line on stdout, in a single write so lines never interleave."""
    os.write(1, (json.dumps(record, separators=(",", ":")) + "\n").encode())


class OperatorServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], site: Site[Any], metrics: Metrics, *,
        max_connections: int, header_timeout: float, access_log: bool,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.site = site
        self.tls = tls  # HTTPS on the same port (edge/tls.py): each handshake in its own thread
        self.metrics = metrics
        self.access_log = access_log
        self.connections = Connections(header_timeout)  # deadlines, streams, draining
        self._slots = threading.BoundedSemaphore(max_connections)
        self.hangups = Hangups()  # ends a stream as soon as its client closes the connection
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        self._overflow = Overflow(site.access)
        self.connections.start()

    def server_bind(self) -> None:
        """As ``HTTPServer``'s, without its reverse DNS lookup of the address: nothing reads
        ``server_name`` here, and the lookup loads the IDNA codec (memory) and can stall
        start-up on a host without DNS."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        """Past the connection cap, answer 503 promptly instead of piling up threads."""
        if self.connections.draining:
            self._overflow.refuse(request)
            return
        if not self._slots.acquire(blocking=False):
            self._overflow.add(request)
            return
        if self.tls is not None:
            try:
                request = wrap(self.tls, request)
            except OSError:  # the client is gone already
                request.close()
                self._slots.release()
                return
        self.connections.opened(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if self.tls is None or handshake(request, self.connections):
                super().process_request_thread(request, client_address)
            else:  # not TLS, or refused: closed unanswered
                self.shutdown_request(request)
        finally:
            self.connections.closed(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (or was cut off) is not an error worth a traceback."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def drain(self, grace: float) -> int:
        """Stop taking requests, close idle connections and end the streams, let in-flight
        requests finish.

        Returns how many connections were still busy when ``grace`` ran out.
        """
        self.connections.stop()
        self.server_close()
        return self.connections.drain(grace)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = SERVER_HEADER
    sys_version = ""
    disable_nagle_algorithm = True
    server: OperatorServer

    def handle_one_request(self) -> None:
        """One request, as http.server reads it, except that every method that is a token
        goes to the router: http.server would answer 501 to a method it has no ``do_`` for."""
        self.server.connections.awaiting_head(self.connection)
        line = self.rfile.readline(MAX_REQUEST_LINE + 1)
        if line in (b"\r\n", b"\n"):  # RFC 9112 section 2.2: one empty line before a request
            line = self.rfile.readline(MAX_REQUEST_LINE + 1)  # is ignored
        self.raw_requestline = line
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        self._serve()
        self.wfile.flush()

    def parse_request(self) -> bool:
        """The request line and head, as ``BaseHTTPRequestHandler.parse_request`` reads them,
        but with a lean header reader (the stdlib's goes through the email parser, which
        costs more than everything else this server does for a request), strict as RFC 9112
        and within ``MAX_HEAD`` for the whole head."""
        self.command = ""
        self.path = ""
        self.request_version = "HTTP/1.1"
        self.close_connection = True
        self.headers = Headers()  # type: ignore[assignment]
        raw = getattr(self, "raw_requestline", b"")
        parsed = request_line(raw)
        if not isinstance(parsed, RequestLine):
            self.send_error(*parsed)
            return False
        command, path, version = parsed
        self.requestline = f"{command} {path} {version}"
        self.request_version = version
        self.close_connection = version < "HTTP/1.1"
        self.command, self.path = command, path
        if self.path.startswith("//"):  # as the stdlib: never a scheme-relative URL
            self.path = "/" + self.path.lstrip("/")
        fault = read_headers(self.rfile, self.headers, MAX_HEAD - len(raw))  # type: ignore[arg-type]
        if isinstance(fault, tuple):
            self.send_error(*fault)
            return False
        headers = self.headers
        if "connection" in headers:  # most requests send neither this nor Expect
            connection = headers["connection"].lower()
            if connection == "close":
                self.close_connection = True
            elif connection == "keep-alive":
                self.close_connection = False
        if ("expect" in headers and headers["expect"].lower() == "100-continue"
                and version >= "HTTP/1.1"):
            return self.handle_expect_100()
        return True

    def _serve(self) -> None:
        started = time.perf_counter()
        checked = self._check_request()
        # Head and body are in: the slow-client deadline no longer applies.
        self.server.connections.clear_deadline(self.connection)
        if isinstance(checked, Response):
            response, route = self._refusal(checked), route_label(self.server.site.routes, self.path)
        else:
            client = self.client_address[0] if self.client_address else ""
            response, route = dispatch(self.server.site, self.command, self.path, self.headers,
                                       checked, client)
        self._respond(response, route, started)

    def _respond(self, response: Response, route: str, started: float) -> None:
        """Write the response, then count and log it (method and route are bounded labels).
        A streamed response is counted and logged once its head is written."""
        # replaced by the next head's deadline, or dropped
        self.server.connections.writing(self.connection)
        streaming, pump = False, None
        if response.tunnel is not None:
            pump = self._start_tunnel(response, response.tunnel)
        elif response.stream is not None:
            streaming = self._start_stream(response.stream, response)
        else:
            self._write(response)
        elapsed = time.perf_counter() - started
        method = self.command if self.command in KNOWN_METHODS else "other"
        self.server.metrics.observe_request(method, route, response.status, elapsed)
        if self.server.access_log:
            log_line({
                "ts": utc_now(),
                "method": method,
                "path": (getattr(self, "path", "") or "-").partition("?")[0][:256],
                "status": response.status,
                "duration_ms": round(elapsed * 1000, 3),
                "client": self.client_address[0] if self.client_address else "",
            })
        if streaming and response.stream is not None:
            self._stream(response.stream)
        if pump is not None:
            pump.run()

    def _start_tunnel(self, response: Response, tunnel: TunnelEnd) -> Pump:
        """Write the 101 (the connection is a WebSocket now, closed after it): its pump."""
        self.close_connection = True
        client = self.client_address[0] if self.client_address else ""
        try:
            self.wfile.write(upgrade_head(response))
            self.wfile.flush()
        except OSError:
            tunnel.finish(client, 0, 0)
            raise
        self.server.connections.clear_deadline(self.connection)
        return Pump(self.connection, self.rfile, tunnel, self.server.connections, client)

    def _start_stream(self, stream: Stream, response: Response) -> bool:
        """Write the head of a streamed response; whether its body follows (not for HEAD,
        nor while the server drains)."""
        self.close_connection = True
        try:
            self.wfile.write(serialize_stream_head(response))
        except OSError:
            stream.close()
            raise
        connections = self.server.connections
        connections.clear_deadline(self.connection)  # events may be minutes apart
        if self.command == "HEAD" or not connections.streaming(self.connection, stream):
            stream.close()
            return False
        return True

    def _stream(self, stream: Stream) -> None:
        """Write the chunks as they come. A client that closes the connection ends the stream
        at once (``Hangups``: its socket reads end of file), not at the next write that fails.
        A reader that does not read makes a write block: the write deadline
        (``header_timeout``) cuts it off, and the bus, never blocked by it, drops its
        subscription once it falls too far behind."""
        conn, connections = self.connection, self.server.connections
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STREAM_SEND_BUFFER)
            self.server.hangups.watch(conn, stream.close)
            for chunk in stream.chunks():
                if connections.draining:
                    break
                connections.writing(conn)
                self.wfile.write(chunk)
                connections.clear_deadline(conn)
        except OSError:
            pass  # the client went away, or was cut off
        finally:
            self.server.hangups.forget(conn)
            stream.close()
            connections.stream_ended(conn)
            connections.clear_deadline(conn)

    def _check_request(self) -> Response | bytes:
        """The body (b"" when none), or a refusal of the head: ambiguous framing, a missing
        Host, a body too large to read (never read) or chunked. Whether the route takes a
        body is the router's to say."""
        # read by their lower-case names: what Headers keeps
        headers: Headers = self.headers  # type: ignore[assignment]
        if "host" not in headers and self.request_version == "HTTP/1.1":
            return closing(ApiError(BAD_HEADER, "an HTTP/1.1 request must carry a Host "
                                    "header (RFC 9112, section 3.2)").response())
        if headers.repeats("host"):
            return closing(ApiError(BAD_HEADER, "more than one Host header").response())
        if "transfer-encoding" in headers:
            takes = route_body(self.server.site.routes, self.command, self.path) is not None
            why = "send a Content-Length" if takes else "no route takes a body"
            return closing(ApiError(LENGTH_REQUIRED,
                                    f"chunked bodies are not accepted: {why}").response())
        text = headers.get("content-length")
        if text is None:
            return b""
        length = whole_number(text, LENGTH_DIGITS)
        if length is None or headers.repeats("content-length"):
            return closing(ApiError(BAD_HEADER, "invalid Content-Length: one header, "
                                    f"1 to {LENGTH_DIGITS} ASCII digits").response())
        if length > MAX_BODY:
            refusal = self._too_large(length)
            if refusal is not None:
                return refusal
        return self.rfile.read(length) if length else b""

    def _too_large(self, length: int) -> Response | None:
        """A body over MAX_BODY is read only for a route that takes one, up to its bound."""
        spec = route_body(self.server.site.routes, self.command, self.path)
        if spec is None:
            return closing(ApiError(BODY_TOO_LARGE, f"the body is larger than {MAX_BODY} "
                                    "bytes (it was not read); no route takes a body").response())
        if length > spec.limit:
            return closing(ApiError(BODY_TOO_LARGE, f"the body is larger than {spec.limit} "
                                    "bytes (it was not read)").response())
        return None

    def _refusal(self, response: Response) -> Response:
        """A response made here, not by the router: with the CORS headers of an allowed origin."""
        return response.with_headers(*cors_headers(self.server.site.access, self.headers))

    def _write(self, response: Response) -> None:
        """Status line, headers and body in one write: no Nagle delay, no half responses."""
        if response.close or self.server.connections.draining:
            self.close_connection = True
        # the socket's own sendall: what the unbuffered wfile would call, one call less
        self.connection.sendall(serialize(response, self.close_connection, self.command == "HEAD"))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors found by http.server itself (bad request line, 414, 431, 505) as problems."""
        self.close_connection = True
        if not isinstance(getattr(self, "command", None), str):
            self.command = ""
        if not isinstance(getattr(self, "headers", None), Headers):
            self.headers = Headers()  # type: ignore[assignment]
        detail = message or HTTPStatus(code).description
        problem = _SHELL_PROBLEMS.get(code, MALFORMED_REQUEST)
        response = self._refusal(closing(ApiError(problem, detail).response()))
        path = getattr(self, "path", "")
        try:
            self._respond(response, route_label(self.server.site.routes, path) if path else UNMATCHED, time.perf_counter())
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's own stderr lines: we log JSON in ``_serve``."""
