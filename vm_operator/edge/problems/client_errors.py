"""The client errors (4xx): a request the operator will not serve as it was sent, or that
asks for what is not there or not possible now. The client can change something.

Each entry is bound to its slug in capitals (``NO_ROUTE`` is ``no-route``); the catalogue
(``problems/__init__.py``) collects every ``ProblemType`` of this module, in this order.
"""

from __future__ import annotations

import vm_operator.core.errors as core
import vm_operator.tart.errors as tart
from vm_operator.edge.problems.entry import ProblemType, Raised
from vm_operator.edge.throttle import FAILURES, WINDOW

MALFORMED_REQUEST = ProblemType(
    "malformed-request", 400, "Malformed request",
    "The request line or a header line is not valid HTTP/1.1 (RFC 9112): not three words "
    "separated by single spaces, a method that is not a token, a target that is not "
    "visible ASCII, a version that is not HTTP/ digit . digit, a header line without a "
    "name and a colon, or a header value with a control character other than a tab.",
    "Send a well-formed HTTP/1.1 request; any HTTP client library does.",
)

BAD_TARGET = ProblemType(
    "bad-target", 400, "The request target is not a path",
    "The request target is not an absolute path (it holds a scheme and host, a '#', or "
    "does not start with '/').",
    "Send the path and query only, e.g. GET /vms?state=running.",
)

BAD_HEADER = ProblemType(
    "bad-header", 400, "Invalid request header",
    "A header the operator relies on is missing, repeated or invalid: an HTTP/1.1 request "
    "without a Host header (RFC 9112, section 3.2), more than one Host header, or a "
    "Content-Length that is not one whole number of ASCII digits.",
    "Send exactly one Host header and at most one valid Content-Length.",
)

BAD_QUERY = ProblemType(
    "bad-query", 400, "The query string cannot be parsed",
    "The query string holds an invalid percent-encoding, bytes that are not UTF-8, or an "
    "empty or malformed pair.",
    "Percent-encode the query as UTF-8, as key=value pairs joined by '&'.",
)

UNKNOWN_PARAMETER = ProblemType(
    "unknown-parameter", 400, "Unknown query parameter",
    "The query names a parameter this route does not take; the detail lists the ones it does.",
    "Drop the parameter, or check its spelling against GET /openapi.json.",
)

REPEATED_PARAMETER = ProblemType(
    "repeated-parameter", 400, "Repeated query parameter",
    "A query parameter is given more than once.",
    "Give each parameter once.",
)

INVALID_PARAMETER = ProblemType(
    "invalid-parameter", 400, "Invalid query parameter value",
    "A query parameter has a value outside what the route accepts; the detail says which "
    "values are allowed.",
    "Send a value from the range or list the detail names.",
)

INVALID_NAME = ProblemType(
    "invalid-name", 400, "Invalid VM name",
    "The VM name (in the path, the query or the body) cannot be passed to Tart. A VM name "
    "is 1 to 255 printable ASCII characters (U+0021 to U+007E: no spaces, controls or "
    "non-ASCII), not starting with '-', and no empty, '.' or '..' segment between '/'; "
    "a name in the path must also be valid percent-encoded UTF-8. It never reached Tart.",
    "Percent-encode the name as one path segment (an OCI name such as "
    "ghcr.io/org/img:tag is sent as ghcr.io%2Forg%2Fimg%3Atag). The name of a VM to create "
    "must be local: no '/'.",
    raised_by=(tart.TartNotLocalName,),
)

UNEXPECTED_BODY = ProblemType(
    "unexpected-body", 400, "This route takes no body",
    "The request carries a body, but the route takes its parameters from the query "
    "string only; the body would have been ignored.",
    "Send no body; pass parameters in the query string, as the detail shows "
    "(e.g. POST /vms/NAME/start?suspendable=true).",
)

INVALID_BODY = ProblemType(
    "invalid-body", 400, "Invalid JSON body",
    "The route takes a JSON object as its body, and this one is not UTF-8 JSON, repeats a "
    "key, is not an object, or has fields that are unknown, missing or of a wrong value; "
    "the errors member names each wrong field with a JSON pointer.",
    "Fix what the detail and the errors name; the route's requestBody in GET /openapi.json "
    "describes the fields.",
)

