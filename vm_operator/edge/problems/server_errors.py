"""The server errors (5xx): the operator, Tart, the SSH link to the Tart host or a bound on
work failed the request; the client may retry, or whoever runs the operator must act.

Each entry is bound to its slug in capitals (``TART_FAILED`` is ``tart-failed``); the catalogue
(``problems/__init__.py``) collects every ``ProblemType`` of this module, in this order.
"""

from __future__ import annotations

import vm_operator.core.errors as core
import vm_operator.tart.errors as tart
from vm_operator.edge.problems.entry import ProblemType, Raised, retry_after

INTERNAL_ERROR = ProblemType(
    "internal-error", 500, "Internal error",
    "The operator failed on this request: a bug. Its standard error has the traceback; "
    "nothing of it is shown to the client.",
    "Report it with the operator's log; retrying may work.",
)

TART_FAILED = ProblemType(
    "tart-failed", 502, "Tart failed",
    "Tart ran and refused with a message the operator does not classify; the detail is "
    "Tart's own message and tart_exit_code its exit code.",
    "Read Tart's message; GET /vms/NAME/logs shows the output of the last tart run.",
    raised_by=(core.RunEnded, tart.TartError,
               # every Tart refusal (a subclass, whichever entry answers it) adds its exit code
               Raised(tart.TartCommandError,
                      members=lambda e: {"tart_exit_code": e.exit_code})),
)

TART_BAD_OUTPUT = ProblemType(
    "tart-bad-output", 502, "Tart printed something unexpected",
    "Tart exited successfully but printed something that is not what Tart prints (the "
    "binary may not be Tart, or a version the operator does not know).",
    "Check that VM_OPERATOR_TART points at Tart, and its version.",
    raised_by=(tart.TartBadOutput,),
)

SSH_HOST_KEY = ProblemType(
    "ssh-host-key", 502, "The Tart host's SSH host key does not match",
    "Over SSH (VM_OPERATOR_TART_SSH), the Tart host presented a host key other than the "
    "pinned one: it was reinstalled, or something is in between.",
    "Check the host's fingerprint and pin it again in VM_OPERATOR_SSH_KNOWN_HOSTS.",
    raised_by=(tart.SshHostKeyMismatch,),
)

SSH_AUTH_FAILED = ProblemType(
    "ssh-auth-failed", 502, "The Tart host refused the SSH key",
    "Over SSH, the Tart host refused the operator's key.",
    "Add the operator's public key to that user's ~/.ssh/authorized_keys and check "
    "VM_OPERATOR_SSH_KEY.",
    raised_by=(tart.SshAuthFailed,),
)

SSH_FAILED = ProblemType(
    "ssh-failed", 502, "SSH to the Tart host failed",
    "Over SSH, ssh itself failed for a reason the detail gives.",
    "Read the detail; try the same ssh command by hand.",
    raised_by=(tart.SshFailed,),
)

GUEST_REFUSED = ProblemType(
    "guest-refused", 502, "The guest refused the connection",
    "A tunnel (GET /vms/{name}/port-forward) connects to the VM's own address on the port "
    "asked for, from where Tart runs: nothing in the guest accepted it (no such service, or "
    "it is not up yet, or macOS Local Network Privacy refused the operator).",
    "Check that the service listens on that port in the guest; for a fresh VM wait until "
    "it is ready (GET /vms/{name}?wait=ready). See README, Reaching a guest.",
    raised_by=(tart.GuestRefused,),
)

NOT_READY = ProblemType(
    "not-ready", 503, "Not ready",
    "tart list fails, so the operator cannot serve VMs; the detail says why.",
    "Fix what the detail names (Tart missing, hanging, or unreachable); /ready turns 200 "
    "by itself.",
    raised_by=(core.NotReady,),
)

TART_UNAVAILABLE = ProblemType(
    "tart-unavailable", 503, "Tart is not available",
    "The Tart binary is missing or cannot be executed (locally, or on the SSH host).",
    "Install Tart or point VM_OPERATOR_TART / --tart at it; in a container, mount it at "
    "/app/bin/tart-binary.",
    raised_by=(tart.TartUnavailable, tart.RemoteTartUnavailable),
)

TART_HOST_UNREACHABLE = ProblemType(
    "tart-host-unreachable", 503, "The Tart host cannot be reached",
    "Over SSH, the Tart host did not answer: it is down, Remote Login is off, or the "
    "network is in the way.",
    "Check that the host is up and Remote Login is on; retry.",
    raised_by=(tart.TartHostUnreachable,),
)

SSH_UNAVAILABLE = ProblemType(
    "ssh-unavailable", 503, "The ssh client is not available",
    "VM_OPERATOR_TART_SSH is set but the ssh client cannot be run here.",
    "Install OpenSSH's client (Debian: apt-get install openssh-client).",
    raised_by=(tart.SshUnavailable,),
)

STATE_DIR_UNWRITABLE = ProblemType(
    "state-dir-unwritable", 503, "The state directory cannot be written",
    "The operator cannot write its state directory (run logs and last_run records), so it "
    "cannot start VMs; the detail names the directory.",
    "Make the directory writable by the operator's user, or point --state-dir / "
    "VM_OPERATOR_STATE_DIR elsewhere.",
    raised_by=(Raised(core.StateDirUnwritable,
                      members=lambda e: {"state_dir": e.path}),),
)

