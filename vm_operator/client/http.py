"""A small API client over ``urllib``: one method per route, typed records back.

Every request has a timeout (a stuck server never hangs the client), goes to the configured
URL only (no proxies from the environment, no redirects: the token goes nowhere else), and
ends in one of three ways: a ``Reply`` with the typed record and the body as sent, a
``ClientError`` carrying the operator's problem document, or ``Unreachable`` / ``TimedOut``.

A route of a later issue is one more small method here: build the path with ``path()``,
call ``self._call`` and read the record.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from vm_operator import __version__
from vm_operator.client.records import (
    BadAnswer,
    Change,
    Health,
    Host,
    Image,
    LogChunk,
    Operation,
    Problem,
    Ready,
    Vm,
    VmDetail,
    VmIp,
    image_list,
    operation_list,
    vm_list,
)
from vm_operator.client.tls import HttpsHandler, PinMismatch, TlsOptions
from vm_operator.client.urls import build_url, check_base_url, path
from vm_operator.client.websocket import NotWebSocket, Refused, WebSocket
from vm_operator.client.websocket import connect as websocket_connect

DEFAULT_URL = "http://127.0.0.1:8082"
JSON_MEDIA = "application/json"
MERGE_PATCH_MEDIA = "application/merge-patch+json"
STREAM_READ_TIMEOUT = 45.0  # an event stream sends a heartbeat every 15 s: three missed = dropped
READY_WAIT = 120  # the server's default wait of start?wait=ready (without timeout)
CANCEL_WAIT = 5  # seconds the server waits for a cancelled operation to end
MAX_ANSWER_BYTES = 64 << 20  # the largest answer today is a 4 MiB log
T = TypeVar("T")


class ClientError(Exception):
    """The operator refused: its status and problem document (``detail`` says why)."""

    def __init__(self, status: int, problem: Problem, body: bytes) -> None:
        super().__init__(f"{status} {problem.slug}: {problem.detail}")
        self.status = status
        self.problem = problem
        self.body = body


class Unreachable(Exception):
    """No vm-operator answered: connection refused or broken, DNS, TLS, or an answer that
    is not the operator's (an error without a problem document, JSON that is not its)."""


class TimedOut(Exception):
    """No answer within the request's timeout."""


@dataclass(frozen=True)
class Reply(Generic[T]):
    """A successful answer: the typed record, and the body exactly as the server sent it."""

    value: T
    body: bytes
    status: int


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message
    body: bytes


# --- failures of a request (pure) ---------------------------------------------------------


def transport_error(exc: BaseException, url: str) -> Unreachable | TimedOut:
    """What a failed exchange means for the user: timed out, or no operator reachable."""
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    where = _origin(url)
    if isinstance(reason, TimeoutError):  # socket.timeout is TimeoutError
        return TimedOut(f"no answer from {where} in time")
    if isinstance(reason, socket.gaierror):
        return Unreachable(f"cannot resolve the host of {where}: {reason.strerror or reason}")
    if isinstance(reason, PinMismatch):
        return Unreachable(f"{where}: {reason}")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return Unreachable(f"TLS with {where} failed: {getattr(reason, 'verify_message', None) or reason}; trust "
                           "its certificate with --ca-file FILE or --fingerprint sha256:HEX")
    if isinstance(reason, ssl.SSLError | ssl.CertificateError):
        return Unreachable(f"TLS with {where} failed: {getattr(reason, 'reason', None) or reason}")
    if isinstance(reason, ConnectionRefusedError):
        return Unreachable(f"connection to {where} refused: is vm-operator running there?")
    if isinstance(reason, http.client.HTTPException | ConnectionError):
        return Unreachable(f"the connection to {where} broke: {type(reason).__name__}")
    if isinstance(reason, OSError):
        return Unreachable(f"cannot reach {where}: {reason.strerror or reason}")
    return Unreachable(f"cannot reach {where}: {reason}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def refusal(status: int, headers: Message, body: bytes, url: str) -> ClientError | Unreachable:
    """An error status: the operator's refusal when it carries a problem document, else an
    answer from something that is not the operator (a proxy, another web server)."""
    content_type = headers.get("Content-Type", "")
    if content_type.split(";")[0].strip() == "application/problem+json":
        try:
            return ClientError(status, Problem.from_json(json.loads(body)), body)
        except (ValueError, BadAnswer):
            pass
    return Unreachable(f"{_origin(url)} answered HTTP {status} without a problem document: "
                       "is the URL that of vm-operator?")


# --- the client -----------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The operator never redirects: a 3xx is an answer of something else, and following it
    could carry the token to another host."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Message, newurl: str) -> None:
        return None


def _opener(tls: TlsOptions | None) -> urllib.request.OpenerDirector:
    # ProxyHandler({}): no proxy from http_proxy & co., the token goes to --url only
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({}), _NoRedirect()]
    if tls is not None:  # the CA file or pin (checked before the request), a client certificate
        handlers.append(HttpsHandler(tls))
    return urllib.request.build_opener(*handlers)


