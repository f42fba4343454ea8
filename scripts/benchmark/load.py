"""The load: client threads of this process, one keep-alive connection each, sending the cycle
of requests of a scenario. By default they send pre-built request bytes over a raw socket and
parse just the status line and Content-Length (``--client http.client``: the standard library
client instead)."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from benchmark.common import HOST, LOCAL_VMS
from benchmark.servers import Server

READY_VM = "ubuntu-runner"  # the demo VM the reads see running, ready and with a spec
READS = ("health", "vms", "vm", "vms_etag")  # against the bare server in alternating rounds
SCENARIOS = ("health", "vms", "vm", "mixed")  # the per-request-spawn reference's
OPERATOR_SCENARIOS = (*READS, "mixed")  # the cached operator's
CONDITIONAL = ("vms_etag",)  # each client sends If-None-Match with its connection's ETag
LABELS = {
    "bare": "bare ThreadingHTTPServer (fixed JSON)",
    "health": "GET /health",
    "vms": "GET /vms",
    "vm": "GET /vms/{name} (running, ready, with a spec)",
    "vms_etag": "GET /vms with If-None-Match (304)",
    "mixed": "mixed read/write (10% POST start/stop)",
    "long": "long run: GET /vms/{name} + GET /health",
    "soak": "soak: GET /health, GET /vms, GET /vms/{name}",
}


def request_bytes(method: str, path: str, port: int, etag: str | None = None) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
    if etag is not None:
        head += f"If-None-Match: {etag}\r\n"
    if method == "POST":
        head += "Content-Length: 0\r\n"
    return (head + "\r\n").encode()


class RawConnection:
    """Keep-alive HTTP/1.1 over a socket (wrapped in TLS when ``tls`` is given): pre-built
    requests, Content-Length framed responses; ``etag``: the last response's ETag."""

    def __init__(self, addr: tuple[str, int], timeout: float,
                 tls: ssl.SSLContext | None = None) -> None:
        self.addr = addr
        self.timeout = timeout
        self.tls = tls
        self.sock: socket.socket | None = None
        self.buf = b""
        self.etag: str | None = None

    def connect(self) -> None:
        self.close()
        sock = socket.create_connection(self.addr, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=self.addr[0])
        self.sock, self.buf = sock, b""

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def abort(self) -> None:
        sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def request(self, data: bytes, method: str, path: str) -> tuple[int, bytes]:
        if self.sock is None:
            self.connect()
        sock = self.sock
        assert sock is not None
        sock.sendall(data)
        buf = self.buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before a response")
            buf += chunk
        head = buf[:end].lower()
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        length = 0
        if at >= 0:
            eol = head.find(b"\r\n", at + 2)
            length = int(head[at + 17:eol if eol >= 0 else len(head)])
        stop = end + 4 + length
        while len(buf) < stop:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside a response")
            buf += chunk
        body = buf[end + 4:stop]
        self.buf = buf[stop:]
        at = head.find(b"\r\netag:")
        if at >= 0:
            eol = head.find(b"\r\n", at + 2)
            self.etag = buf[at + 7:eol if eol >= 0 else end].strip().decode()
        if b"\r\nconnection: close" in head:
            self.close()
        return status, body


class StdlibConnection:
    """The same interface over ``http.client`` (``--client http.client``)."""

    def __init__(self, addr: tuple[str, int], timeout: float,
                 tls: ssl.SSLContext | None = None) -> None:
        self.addr = addr
        self.timeout = timeout
        self.tls = tls
        self.conn: http.client.HTTPConnection | None = None
        self.etag: str | None = None

    def connect(self) -> None:
        self.close()
        self.conn = (http.client.HTTPConnection(*self.addr, timeout=self.timeout)
                     if self.tls is None else
                     http.client.HTTPSConnection(*self.addr, timeout=self.timeout,
                                                 context=self.tls))
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def abort(self) -> None:
        conn = self.conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def request(self, data: bytes, method: str, path: str) -> tuple[int, bytes]:
        if self.conn is None:
            self.connect()
        assert self.conn is not None
        sent = data.find(b"\r\nIf-None-Match: ")
        headers = ({} if sent < 0 else
                   {"If-None-Match": data[sent + 17:data.index(b"\r\n", sent + 2)].decode()})
        self.conn.request(method, path, headers=headers)
        response = self.conn.getresponse()
        body = response.read()
        self.etag = response.getheader("ETag", self.etag)
        if response.will_close:
            self.close()
        return response.status, body


Connection = RawConnection | StdlibConnection
CLIENTS: dict[str, type[Connection]] = {"raw": RawConnection, "http.client": StdlibConnection}