UNAUTHORIZED = ProblemType(
    "unauthorized", 401, "A valid bearer token is needed",
    "Tokens are configured and the request carries no token, not a Bearer token, or a "
    "token that is not valid. The WWW-Authenticate header says which.",
    "Send 'Authorization: Bearer TOKEN' with the token of VM_OPERATOR_TOKEN (or "
    "VM_OPERATOR_READ_TOKEN for reads).",
)

FORBIDDEN = ProblemType(
    "forbidden", 403, "The token's roles do not allow this",
    "The route needs a role the token does not have: the read-only token "
    "(VM_OPERATOR_READ_TOKEN) may only read; a named token of the tokens file may do what its "
    "roles say (read, write, connect, admin), and only admin may act on another token's "
    "operation. The detail names the role needed.",
    "Use the full-access token (VM_OPERATOR_TOKEN), or a named token with the role the detail "
    "names (vm-operator token new).",
)

VM_FORBIDDEN = ProblemType(
    "vm-forbidden", 403, "The token may not touch this VM",
    "The token of the tokens file is limited to VMs whose names match its patterns (vms), "
    "and this VM is not one of them, or the change is not about one of its VMs (pulling or "
    "deleting an image).",
    "Use a token whose vms patterns match the VM, or one without patterns.",
)

HOST_NOT_ALLOWED = ProblemType(
    "host-not-allowed", 403, "Host not allowed",
    "Without tokens, the Host header must name an IP address, a loopback name or a host "
    "in VM_OPERATOR_ALLOWED_HOSTS; any other name may be DNS rebinding by a web page.",
    "Use the operator's IP address or localhost, add the name to "
    "VM_OPERATOR_ALLOWED_HOSTS, or configure tokens.",
)

CROSS_SITE = ProblemType(
    "cross-site", 403, "Cross-site request refused",
    "Without tokens, a change requested by a browser on another site (a foreign Origin or "
    "Sec-Fetch-Site: cross-site) is refused, so a web page cannot start or stop VMs.",
    "Call the API from the same origin, list the origin in VM_OPERATOR_CORS_ORIGINS, or "
    "configure tokens.",
)

NO_ROUTE = ProblemType(
    "no-route", 404, "No such route",
    "No route of the API has this path.",
    "See GET /openapi.json for the routes.",
)

VM_NOT_FOUND = ProblemType(
    "vm-not-found", 404, "No such VM",
    "Tart has no VM (local or OCI) of this name.",
    "List the VMs with GET /vms; names are case-sensitive.",
    raised_by=(core.VmNotFound, tart.TartVmMissing),
)

IMAGE_NOT_FOUND = ProblemType(
    "image-not-found", 404, "No such OCI image",
    "The OCI image is not in Tart's cache, or its registry does not know it (Tart: "
    "manifest unknown).",
    "Check the reference (GET /images lists the cache); a private registry may need "
    "credentials on the Tart host.",
    raised_by=(core.ImageNotFound, tart.TartImageMissing),
)

OPERATION_NOT_FOUND = ProblemType(
    "operation-not-found", 404, "No such operation",
    "The operator has no operation of this id: it never existed, or it left the bounded "
    "history of finished operations.",
    "List the operations with GET /operations.",
    raised_by=(core.OperationMissing,),
)

NO_LOGS = ProblemType(
    "no-logs", 404, "No logs",
    "The operator has never started this VM, so it has no output of a tart run to show.",
    "Start the VM through the API (POST /vms/NAME/start) first.",
    raised_by=(core.NoLogs,),
)

UNKNOWN_PROBLEM = ProblemType(
    "unknown-problem", 404, "No such problem type",
    "This operator has no problem type of this name.",
    "See GET /problems for the problem types.",
)

METHOD_NOT_ALLOWED = ProblemType(
    "method-not-allowed", 405, "Method not allowed",
    "The path exists but does not take this method. The Allow header lists the methods "
    "it takes.",
    "Use one of the methods in the Allow header.",
)

ALREADY_RUNNING = ProblemType(
    "already-running", 409, "The VM is already running",
    "Tart refused to start the VM because it already runs, started outside this operator.",
    "Nothing to do if it should run; stop it first to restart it.",
    raised_by=(core.AlreadyRunning, tart.TartAlreadyRunning),
)