class Client:
    """The vm-operator API. ``timeout`` bounds every request; calls that wait on the server
    (stop's Tart timeout, ip's wait) get that wait on top."""

    def __init__(self, base_url: str, token: str | None, timeout: float,
                 tls: TlsOptions | None = None) -> None:
        self.base_url = check_base_url(base_url)
        self.timeout = timeout
        self.__token = token  # name-mangled and never in a repr or a message
        self._tls = tls
        self._open = _opener(tls)

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, token={'set' if self.__token else 'none'})"

    def _request(self, method: str, url: str, body: Any, media: str,
                 accept: str = "application/json, application/problem+json",
                 extra: Mapping[str, str] | None = None) -> urllib.request.Request:
        headers = {"Accept": accept, "User-Agent": f"vm-operator-client/{__version__}",
                   **(extra or {})}
        if self.__token:
            headers["Authorization"] = f"Bearer {self.__token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = media
        return urllib.request.Request(url, data=data, method=method, headers=headers)

    def _call(self, method: str, api_path: str,
              query: Mapping[str, str | int | bool | None] | None = None,
              wait: float = 0, body: Any = None, media: str = JSON_MEDIA) -> Answer:
        url = build_url(self.base_url, api_path, query or {})
        response = self._send(self._request(method, url, body, media), url, self.timeout + wait)
        try:
            with response:
                return Answer(response.status, response.headers, _read(response))
        except (OSError, http.client.HTTPException) as exc:
            raise transport_error(exc, url) from None

    def _send(self, request: urllib.request.Request, url: str, timeout: float) -> Any:
        """The open response to ``request``; a refusal, ``Unreachable`` or ``TimedOut``."""
        try:
            return self._open.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            try:
                data = _read(exc)
            except (OSError, http.client.HTTPException) as inner:
                raise transport_error(inner, url) from None
            finally:
                exc.close()
            raise refusal(exc.code, exc.headers, data, url) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
            raise transport_error(exc, url) from None

    def _json(self, answer: Answer, read: Callable[[Any], T]) -> Reply[T]:
        try:
            return Reply(read(json.loads(answer.body)), answer.body, answer.status)
        except (ValueError, BadAnswer) as exc:  # JSONDecodeError is a ValueError
            raise Unreachable(f"{_origin(self.base_url)} answered something that is not "
                              f"vm-operator's JSON ({exc}): is the URL that of vm-operator?"
                              ) from None

    # --- one method per route -----------------------------------------------------------

    def health(self) -> Reply[Health]:
        return self._json(self._call("GET", "/health"), Health.from_json)

    def list_vms(self, state: str | None = None, source: str | None = None) -> Reply[list[Vm]]:
        return self._json(self._call("GET", "/vms", {"state": state, "source": source}), vm_list)

    def get_vm(self, name: str) -> Reply[VmDetail]:
        return self._json(self._call("GET", path("vms", name)), VmDetail.from_json)

    def start_vm(self, name: str, suspendable: bool = False) -> Reply[Change]:
        query = {"suspendable": True if suspendable else None}
        return self._json(self._call("POST", path("vms", name, "start"), query), Change.from_json)

    def start_vm_ready(self, name: str, suspendable: bool = False,
                       timeout: int | None = None) -> Reply[Ready]:
        """Start, and answer once the guest accepts connections (``?wait=ready``); the
        request waits ``timeout`` (the server's default when None: READY_WAIT) longer."""
        query: dict[str, str | int | bool | None] = {
            "suspendable": True if suspendable else None, "wait": "ready", "timeout": timeout}
        waits = READY_WAIT if timeout is None else timeout
        answer = self._call("POST", path("vms", name, "start"), query, waits)
        return self._json(answer, Ready.from_json)

    def stop_vm(self, name: str, timeout: int | None = None) -> Reply[Change]:
        waits = 30 if timeout is None else timeout  # the server's default Tart stop timeout
        answer = self._call("POST", path("vms", name, "stop"), {"timeout": timeout}, waits)
        return self._json(answer, Change.from_json)

    def suspend_vm(self, name: str) -> Reply[Change]:
        return self._json(self._call("POST", path("vms", name, "suspend")), Change.from_json)

    def vm_ip(self, name: str, wait: int = 0) -> Reply[VmIp]:
        answer = self._call("GET", path("vms", name, "ip"), {"wait": wait or None}, wait)
        return self._json(answer, VmIp.from_json)

    def vm_logs(self, name: str, tail: int | None = None) -> LogChunk:
        answer = self._call("GET", path("vms", name, "logs"), {"tail": tail})
        try:
            omitted = int(answer.headers.get("Vm-Operator-Log-Omitted-Bytes", ""))
        except ValueError:
            raise Unreachable("the log answer has no Vm-Operator-Log-Omitted-Bytes header: "
                              "is the URL that of vm-operator?") from None
        truncated = answer.headers.get("Vm-Operator-Log-Truncated", "false") == "true"
        return LogChunk(answer.body, max(0, omitted), truncated)

    def create_vm(self, spec: Mapping[str, object]) -> Reply[Operation]:
        return self._json(self._call("POST", "/vms", body=dict(spec)), Operation.from_json)

    def delete_vm(self, name: str, force: bool = False,
                  timeout: int | None = None) -> Reply[Operation] | None:
        """Delete: None when the server deleted it at once (204), else the operation (202)."""
        query = {"force": True if force else None, "timeout": timeout}
        waits = (30 if timeout is None else timeout) if force else 0
        answer = self._call("DELETE", path("vms", name), query, waits)
        if answer.status == 204:
            return None
        return self._json(answer, Operation.from_json)

    def patch_vm(self, name: str, patch: Mapping[str, object]) -> Reply[VmDetail]:
        answer = self._call("PATCH", path("vms", name), body=dict(patch), media=MERGE_PATCH_MEDIA)
        return self._json(answer, VmDetail.from_json)

    def exec_vm(self, name: str, body: Mapping[str, object], waits: float,
                read: Callable[[Any], T]) -> Reply[T]:
        """``POST /vms/{name}/exec``: answers once the command has ended, ``waits`` (its
        timeout) at most beyond the client's own."""
        answer = self._call("POST", path("vms", name, "exec"), wait=waits, body=dict(body))
        return self._json(answer, read)

    def operations(self) -> Reply[list[Operation]]:
        return self._json(self._call("GET", "/operations"), operation_list)

    def operation(self, operation_id: str) -> Reply[Operation]:
        return self._json(self._call("GET", path("operations", operation_id)),
                          Operation.from_json)

    def cancel_operation(self, operation_id: str) -> Reply[Operation]:
        answer = self._call("POST", path("operations", operation_id, "cancel"), wait=CANCEL_WAIT)
        return self._json(answer, Operation.from_json)

    def images(self) -> Reply[list[Image]]:
        return self._json(self._call("GET", "/images"), image_list)

    def pull_image(self, ref: str, insecure: bool = False) -> Reply[Operation]:
        body: dict[str, object] = {"ref": ref}
        if insecure:
            body["insecure"] = True
        return self._json(self._call("POST", "/images", body=body), Operation.from_json)

    def delete_image(self, ref: str) -> None:
        self._call("DELETE", path("images", ref))

    def prune_images(self, older_than_days: int | None,
                     space_budget_gb: int | None) -> Reply[Operation]:
        body = {key: value for key, value in (("older_than_days", older_than_days),
                                              ("space_budget_gb", space_budget_gb))
                if value is not None}
        return self._json(self._call("POST", "/images/prune", body=body), Operation.from_json)

    def host(self) -> Reply[Host]:
        return self._json(self._call("GET", "/host"), Host.from_json)

    def open_events(self, vm: str | None, last_event_id: int | None) -> Any:
        """``GET /events`` as an open response to read lines from (the caller closes it).
        Each read waits at most STREAM_READ_TIMEOUT: the server sends a heartbeat every 15 s."""
        url = build_url(self.base_url, "/events", {"vm": vm})
        extra = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        request = self._request("GET", url, None, JSON_MEDIA,
                                accept="text/event-stream, application/problem+json", extra=extra)
        return self._send(request, url, max(self.timeout, STREAM_READ_TIMEOUT))

    def open_tunnel(self, name: str, port: int) -> WebSocket:
        """``GET /vms/{name}/port-forward?port=N``: an open WebSocket to the guest's port."""
        return self.open_websocket(path("vms", name, "port-forward"), {"port": port})

    def open_exec(self, name: str, query: Mapping[str, str | int | bool | None]) -> WebSocket:
        """``GET /vms/{name}/exec?command=…``: an open WebSocket to an interactive command."""
        return self.open_websocket(path("vms", name, "exec"), query)

    def open_websocket(self, api_path: str,
                       query: Mapping[str, str | int | bool | None]) -> WebSocket:
        """The WebSocket route ``api_path`` opened (a refusal raises, as any answer's)."""
        url = build_url(self.base_url, api_path, query)
        headers = {"User-Agent": f"vm-operator-client/{__version__}"}
        if self.__token:
            headers["Authorization"] = f"Bearer {self.__token}"
        try:
            answer = websocket_connect(url, headers, self.timeout, self._tls)
        except NotWebSocket as exc:
            raise Unreachable(f"{_origin(url)}: {exc}: is the URL that of vm-operator?") from None
        except OSError as exc:
            raise transport_error(exc, url) from None
        if isinstance(answer, Refused):
            raise refusal(answer.status, answer.headers, answer.body, url)
        return answer


def _read(response: Any) -> bytes:
    data: bytes = response.read(MAX_ANSWER_BYTES + 1)
    if len(data) > MAX_ANSWER_BYTES:
        raise Unreachable(f"the answer is larger than {MAX_ANSWER_BYTES >> 20} MiB")
    return data
