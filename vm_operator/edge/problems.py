"""The catalogue of problem types: every ``type`` a problem document can carry, in one place.

A problem's ``type`` is the relative URI ``/problems/{slug}``; the operator serves a page
for each (``GET /problems/{slug}``, and an index at ``GET /problems``), so the type
resolves against the request URI to its documentation (RFC 9457, section 3.1.1).
The ``title`` and ``status`` of every problem document come from here too: one title per
type, the same on every occurrence, as RFC 9457 asks.

This is the one table of errors: each entry names the exceptions of the core and of the
Tart adapter it answers (``raised_by``; the most specific class wins, see
``errors.problem_for``); the entries without are the edge's own refusals (``errors.ApiError``,
which takes a ``Slug``, so mypy proves that every problem the code builds is catalogued).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vm_operator.core.errors import (
    AlreadyRunning,
    ConfigRefused,
    ImageNotFound,
    InvalidResources,
    IpWaitersFull,
    NoConfigFile,
    NoLogs,
    NotReady,
    NotRunning,
    NotSuspendable,
    OciImage,
    OperationFinished,
    OperationMissing,
    OperationsClosed,
    OperationsFull,
    ReadyTimeout,
    RunEnded,
    StartTimeout,
    StateDirUnwritable,
    VmBusy,
    VmExists,
    VmHeldByOperation,
    VmLimit,
    VmNotFound,
    VmRunning,
    VmStarting,
)
from vm_operator.tart.errors import (
    GuestTimeout,
    RemoteTartUnavailable,
    SshAuthFailed,
    SshFailed,
    SshHostKeyMismatch,
    SshUnavailable,
    TartAlreadyRunning,
    TartBadOutput,
    TartCommandError,
    TartError,
    TartGuestAgentUnreachable,
    TartHostUnreachable,
    TartImageMissing,
    TartInvalidResources,
    TartNoIp,
    TartNotLocalName,
    TartNotRunning,
    TartNotSuspendable,
    TartSuspendUnsupported,
    TartTimeout,
    TartUnavailable,
    TartVmExists,
    TartVmIsRunning,
    TartVmLimit,
    TartVmMissing,
)

PROBLEM_BASE = "/problems/"  # a problem's type is PROBLEM_BASE + slug: a page the operator serves

Slug = Literal[
    "malformed-request", "bad-target", "bad-header", "bad-query", "unknown-parameter",
    "repeated-parameter", "invalid-parameter", "invalid-name", "unexpected-body", "invalid-body",
    "unauthorized",
    "forbidden", "host-not-allowed", "cross-site", "no-route", "vm-not-found", "no-logs",
    "unknown-problem", "method-not-allowed", "already-running", "not-running", "not-suspendable",
    "suspend-unsupported", "vm-limit", "no-ip", "oci-image", "length-required", "body-too-large",
    "uri-too-long", "unsupported-media-type", "headers-too-large", "internal-error", "tart-failed",
    "tart-bad-output", "ssh-host-key", "ssh-auth-failed", "ssh-failed", "not-ready",
    "tart-unavailable", "tart-host-unreachable", "ssh-unavailable", "state-dir-unwritable",
    "vm-busy", "overloaded", "tart-timeout", "start-timeout", "http-version-not-supported",
    "vm-exists", "vm-running", "vm-busy-operation", "invalid-resources", "image-not-found",
    "operation-not-found", "operation-finished", "queue-full", "shutting-down", "interrupted",
    "too-many-streams", "too-many-ip-waits", "vm-starting",
    "ready-timeout",
    "config-refused", "no-config",
    "guest-agent-unreachable", "exec-timeout",
]
"""Every problem type: ``ApiError`` takes only these, so mypy proves each one is catalogued."""



@dataclass(frozen=True)
class ProblemType:
    slug: Slug
    status: int
    title: str
    meaning: str  # what happened
    remedy: str  # what to do about it
    raised_by: tuple[type[Exception], ...] = ()  # the core's and the adapter's exceptions

    @property
    def uri(self) -> str:
        return PROBLEM_BASE + self.slug


CATALOGUE: tuple[ProblemType, ...] = (
    # --- the request itself -------------------------------------------------------------
    ProblemType(
        "malformed-request", 400, "Malformed request",
        "The request line or a header line is not valid HTTP/1.1 (RFC 9112): not three words "
        "separated by single spaces, a method that is not a token, a target that is not "
        "visible ASCII, a version that is not HTTP/ digit . digit, a header line without a "
        "name and a colon, or a header value with a control character other than a tab.",
        "Send a well-formed HTTP/1.1 request; any HTTP client library does.",
    ),
    ProblemType(
        "bad-target", 400, "The request target is not a path",
        "The request target is not an absolute path (it holds a scheme and host, a '#', or "
        "does not start with '/').",
        "Send the path and query only, e.g. GET /vms?state=running.",
    ),
    ProblemType(
        "bad-header", 400, "Invalid request header",
        "A header the operator relies on is missing, repeated or invalid: an HTTP/1.1 request "
        "without a Host header (RFC 9112, section 3.2), more than one Host header, or a "
        "Content-Length that is not one whole number of ASCII digits.",
        "Send exactly one Host header and at most one valid Content-Length.",
    ),
    ProblemType(
        "bad-query", 400, "The query string cannot be parsed",
        "The query string holds an invalid percent-encoding, bytes that are not UTF-8, or an "
        "empty or malformed pair.",
        "Percent-encode the query as UTF-8, as key=value pairs joined by '&'.",
    ),
    ProblemType(
        "unknown-parameter", 400, "Unknown query parameter",
        "The query names a parameter this route does not take; the detail lists the ones it does.",
        "Drop the parameter, or check its spelling against GET /openapi.json.",
    ),
    ProblemType(
        "repeated-parameter", 400, "Repeated query parameter",
        "A query parameter is given more than once.",
        "Give each parameter once.",
    ),
    ProblemType(
        "invalid-parameter", 400, "Invalid query parameter value",
        "A query parameter has a value outside what the route accepts; the detail says which "
        "values are allowed.",
        "Send a value from the range or list the detail names.",
    ),
    ProblemType(
        "invalid-name", 400, "Invalid VM name",
        "The VM name (in the path, the query or the body) cannot be passed to Tart. A VM name "
        "is 1 to 255 printable ASCII characters (U+0021 to U+007E: no spaces, controls or "
        "non-ASCII), not starting with '-', and no empty, '.' or '..' segment between '/'; "
        "a name in the path must also be valid percent-encoded UTF-8. It never reached Tart.",
        "Percent-encode the name as one path segment (an OCI name such as "
        "ghcr.io/org/img:tag is sent as ghcr.io%2Forg%2Fimg%3Atag). The name of a VM to create "
        "must be local: no '/'.",
        raised_by=(TartNotLocalName,),
    ),
    ProblemType(
        "unexpected-body", 400, "This route takes no body",
        "The request carries a body, but the route takes its parameters from the query "
        "string only; the body would have been ignored.",
        "Send no body; pass parameters in the query string, as the detail shows "
        "(e.g. POST /vms/NAME/start?suspendable=true).",
    ),
    ProblemType(
        "invalid-body", 400, "Invalid JSON body",
        "The route takes a JSON object as its body, and this one is not UTF-8 JSON, repeats a "
        "key, is not an object, or has fields that are unknown, missing or of a wrong value; "
        "the errors member names each wrong field with a JSON pointer.",
        "Fix what the detail and the errors name; the route's requestBody in GET /openapi.json "
        "describes the fields.",
    ),
    ProblemType(
        "unauthorized", 401, "A valid bearer token is needed",
        "Tokens are configured and the request carries no token, not a Bearer token, or a "
        "token that is not valid. The WWW-Authenticate header says which.",
        "Send 'Authorization: Bearer TOKEN' with the token of VM_OPERATOR_TOKEN (or "
        "VM_OPERATOR_READ_TOKEN for reads).",
    ),
    ProblemType(
        "forbidden", 403, "The read-only token may not change VMs",
        "The request carries the read-only token (VM_OPERATOR_READ_TOKEN) and asks for a "
        "change (start, stop, suspend).",
        "Use the full-access token (VM_OPERATOR_TOKEN) for changes.",
    ),
    ProblemType(
        "host-not-allowed", 403, "Host not allowed",
        "Without tokens, the Host header must name an IP address, a loopback name or a host "
        "in VM_OPERATOR_ALLOWED_HOSTS; any other name may be DNS rebinding by a web page.",
        "Use the operator's IP address or localhost, add the name to "
        "VM_OPERATOR_ALLOWED_HOSTS, or configure tokens.",
    ),
    ProblemType(
        "cross-site", 403, "Cross-site request refused",
        "Without tokens, a change requested by a browser on another site (a foreign Origin or "
        "Sec-Fetch-Site: cross-site) is refused, so a web page cannot start or stop VMs.",
        "Call the API from the same origin, list the origin in VM_OPERATOR_CORS_ORIGINS, or "
        "configure tokens.",
    ),
    ProblemType(
        "no-route", 404, "No such route",
        "No route of the API has this path.",
        "See GET /openapi.json for the routes.",
    ),
    ProblemType(
        "vm-not-found", 404, "No such VM",
        "Tart has no VM (local or OCI) of this name.",
        "List the VMs with GET /vms; names are case-sensitive.",
        raised_by=(VmNotFound, TartVmMissing),
    ),
    ProblemType(
        "image-not-found", 404, "No such OCI image",
        "The OCI image is not in Tart's cache, or its registry does not know it (Tart: "
        "manifest unknown).",
        "Check the reference (GET /images lists the cache); a private registry may need "
        "credentials on the Tart host.",
        raised_by=(ImageNotFound, TartImageMissing),
    ),
    ProblemType(
        "operation-not-found", 404, "No such operation",
        "The operator has no operation of this id: it never existed, or it left the bounded "
        "history of finished operations.",
        "List the operations with GET /operations.",
        raised_by=(OperationMissing,),
    ),
    ProblemType(
        "no-logs", 404, "No logs",
        "The operator has never started this VM, so it has no output of a tart run to show.",
        "Start the VM through the API (POST /vms/NAME/start) first.",
        raised_by=(NoLogs,),
    ),
    ProblemType(
        "unknown-problem", 404, "No such problem type",
        "This operator has no problem type of this name.",
        "See GET /problems for the problem types.",
    ),
    ProblemType(
        "method-not-allowed", 405, "Method not allowed",
        "The path exists but does not take this method. The Allow header lists the methods "
        "it takes.",
        "Use one of the methods in the Allow header.",
    ),
    ProblemType(
        "already-running", 409, "The VM is already running",
        "Tart refused to start the VM because it already runs, started outside this operator.",
        "Nothing to do if it should run; stop it first to restart it.",
        raised_by=(AlreadyRunning, TartAlreadyRunning),
    ),
    ProblemType(
        "not-running", 409, "The VM is not running",
        "The operation needs a running VM (a suspend, for one), and Tart says it is not running.",
        "Start the VM first (POST /vms/NAME/start).",
        raised_by=(NotRunning, TartNotRunning),
    ),
    ProblemType(
        "guest-agent-unreachable", 409, "The Tart Guest Agent does not answer",
        "tart exec could not reach the Tart Guest Agent inside the VM over its control socket: "
        "the image has no agent (Cirrus Labs' -vanilla images, for one) or the guest has not "
        "booted far enough to run it. The detail is Tart's message.",
        "Wait until the VM is ready and retry; use an image that ships the Tart Guest Agent "
        "(Cirrus Labs' non-vanilla images do), or install it in the guest.",
        raised_by=(TartGuestAgentUnreachable,),
    ),
    ProblemType(
        "not-suspendable", 409, "The VM was not started suspendable",
        "A VM can be suspended only when its tart run was started with --suspendable; this "
        "one was not, or it runs without it.",
        "Stop the VM, start it with POST /vms/NAME/start?suspendable=true, then suspend it.",
        raised_by=(NotSuspendable, TartNotSuspendable),
    ),
    ProblemType(
        "suspend-unsupported", 409, "Tart cannot suspend this VM",
        "Tart suspends only macOS guests; a suspendable start or a suspend of a Linux guest is "
        "refused by Tart.",
        "Stop the VM instead (POST /vms/NAME/stop).",
        raised_by=(TartSuspendUnsupported,),
    ),
    ProblemType(
        "vm-starting", 409, "The VM is still starting",
        "A tart run the operator launched for the VM is alive, but Tart did not list the VM "
        "running within the stop's timeout (a start that timed out): tart stop would find "
        "nothing to stop yet.",
        "Retry the stop once GET /vms/NAME says running, or with a longer ?timeout=; see GET "
        "/vms/NAME/logs.",
        raised_by=(VmStarting,),
    ),
    ProblemType(
        "vm-limit", 409, "Too many VMs are running",
        "Starting this VM would exceed the number of macOS VMs that may run at once (Apple's "
        "licence allows two; VM_OPERATOR_MAX_RUNNING), or Tart itself refused for the same "
        "reason. The detail names the VMs that run.",
        "Stop or suspend another macOS VM first.",
        raised_by=(VmLimit, TartVmLimit),
    ),
    ProblemType(
        "no-ip", 409, "The VM has no IP address",
        "Tart found no IP address for the VM: it is not running, or has not obtained one yet.",
        "Start the VM, or ask again with ?wait=SECONDS to let it boot.",
        raised_by=(TartNoIp,),
    ),
    ProblemType(
        "oci-image", 409, "Tart runs only local VMs",
        "The name is an OCI image in Tart's cache; Tart cannot run or change it directly, and "
        "it leaves the cache through DELETE /images/{ref}, not as a VM.",
        "Clone it to a local VM (tart clone IMAGE NEW-NAME) and use that VM; remove it with "
        "DELETE /images/REF.",
        raised_by=(OciImage,),
    ),
    ProblemType(
        "vm-exists", 409, "The VM exists already",
        "A VM of this name exists, or an operation is creating it. Tart's clone would silently "
        "replace it, so the operator never asks Tart to.",
        "Choose another name, or delete the VM first (DELETE /vms/NAME).",
        raised_by=(VmExists, TartVmExists),
    ),
    ProblemType(
        "vm-running", 409, "The VM is running",
        "The change needs a stopped VM (a delete, a change of its resources), and it runs or "
        "is suspended.",
        "Stop it first (POST /vms/NAME/stop), or delete it with ?force=true.",
        raised_by=(VmRunning, TartVmIsRunning),
    ),
    ProblemType(
        "vm-busy-operation", 409, "An operation holds the VM",
        "An operation (a create or a delete) is working on this VM, or another change of it (a "
        "PATCH, a DELETE) is under way; the operation member names the operation (null for such "
        "a change).",
        "Wait for the operation to finish (GET /operations/ID), or cancel it "
        "(POST /operations/ID/cancel).",
        raised_by=(VmHeldByOperation,),
    ),
    ProblemType(
        "operation-finished", 409, "The operation has finished",
        "The operation has finished (succeeded, failed or cancelled): there is nothing left "
        "to cancel.",
        "Read its outcome with GET /operations/ID.",
        raised_by=(OperationFinished,),
    ),
    ProblemType(
        "no-config", 409, "No declarative file is configured",
        "POST /config/reload applies the operator's declarative file, and it was started "
        "without one (--config, VM_OPERATOR_CONFIG).",
        "Start the operator with --config FILE (see examples/vms.toml).",
        raised_by=(NoConfigFile,),
    ),
    ProblemType(
        "length-required", 411, "Length required",
        "The request has a chunked body (Transfer-Encoding); a body must come with a "
        "Content-Length.",
        "Send no body, or a JSON body with a Content-Length where a route takes one.",
    ),
    ProblemType(
        "body-too-large", 413, "Content too large",
        "The request's body is larger than the route takes (1 KiB where a route takes no body, "
        "64 KiB for a JSON body); it was not read.",
        "Send no body where a route takes none (parameters go in the query string); keep a JSON "
        "body under 64 KiB.",
    ),
    ProblemType(
        "uri-too-long", 414, "Request line too long",
        "The request line is longer than 8 KiB.",
        "Send a shorter request; VM names have at most 255 characters.",
    ),
    ProblemType(
        "unsupported-media-type", 415, "Unsupported media type",
        "A change was sent with a Content-Type the route does not take: a form, multipart or "
        "plain-text body (as a cross-site form of a web page would send), or any type other than "
        "those its requestBody lists. The detail names the ones it takes.",
        "Send the Content-Type the detail names (application/json; PATCH /vms/NAME also takes "
        "application/merge-patch+json), or no body where the route takes none.",
    ),
    ProblemType(
        "invalid-resources", 422, "Tart refused the resources",
        "Tart refused the VM's new resources: fewer CPUs or less memory than the image's "
        "minimum, or a disk smaller than it is (a disk can only grow). The detail is Tart's "
        "message.",
        "Ask for at least the minimum the message names; grow disks only.",
        raised_by=(InvalidResources, TartInvalidResources),
    ),
    ProblemType(
        "config-refused", 422, "The declarative file is refused",
        "The declarative file (--config) cannot be read, is not valid TOML, or holds an unknown "
        "key or a bad value; line and key say where. It was refused whole: nothing was "
        "changed, the previous desired state stays in force.",
        "Fix the file at the line and key named (vm-operator plan FILE checks it), then reload "
        "again (POST /config/reload or SIGHUP).",
        raised_by=(ConfigRefused,),
    ),
    ProblemType(
        "headers-too-large", 431, "Request header fields too large",
        "The request head (the request line and every header line) is larger than 32 KiB, or "
        "the request has more than 100 header lines.",
        "Send fewer and shorter headers (32 KiB in all).",
    ),
    ProblemType(
        "internal-error", 500, "Internal error",
        "The operator failed on this request: a bug. Its standard error has the traceback; "
        "nothing of it is shown to the client.",
        "Report it with the operator's log; retrying may work.",
    ),
    ProblemType(
        "tart-failed", 502, "Tart failed",
        "Tart ran and refused with a message the operator does not classify; the detail is "
        "Tart's own message and tart_exit_code its exit code.",
        "Read Tart's message; GET /vms/NAME/logs shows the output of the last tart run.",
        raised_by=(RunEnded, TartCommandError, TartError),
    ),
    ProblemType(
        "tart-bad-output", 502, "Tart printed something unexpected",
        "Tart exited successfully but printed something that is not what Tart prints (the "
        "binary may not be Tart, or a version the operator does not know).",
        "Check that VM_OPERATOR_TART points at Tart, and its version.",
        raised_by=(TartBadOutput,),
    ),
    ProblemType(
        "ssh-host-key", 502, "The Tart host's SSH host key does not match",
        "Over SSH (VM_OPERATOR_TART_SSH), the Tart host presented a host key other than the "
        "pinned one: it was reinstalled, or something is in between.",
        "Check the host's fingerprint and pin it again in VM_OPERATOR_SSH_KNOWN_HOSTS.",
        raised_by=(SshHostKeyMismatch,),
    ),
    ProblemType(
        "ssh-auth-failed", 502, "The Tart host refused the SSH key",
        "Over SSH, the Tart host refused the operator's key.",
        "Add the operator's public key to that user's ~/.ssh/authorized_keys and check "
        "VM_OPERATOR_SSH_KEY.",
        raised_by=(SshAuthFailed,),
    ),
    ProblemType(
        "ssh-failed", 502, "SSH to the Tart host failed",
        "Over SSH, ssh itself failed for a reason the detail gives.",
        "Read the detail; try the same ssh command by hand.",
        raised_by=(SshFailed,),
    ),
    ProblemType(
        "not-ready", 503, "Not ready",
        "tart list fails, so the operator cannot serve VMs; the detail says why.",
        "Fix what the detail names (Tart missing, hanging, or unreachable); /ready turns 200 "
        "by itself.",
        raised_by=(NotReady,),
    ),
    ProblemType(
        "tart-unavailable", 503, "Tart is not available",
        "The Tart binary is missing or cannot be executed (locally, or on the SSH host).",
        "Install Tart or point VM_OPERATOR_TART / --tart at it; in a container, mount it at "
        "/app/bin/tart-binary.",
        raised_by=(TartUnavailable, RemoteTartUnavailable),
    ),
    ProblemType(
        "tart-host-unreachable", 503, "The Tart host cannot be reached",
        "Over SSH, the Tart host did not answer: it is down, Remote Login is off, or the "
        "network is in the way.",
        "Check that the host is up and Remote Login is on; retry.",
        raised_by=(TartHostUnreachable,),
    ),
    ProblemType(
        "ssh-unavailable", 503, "The ssh client is not available",
        "VM_OPERATOR_TART_SSH is set but the ssh client cannot be run here.",
        "Install OpenSSH's client (Debian: apt-get install openssh-client).",
        raised_by=(SshUnavailable,),
    ),
    ProblemType(
        "state-dir-unwritable", 503, "The state directory cannot be written",
        "The operator cannot write its state directory (run logs and last_run records), so it "
        "cannot start VMs; the detail names the directory.",
        "Make the directory writable by the operator's user, or point --state-dir / "
        "VM_OPERATOR_STATE_DIR elsewhere.",
        raised_by=(StateDirUnwritable,),
    ),
    ProblemType(
        "vm-busy", 503, "Too many pending changes to this VM",
        "More than 16 start, stop or suspend requests for this VM are already waiting.",
        "Retry after the Retry-After header's seconds.",
        raised_by=(VmBusy,),
    ),
    ProblemType(
        "queue-full", 503, "Too many operations are waiting",
        "Operations run one at a time (Tart holds a global lock while it clones) and the queue "
        "of waiting ones is full.",
        "Retry after the Retry-After header's seconds; GET /operations shows what waits.",
        raised_by=(OperationsFull,),
    ),
    ProblemType(
        "shutting-down", 503, "The operator is shutting down",
        "The operator is stopping and takes no new operations.",
        "Retry once it has restarted.",
        raised_by=(OperationsClosed,),
    ),
    ProblemType(
        "interrupted", 503, "Interrupted by a restart",
        "The operator stopped while this operation was queued or running; the restarted "
        "operator marked it failed and removed what it had left half done (a VM whose create "
        "had not finished).",
        "Submit the operation again.",
    ),
    ProblemType(
        "overloaded", 503, "Too many connections",
        "The operator serves at most VM_OPERATOR_MAX_CONNECTIONS connections at once; this one "
        "was answered at once instead of waiting.",
        "Retry after the Retry-After header's seconds; raise the limit if this is normal load.",
    ),
    ProblemType(
        "too-many-streams", 503, "Too many event streams",
        "The operator serves at most VM_OPERATOR_EVENTS_MAX_STREAMS event streams (GET /events) "
        "at once, each holding a connection; this one was refused at once.",
        "Retry after the Retry-After header's seconds; share one stream between watchers, or "
        "raise the limit (below VM_OPERATOR_MAX_CONNECTIONS).",
    ),
    ProblemType(
        "too-many-ip-waits", 503, "Too many waits for IP addresses",
        "GET /vms/{name}/ip runs one tart ip per VM, shared by every request for that VM, and "
        "only so many at once (the detail says how many): this request needed one more.",
        "Retry after the Retry-After header's seconds.",
        raised_by=(IpWaitersFull,),
    ),
    ProblemType(
        "tart-timeout", 504, "Tart did not answer in time",
        "A Tart command outlived its timeout (VM_OPERATOR_TART_TIMEOUT); it and everything it "
        "started were killed.",
        "Retry; if Tart is slow on this host, raise VM_OPERATOR_TART_TIMEOUT.",
        raised_by=(TartTimeout,),
    ),
    ProblemType(
        "exec-timeout", 504, "The command did not end in time",
        "A command run in the guest (POST /vms/{name}/exec) outlived the request's timeout: "
        "tart exec and everything it started were killed; its output is lost.",
        "Give a longer timeout (up to 3600 s), or run the command in the background in the "
        "guest and poll for its result.",
        raised_by=(GuestTimeout,),
    ),
    ProblemType(
        "start-timeout", 504, "The VM did not start in time",
        "tart run did not report the VM running within VM_OPERATOR_START_TIMEOUT; it was left "
        "running.",
        "Watch GET /vms/NAME and GET /vms/NAME/logs; raise VM_OPERATOR_START_TIMEOUT for slow "
        "VMs.",
        raised_by=(StartTimeout,),
    ),
    ProblemType(
        "ready-timeout", 504, "The VM did not become ready in time",
        "POST /vms/NAME/start?wait=ready waited its timeout for the VM to be ready, and it was "
        "not: waiting_for says what was missing, ip (Tart reported no IP address; ip is null) "
        "or connection (no TCP connection to ip:port succeeded). The VM was left running.",
        "Ask again with a longer timeout, or watch GET /vms/NAME (ready, ip) and its logs; "
        "check that the guest runs sshd (or whatever listens on VM_OPERATOR_READY_PORT) and "
        "that the port is the one it listens on.",
        raised_by=(ReadyTimeout,),
    ),
    ProblemType(
        "http-version-not-supported", 505, "HTTP version not supported",
        "The request is not HTTP/1.0 or HTTP/1.1.",
        "Speak HTTP/1.1.",
    ),
)

PROBLEMS: dict[str, ProblemType] = {problem.slug: problem for problem in CATALOGUE}
RAISED: dict[type[Exception], ProblemType] = {
    kind: problem for problem in CATALOGUE for kind in problem.raised_by
}


def problem_of(kind: type[Exception]) -> ProblemType | None:
    """The entry that answers an exception class: that of its most specific catalogued class."""
    return next((RAISED[cls] for cls in kind.__mro__ if cls in RAISED), None)