NOT_RUNNING = ProblemType(
    "not-running", 409, "The VM is not running",
    "The operation needs a running VM (a suspend, for one), and Tart says it is not running.",
    "Start the VM first (POST /vms/NAME/start).",
    raised_by=(core.NotRunning, tart.TartNotRunning),
)

GUEST_AGENT_UNREACHABLE = ProblemType(
    "guest-agent-unreachable", 409, "The Tart Guest Agent does not answer",
    "tart exec could not reach the Tart Guest Agent inside the VM over its control socket: "
    "the image has no agent (Cirrus Labs' -vanilla images, for one) or the guest has not "
    "booted far enough to run it. The detail is Tart's message.",
    "Wait until the VM is ready and retry; use an image that ships the Tart Guest Agent "
    "(Cirrus Labs' non-vanilla images do), or install it in the guest.",
    raised_by=(tart.TartGuestAgentUnreachable,),
)

NOT_SUSPENDABLE = ProblemType(
    "not-suspendable", 409, "The VM was not started suspendable",
    "A VM can be suspended only when its tart run was started with --suspendable; this "
    "one was not, or it runs without it.",
    "Stop the VM, start it with POST /vms/NAME/start?suspendable=true, then suspend it.",
    raised_by=(core.NotSuspendable, tart.TartNotSuspendable),
)

SUSPEND_UNSUPPORTED = ProblemType(
    "suspend-unsupported", 409, "Tart cannot suspend this VM",
    "Tart suspends only macOS guests; a suspendable start or a suspend of a Linux guest is "
    "refused by Tart.",
    "Stop the VM instead (POST /vms/NAME/stop).",
    raised_by=(tart.TartSuspendUnsupported,),
)

VM_STARTING = ProblemType(
    "vm-starting", 409, "The VM is still starting",
    "A tart run the operator launched for the VM is alive, but Tart did not list the VM "
    "running within the stop's timeout (a start that timed out): tart stop would find "
    "nothing to stop yet.",
    "Retry the stop once GET /vms/NAME says running, or with a longer ?timeout=; see GET "
    "/vms/NAME/logs.",
    raised_by=(core.VmStarting,),
)

VM_LIMIT = ProblemType(
    "vm-limit", 409, "Too many VMs are running",
    "Starting this VM would exceed the number of macOS VMs that may run at once (Apple's "
    "licence allows two; VM_OPERATOR_MAX_RUNNING), or Tart itself refused for the same "
    "reason. The detail says how many run, not which (GET /vms lists those the token may "
    "see).",
    "Stop or suspend another macOS VM first.",
    raised_by=(Raised(core.VmLimit, members=lambda e: {"limit": e.limit}),
               tart.TartVmLimit),
)

NO_IP = ProblemType(
    "no-ip", 409, "The VM has no IP address",
    "Tart found no IP address for the VM: it is not running, or has not obtained one yet.",
    "Start the VM, or ask again with ?wait=SECONDS to let it boot.",
    raised_by=(tart.TartNoIp,),
)

OCI_IMAGE = ProblemType(
    "oci-image", 409, "Tart runs only local VMs",
    "The name is an OCI image in Tart's cache; Tart cannot run or change it directly, and "
    "it leaves the cache through DELETE /images/{ref}, not as a VM.",
    "Clone it to a local VM (tart clone IMAGE NEW-NAME) and use that VM; remove it with "
    "DELETE /images/REF.",
    raised_by=(core.OciImage,),
)

VM_EXISTS = ProblemType(
    "vm-exists", 409, "The VM exists already",
    "A VM of this name exists, or an operation is creating it. Tart's clone would silently "
    "replace it, so the operator never asks Tart to.",
    "Choose another name, or delete the VM first (DELETE /vms/NAME).",
    raised_by=(core.VmExists, tart.TartVmExists),
)

VM_RUNNING = ProblemType(
    "vm-running", 409, "The VM is running",
    "The change needs a stopped VM (a delete, a change of its resources), and it runs or "
    "is suspended.",
    "Stop it first (POST /vms/NAME/stop), or delete it with ?force=true.",
    raised_by=(core.VmRunning, tart.TartVmIsRunning),
)

VM_BUSY_OPERATION = ProblemType(
    "vm-busy-operation", 409, "An operation holds the VM",
    "An operation (a create or a delete) is working on this VM or a create is copying it, or "
    "another change of it (a PATCH, a DELETE) is under way; the operation member names the "
    "operation (null for such a change).",
    "Wait for the operation to finish (GET /operations/ID), or cancel it "
    "(POST /operations/ID/cancel).",
    raised_by=(Raised(core.VmHeldByOperation,
                      members=lambda e: {"operation": e.operation}),),
)