def plan_for(scenario: str, index: int) -> list[tuple[str, str]]:
    """The cycle of requests client ``index`` sends in ``scenario``."""
    vm = LOCAL_VMS[index % len(LOCAL_VMS)]
    if scenario in ("health", "bare"):
        return [("GET", "/health")]
    if scenario in ("vms", "vms_etag"):
        return [("GET", "/vms")]
    if scenario == "vm":
        return [("GET", f"/vms/{READY_VM}")]
    if scenario == "soak":
        return [("GET", "/health"), ("GET", "/vms"), ("GET", f"/vms/{READY_VM}")]
    if scenario == "mixed":  # 18 reads and 2 writes: each client starts and stops "its" VM
        reads = [("GET", "/vms"), ("GET", f"/vms/{vm}"), ("GET", "/health")] * 6
        return (reads[:9] + [("POST", f"/vms/{vm}/start")]
                + reads[9:] + [("POST", f"/vms/{vm}/stop")])
    if scenario == "long":
        return [("GET", f"/vms/{LOCAL_VMS[(index + k) % len(LOCAL_VMS)]}") if k % 2 == 0
                else ("GET", "/health") for k in range(2 * len(LOCAL_VMS))]
    raise ValueError(scenario)


@dataclass
class Control:
    start: float = 0.0
    deadline: float = float("inf")
    duration: float = 0.0
    abort: threading.Event = field(default_factory=threading.Event)


class Worker(threading.Thread):
    """One client: one keep-alive connection, one request at a time, latencies recorded."""

    def __init__(self, index: int, server: Server, plan: list[tuple[str, str]], client: str,
                 barrier: threading.Barrier, control: Control, *, requests: int | None = None,
                 reconnect_every: int = 0, timeout: float = 60.0,
                 conditional: bool = False) -> None:
        super().__init__(name=f"client-{index}", daemon=True)
        self.port = server.port
        self.plan = [(m, p, request_bytes(m, p, server.port)) for m, p in plan]
        self.conn: Connection = CLIENTS[client](server.addr, timeout, server.client_tls)
        self.conditional = conditional  # If-None-Match: the ETag this connection last saw
        self.barrier = barrier
        self.control = control
        self.requests = requests
        self.reconnect_every = reconnect_every
        self.offset = index
        self.latencies: list[float] = []
        self.write_latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.last_done = 0.0
        self.in_flight = False
        self.warm_error: str | None = None
        # the warm-up request: the plan's first read (what it reads is cached before the clock
        # starts, and a conditional client has its first ETag), else GET /health
        reads = [step for step in self.plan if step[0] == "GET"]
        self.warm = reads[0] if reads else ("GET", "/health",
                                            request_bytes("GET", "/health", server.port))

    def tag_plan(self) -> None:
        """Send the ETag the connection last saw (none: the plain request)."""
        etag = self.conn.etag
        self.plan = [(m, p, request_bytes(m, p, self.port, etag)) for m, p, _ in self.plan]

    def run(self) -> None:
        try:
            self.conn.connect()
            # warm-up: the connection, its server thread and the cache of what the plan reads
            # exist before the clock starts
            method, path, data = self.warm
            self.conn.request(data, method, path)
            if self.conditional:
                self.tag_plan()
        except (OSError, ValueError) as exc:
            self.warm_error = f"{type(exc).__name__}: {exc}"
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return
        if self.warm_error is not None:
            return
        self._loop()
        self.conn.close()

    def _loop(self) -> None:
        plan, n = self.plan, len(self.plan)
        i = self.offset % n
        done = 0
        latencies, statuses = self.latencies, self.statuses
        deadline, abort, limit = self.control.deadline, self.control.abort, self.requests
        reconnect, conditional = self.reconnect_every, self.conditional
        etag = self.conn.etag
        clock = time.perf_counter
        while not abort.is_set():
            if clock() >= deadline or (limit is not None and done >= limit):
                break
            method, path, data = plan[i]
            i = (i + 1) % n
            self.in_flight = True
            t0 = clock()
            try:
                status, _ = self.conn.request(data, method, path)
            except (OSError, ValueError) as exc:
                if abort.is_set():
                    break
                self.in_flight = False
                self.errors.append(f"{type(exc).__name__}: {exc}")
                self.conn.close()
                continue
            t1 = clock()
            self.in_flight = False
            self.last_done = t1
            if method == "GET":
                latencies.append(t1 - t0)
            else:
                self.write_latencies.append(t1 - t0)
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
            if conditional and status == 200 and self.conn.etag != etag:  # the listing changed
                etag = self.conn.etag
                self.tag_plan()
                plan = self.plan
            if reconnect and done % reconnect == 0:
                self.conn.close()


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, -(-int(q * 1000) * len(sorted_values) // 1000))  # nearest rank, ceil(q n)
    return sorted_values[min(len(sorted_values), rank) - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)