VM_BUSY = ProblemType(
    "vm-busy", 503, "Too many pending changes to this VM",
    "More than 16 start, stop or suspend requests for this VM are already waiting.",
    "Retry after the Retry-After header's seconds.",
    raised_by=(Raised(core.VmBusy, headers=retry_after),),
)

QUEUE_FULL = ProblemType(
    "queue-full", 503, "Too many operations are waiting",
    "Operations wait while ones they conflict with run (one per VM name and per image, a "
    "bounded number of downloads and of operations at once), and the queue of waiting ones "
    "is full.",
    "Retry after the Retry-After header's seconds; GET /operations shows what waits.",
    raised_by=(Raised(core.OperationsFull, headers=retry_after),),
)

SHUTTING_DOWN = ProblemType(
    "shutting-down", 503, "The operator is shutting down",
    "The operator is stopping and takes no new operations.",
    "Retry once it has restarted.",
    raised_by=(core.OperationsClosed,),
)

INTERRUPTED = ProblemType(
    "interrupted", 503, "Interrupted by a restart",
    "The operator stopped while this operation was queued or running; the restarted "
    "operator marked it failed and removed what it had left half done (a VM whose create "
    "had not finished).",
    "Submit the operation again.",
)

OVERLOADED = ProblemType(
    "overloaded", 503, "Too many connections",
    "The operator serves at most VM_OPERATOR_MAX_CONNECTIONS connections at once; this one "
    "was answered at once instead of waiting.",
    "Retry after the Retry-After header's seconds; raise the limit if this is normal load.",
)

TOO_MANY_STREAMS = ProblemType(
    "too-many-streams", 503, "Too many event streams",
    "The operator serves at most VM_OPERATOR_EVENTS_MAX_STREAMS event streams (GET /events) "
    "at once, each holding a connection; this one was refused at once.",
    "Retry after the Retry-After header's seconds; share one stream between watchers, or "
    "raise the limit (below VM_OPERATOR_MAX_CONNECTIONS).",
)

TOO_MANY_IP_WAITS = ProblemType(
    "too-many-ip-waits", 503, "Too many waits for IP addresses",
    "GET /vms/{name}/ip runs one tart ip per VM, shared by every request for that VM, and "
    "only so many at once (the detail says how many): this request needed one more.",
    "Retry after the Retry-After header's seconds.",
    raised_by=(Raised(core.IpWaitersFull, headers=retry_after),),
)

TOO_MANY_TUNNELS = ProblemType(
    "too-many-tunnels", 503, "Too many tunnels",
    "The operator carries at most 64 tunnels (GET /vms/{name}/port-forward) at once, for all "
    "VMs together; this one was refused before the upgrade.",
    "Retry after the Retry-After header's seconds, once another tunnel has ended.",
    raised_by=(Raised(core.TunnelsFull, headers=retry_after),),
)

TART_TIMEOUT = ProblemType(
    "tart-timeout", 504, "Tart did not answer in time",
    "A Tart command outlived its timeout (VM_OPERATOR_TART_TIMEOUT); it and everything it "
    "started were killed.",
    "Retry; if Tart is slow on this host, raise VM_OPERATOR_TART_TIMEOUT.",
    raised_by=(tart.TartTimeout,),
)

EXEC_TIMEOUT = ProblemType(
    "exec-timeout", 504, "The command did not end in time",
    "A command run in the guest (POST /vms/{name}/exec) outlived the request's timeout: "
    "tart exec and everything it started were killed; its output is lost.",
    "Give a longer timeout (up to 3600 s), or run the command in the background in the "
    "guest and poll for its result.",
    raised_by=(tart.GuestTimeout,),
)

START_TIMEOUT = ProblemType(
    "start-timeout", 504, "The VM did not start in time",
    "tart run did not report the VM running within VM_OPERATOR_START_TIMEOUT; it was left "
    "running.",
    "Watch GET /vms/NAME and GET /vms/NAME/logs; raise VM_OPERATOR_START_TIMEOUT for slow "
    "VMs.",
    raised_by=(core.StartTimeout,),
)

READY_TIMEOUT = ProblemType(
    "ready-timeout", 504, "The VM did not become ready in time",
    "POST /vms/NAME/start?wait=ready waited its timeout for the VM to be ready, and it was "
    "not: waiting_for says what was missing, ip (Tart reported no IP address; ip is null) "
    "or connection (no TCP connection to ip:port succeeded). The VM was left running.",
    "Ask again with a longer timeout, or watch GET /vms/NAME (ready, ip) and its logs; "
    "check that the guest runs sshd (or whatever listens on VM_OPERATOR_READY_PORT) and "
    "that the port is the one it listens on.",
    raised_by=(Raised(core.ReadyTimeout, members=lambda e: {
        "waiting_for": e.waiting_for, "ip": e.ip, "port": e.port}),),
)

HTTP_VERSION_NOT_SUPPORTED = ProblemType(
    "http-version-not-supported", 505, "HTTP version not supported",
    "The request is not HTTP/1.0 or HTTP/1.1.",
    "Speak HTTP/1.1.",
)
