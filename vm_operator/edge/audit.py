"""What the audit log records of a request (the edge sees requests; the store writes the file).

``dispatch`` writes one ``AuditEntry`` for every request that may change something (any
method but GET, HEAD and OPTIONS) and every refusal of a ``connect`` route; reads are not
audited. A ``connect`` route (a tunnel, an exec) writes its own line when it ends, through
``req.audit(status, bytes_in=…, bytes_out=…, exit_code=…)``: only it knows those. The sink is
plugged in by ``wiring.py`` (``store/audit.AuditLog.write``); no token, nor any part of one,
is ever in an entry: the caller's name stands for it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vm_operator.core.clock import utc_now


@dataclass(frozen=True)
class AuditEntry:
    time: str
    token: str  # the token's name, or "token", "read-token", "anonymous"
    client: str  # the client's address
    method: str
    path: str  # without the query
    vm: str | None
    status: int
    duration_ms: float
    bytes_in: int | None = None  # a tunnel's bytes from the client to the guest
    bytes_out: int | None = None  # and back
    exit_code: int | None = None  # an exec's

    def to_json(self) -> dict[str, object]:
        record: dict[str, object] = {
            "time": self.time, "token": self.token, "client": self.client,
            "method": self.method, "path": self.path, "vm": self.vm, "status": self.status,
            "duration_ms": self.duration_ms,
        }
        for key, value in (("bytes_in", self.bytes_in), ("bytes_out", self.bytes_out),
                           ("exit_code", self.exit_code)):
            if value is not None:
                record[key] = value
        return record


AuditSink = Callable[[AuditEntry], None]


def no_audit(entry: AuditEntry) -> None:
    """No audit log (tests of the edge alone)."""


@dataclass(frozen=True)
class Audit:
    """The audit of one request, bound to who made it: call it with the outcome."""

    sink: AuditSink = no_audit
    token: str = "anonymous"
    client: str = ""
    method: str = ""
    path: str = ""
    vm: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def __call__(self, status: int, *, bytes_in: int | None = None,
                 bytes_out: int | None = None, exit_code: int | None = None) -> None:
        entry = AuditEntry(utc_now(), self.token, self.client, self.method, self.path[:1024],
                           self.vm, status,
                           round((time.perf_counter() - self.started) * 1000, 3),
                           bytes_in, bytes_out, exit_code)
        try:
            self.sink(entry)
        except OSError as exc:  # the disk: say so on stderr, never fail the request for it
            print(f"vm-operator: the audit log cannot be written: {exc.strerror or exc}",
                  file=sys.stderr)


# What a request's ``audit`` is on every route but a ``connect`` one: dispatch writes those
# lines itself, so nothing else calls it.
NO_AUDIT = Audit()