OPERATION_FINISHED = ProblemType(
    "operation-finished", 409, "The operation has finished",
    "The operation has finished (succeeded, failed or cancelled): there is nothing left "
    "to cancel.",
    "Read its outcome with GET /operations/ID.",
    raised_by=(Raised(core.OperationFinished, members=lambda e: {"state": e.state}),),
)

NO_CONFIG = ProblemType(
    "no-config", 409, "No declarative file is configured",
    "POST /config/reload applies the operator's declarative file, and it was started "
    "without one (--config, VM_OPERATOR_CONFIG).",
    "Start the operator with --config FILE (see examples/vms.toml).",
    raised_by=(core.NoConfigFile,),
)

LENGTH_REQUIRED = ProblemType(
    "length-required", 411, "Length required",
    "The request has a chunked body (Transfer-Encoding); a body must come with a "
    "Content-Length.",
    "Send no body, or a JSON body with a Content-Length where a route takes one.",
)

BODY_TOO_LARGE = ProblemType(
    "body-too-large", 413, "Content too large",
    "The request's body is larger than the route takes (1 KiB where a route takes no body, "
    "64 KiB for a JSON body); it was not read.",
    "Send no body where a route takes none (parameters go in the query string); keep a JSON "
    "body under 64 KiB.",
)

URI_TOO_LONG = ProblemType(
    "uri-too-long", 414, "Request line too long",
    "The request line is longer than 8 KiB.",
    "Send a shorter request; VM names have at most 255 characters.",
)

UNSUPPORTED_MEDIA_TYPE = ProblemType(
    "unsupported-media-type", 415, "Unsupported media type",
    "A change was sent with a Content-Type the route does not take: a form, multipart or "
    "plain-text body (as a cross-site form of a web page would send), or any type other than "
    "those its requestBody lists. The detail names the ones it takes.",
    "Send the Content-Type the detail names (application/json; PATCH /vms/NAME also takes "
    "application/merge-patch+json), or no body where the route takes none.",
)

INVALID_RESOURCES = ProblemType(
    "invalid-resources", 422, "Tart refused the resources",
    "Tart refused the VM's new resources: fewer CPUs or less memory than the image's "
    "minimum, or a disk smaller than it is (a disk can only grow). The detail is Tart's "
    "message.",
    "Ask for at least the minimum the message names; grow disks only.",
    raised_by=(core.InvalidResources, tart.TartInvalidResources),
)

CONFIG_REFUSED = ProblemType(
    "config-refused", 422, "The declarative file is refused",
    "The declarative file (--config) cannot be read, is not valid TOML, or holds an unknown "
    "key or a bad value; line and key say where. It was refused whole: nothing was "
    "changed, the previous desired state stays in force.",
    "Fix the file at the line and key named (vm-operator plan FILE checks it), then reload "
    "again (POST /config/reload or SIGHUP).",
    raised_by=(Raised(core.ConfigRefused,
                      members=lambda e: {"line": e.line, "key": e.key}),),
)

UPGRADE_REQUIRED = ProblemType(
    "upgrade-required", 426, "A WebSocket is required",
    "The route is a WebSocket (GET /vms/{name}/port-forward): the request lacks the opening "
    "handshake's Upgrade, Connection or Sec-WebSocket-Version: 13.",
    "Use a WebSocket client (vm-operator proxy or port-forward, or any RFC 6455 client).",
)

TOO_MANY_FAILURES = ProblemType(
    "too-many-failures", 429, "Too many failed authentications",
    f"This client address presented {FAILURES} invalid tokens within {WINDOW:g} seconds: "
    "its requests that need a token are refused until the oldest of those failures is "
    f"{WINDOW:g} seconds old. Other addresses are served as before.",
    "Wait the Retry-After header's seconds, and send a valid token.",
)

HEADERS_TOO_LARGE = ProblemType(
    "headers-too-large", 431, "Request header fields too large",
    "The request head (the request line and every header line) is larger than 32 KiB, or "
    "the request has more than 100 header lines.",
    "Send fewer and shorter headers (32 KiB in all).",
)
