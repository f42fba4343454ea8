"""An interactive command in a VM's guest: ``GET /vms/{name}/exec?command=…``, a WebSocket.

The command is one query parameter, a JSON array of words (``command=["sh","-c","…"]``,
percent-encoded), the same array ``POST /vms/{name}/exec`` takes: never a shell line. The
messages are JSON text frames (``core/exec_session.py``) named as Orchard's: ``stdin``,
``resize`` from the client; ``stdout``, ``stderr``, ``exit`` to it (then a close, 1000).
"""

from __future__ import annotations

import json

from vm_operator.api.app import App
from vm_operator.api.params import NAME
from vm_operator.api.problems import TART_FAILURES
from vm_operator.api.vm_exec import Words
from vm_operator.core.errors import NotRunning, OciImage, VmNotFound
from vm_operator.core.exec_session import MAX_SIZE, SessionRequest
from vm_operator.edge.authz import Role
from vm_operator.edge.params import Boolean, Int
from vm_operator.edge.problems.client_errors import UPGRADE_REQUIRED, URI_TOO_LONG
from vm_operator.edge.responses import Response, upgraded
from vm_operator.edge.routing import OptionalQuery, Query, Request, Route, switching_protocols
from vm_operator.tart.errors import TartNotRunning, TartVmMissing


class WordsQuery(Words):
    """The command as a query value: the JSON text of the array ``Words`` checks (its schema,
    declared as the parameter's ``application/json`` content)."""

    media_type = "application/json"

    def from_text(self, key: str, text: str) -> tuple[str, ...]:
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError(f"{key} must be a JSON array of strings, e.g. "
                             '["sh","-c","echo hi"]') from None
        return self.from_json(key, value)


COMMAND = OptionalQuery("command", WordsQuery(), "The program and its arguments, a JSON array "
                        "of words (no shell: wrap in [\"sh\", \"-c\", …] for one)", required=True)
INTERACTIVE = Query("interactive", Boolean(), True,
                    "Whether the command reads the client's stdin messages (tart exec -i)")
TTY = Query("tty", Boolean(), False, "Whether the command runs on a terminal (tart exec -t): "
            "stdout and stderr come as one stdout, resize messages set its size")
ROWS = Query("rows", Int(1, MAX_SIZE), 24, "The terminal's rows (with tty=true)")
COLS = Query("cols", Int(1, MAX_SIZE), 80, "The terminal's columns (with tty=true)")


def exec_socket(app: App, req: Request) -> Response:
    request = SessionRequest(req.required(COMMAND), req.get(INTERACTIVE), req.get(TTY),
                             req.get(ROWS), req.get(COLS), req.client)
    session = app.service.exec_session(  # its end writes the audit line, with the exit code
        req.get(NAME), request, lambda code: req.audit(101, exit_code=code))
    return upgraded(session)


ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/vms/{name}/exec", exec_socket,
          "A WebSocket (RFC 6455) running a command in the running VM's guest (tart exec, -i "
          "and -t as asked), for interactive use. JSON text messages, named as Orchard's: the "
          "client sends {\"type\":\"stdin\",\"data\":BASE64,\"eof\":BOOL} and "
          "{\"type\":\"resize\",\"rows\":R,\"cols\":C}; the operator sends "
          "{\"type\":\"stdout\"|\"stderr\",\"data\":BASE64} as output comes, then "
          "{\"type\":\"exit\",\"code\":N} and a close (1000). Closing the WebSocket kills the "
          "command. Needs the connect role. Refused before the upgrade: 404, 409 (not running, "
          "an OCI image), 400 (the command)", "execInVmInteractive",
          path=(NAME,), query=(COMMAND, INTERACTIVE, TTY, ROWS, COLS), upgrade=True,
          role=Role.CONNECT,
          ok=switching_protocols("the exec"),
          problems=(VmNotFound, OciImage, NotRunning, TartNotRunning, TartVmMissing,
                    UPGRADE_REQUIRED, URI_TOO_LONG, *TART_FAILURES)),
)
