"""A small WebSocket client (RFC 6455) over the standard library: the opening handshake, then
binary messages both ways (``send``, ``recv``), pings answered, a clean close. The framing is
``vm_operator.websocket``'s, shared with the server; this side masks what it sends.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
from dataclasses import dataclass
from email.message import Message
from io import BufferedReader
from urllib.parse import urlsplit

from vm_operator.client.tls import TlsOptions, check_pin, client_context
from vm_operator.sockets import close_both_ways
from vm_operator.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    NORMAL,
    PING,
    PONG,
    TEXT,
    VERSION,
    FrameError,
    accept_key,
    close_payload,
    frame,
    payload_pieces,
    read_head,
)

MAX_HEAD = 64 * 1024  # an answer's head larger than this is not the operator's
MAX_REFUSAL = 1024 * 1024  # a refusal's body is read up to this


@dataclass(frozen=True)
class Refused:
    """The server answered the handshake with something else than 101 (a problem document)."""

    status: int
    headers: Message
    body: bytes


class NotWebSocket(Exception):
    """The answer is not a WebSocket upgrade, nor an HTTP refusal: not the operator."""


class WebSocket:
    """An open WebSocket: ``send`` (from any thread), ``recv`` (one reader), ``close``."""

    def __init__(self, sock: socket.socket, rfile: BufferedReader) -> None:
        self.sock = sock
        self._rfile = rfile
        self._lock = threading.Lock()
        self._closed = False

    def send(self, data: bytes) -> None:
        """One binary message (an OSError when the connection is gone)."""
        with self._lock:
            if self._closed:
                raise OSError("the tunnel is closed")
            self.sock.sendall(frame(BINARY, data, os.urandom(4)))

    def send_text(self, text: str) -> None:
        """One text message (an OSError when the connection is gone)."""
        with self._lock:
            if self._closed:
                raise OSError("the WebSocket is closed")
            self.sock.sendall(frame(TEXT, text.encode(), os.urandom(4)))

    def recv(self) -> bytes | None:
        """The next piece of a binary message, or None once the tunnel has ended (a close
        frame, the end of the connection). A ping is answered on the way."""
        read = self._rfile.read1
        while True:
            try:
                head = read_head(read, masked=False)
            except (FrameError, OSError):
                return None
            if head is None:
                return None
            try:
                payload = b"".join(payload_pieces(read, head))
            except (FrameError, OSError):
                return None
            if head.opcode in (BINARY, CONTINUATION, TEXT):
                if payload:
                    return payload
                continue
            if head.opcode == PING:
                self._control(PONG, payload)
            elif head.opcode == CLOSE:
                self.close()
                return None

    def _control(self, opcode: int, payload: bytes) -> None:
        with self._lock:
            if not self._closed:
                try:
                    self.sock.sendall(frame(opcode, payload, os.urandom(4)))
                except OSError:
                    pass

    def close(self, code: int = NORMAL) -> None:
        """Send a close frame (once); the server answers with its own and closes."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.sock.sendall(frame(CLOSE, close_payload(code), os.urandom(4)))
            except OSError:
                pass

    def shutdown(self) -> None:
        """Cut the connection (after ``close``, or instead of it)."""
        close_both_ways(self.sock)


def _head_lines(rfile: BufferedReader) -> list[str]:
    lines: list[str] = []
    size = 0
    while True:
        line = rfile.readline(MAX_HEAD + 1)
        size += len(line)
        if not line or size > MAX_HEAD:
            raise NotWebSocket("the answer ended, or its head is too large")
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line.decode("iso-8859-1").rstrip("\r\n"))


def connect(url: str, headers: dict[str, str], timeout: float,
            tls: TlsOptions | None = None) -> WebSocket | Refused:
    """Open a WebSocket to ``url`` (http or https) with ``headers`` added to the handshake;
    over https with the trust ``tls`` says (the CA file, the pin checked before the handshake
    is written, the client certificate), as every other request of the client. Network
    failures raise OSError (TimeoutError, PinMismatch); an answer that is not a 101 is
    Refused."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if parts.scheme == "https":
            options = tls or TlsOptions()
            secured = client_context(options).wrap_socket(sock, server_hostname=host)
            sock = secured
            check_pin(secured, options.pin)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        netloc = f"[{host}]" if ":" in host else host
        request = {"Host": f"{netloc}:{port}" if parts.port else netloc,
                   "Upgrade": "websocket", "Connection": "Upgrade",
                   "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": VERSION, **headers}
        head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in request.items())
        sock.sendall((head + "\r\n").encode("latin-1"))
        rfile = sock.makefile("rb")
        lines = _head_lines(rfile)
        version, _, rest = (lines[0] if lines else "").partition(" ")
        status_text = rest.partition(" ")[0]
        if not version.startswith("HTTP/1.") or not status_text.isdigit():
            raise NotWebSocket("the answer is not HTTP")
        answer = Message()
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                answer[name.strip()] = value.strip()
        status = int(status_text)
        if status != 101:
            length = int(answer.get("Content-Length") or 0)
            body = rfile.read(min(length, MAX_REFUSAL)) if length > 0 else b""
            sock.close()
            return Refused(status, answer, body)
        if answer.get("Sec-WebSocket-Accept") != accept_key(key):
            raise NotWebSocket("the upgrade's Sec-WebSocket-Accept is wrong")
        sock.settimeout(None)
        return WebSocket(sock, rfile)
    except BaseException:
        sock.close()
        raise
