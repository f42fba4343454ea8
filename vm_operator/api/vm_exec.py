"""Run a command in a VM's guest (POST /vms/{name}/exec): ``tart exec``, its answer once it
has ended. The command is an array of words, never a shell line; its output comes back capped
(``guest_exec.OUTPUT_CAP`` bytes of each of stdout and stderr)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypedDict

from vm_operator.api.app import App
from vm_operator.api.params import NAME
from vm_operator.api.problems import TART_FAILURES
from vm_operator.core.errors import NotRunning, OciImage, VmNotFound
from vm_operator.core.guest import ExecRequest
from vm_operator.edge.body import Body, Field
from vm_operator.edge.params import Int, ParamType, Schema, Verbatim
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route, Success
from vm_operator.tart.errors import (
    GuestTimeout,
    TartGuestAgentUnreachable,
    TartNotRunning,
    TartVmMissing,
)
from vm_operator.tart.guest_exec import OUTPUT_CAP
from vm_operator.tart.records import ExecResult

MAX_WORDS = 4096  # words of a command
MAX_STDIN = 1 << 20  # the body's bound: the stdin it can carry (1 MiB, JSON-escaped)
DEFAULT_TIMEOUT = 300


class Words(ParamType[tuple[str, ...]]):
    """A command: a non-empty array of strings, none holding NUL (no argument can), the first
    naming a program (not empty, not an option)."""

    def schema(self) -> Schema:
        return {"type": "array", "minItems": 1, "maxItems": MAX_WORDS,
                "prefixItems": [{"type": "string", "pattern": "^[^\\u0000-][^\\u0000]*$"}],
                "items": {"type": "string", "pattern": "^[^\\u0000]*$"}}

    def from_text(self, key: str, text: str) -> tuple[str, ...]:
        raise ValueError(f"{key} is a JSON array")

    def from_json(self, key: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or len(value) > MAX_WORDS:
            raise ValueError(f"{key} must be an array of 1 to {MAX_WORDS} strings: the program, "
                             "then its arguments (no shell: wrap in [\"sh\", \"-c\", …] for one)")
        if not all(isinstance(word, str) for word in value):
            raise ValueError(f"{key} must hold strings only")
        if any("\0" in word for word in value):
            raise ValueError(f"{key} cannot hold a NUL character")
        if not value[0] or value[0].startswith("-"):
            raise ValueError(f"{key}[0] must name a program (not empty, not starting with '-')")
        return tuple(value)


STDIN = Verbatim({"type": "string"})


@dataclass(frozen=True)
class ExecCommand:
    command: Annotated[tuple[str, ...], Field(Words(), "The program and its arguments, each word "
                                                       "as it is passed (no shell)")]
    stdin: Annotated[str | None, Field(STDIN, "Text the command reads on its stdin (tart exec "
                                              "-i); without it the command reads nothing")] = None
    timeout: Annotated[int, Field(Int(1, 3600), "Seconds it may take; then tart exec and what "
                                                "it started are killed (504)")] = DEFAULT_TIMEOUT


EXEC = Body(ExecCommand, "The command to run: command is required", limit=MAX_STDIN)

EXEC_RESULT = {
    "type": "object",
    "required": ["exit_code", "stdout", "stderr", "truncated"],
    "properties": {
        "exit_code": {"type": "integer", "description": "The command's exit code (128+N: ended "
                                                        "by signal N)"},
        "stdout": {"type": "string", "description": f"Its stdout: the first {OUTPUT_CAP} bytes, "
                                                    "as UTF-8 (invalid bytes replaced)"},
        "stderr": {"type": "string", "description": f"Its stderr: the first {OUTPUT_CAP} bytes, "
                                                    "as UTF-8 (invalid bytes replaced)"},
        "truncated": {"type": "boolean", "description": "Whether stdout or stderr was cut at "
                                                        "the cap"},
    },
}


class ExecAnswer(TypedDict):
    exit_code: int
    stdout: str
    stderr: str
    truncated: bool


def answer(result: ExecResult) -> ExecAnswer:
    return {"exit_code": result.exit_code,
            "stdout": result.stdout.decode("utf-8", errors="replace"),
            "stderr": result.stderr.decode("utf-8", errors="replace"),
            "truncated": result.truncated}


def exec_in_vm(app: App, req: Request) -> Response:
    body = req.get(EXEC)
    request = ExecRequest(body.command, body.stdin, body.timeout, req.client)
    return json_response(200, answer(app.service.exec(req.get(NAME), request)))


ROUTES: tuple[Route[App], ...] = (
    Route("POST", "/vms/{name}/exec", exec_in_vm,
          "Run a command in the running VM's guest (tart exec, -i when stdin is given) and "
          "answer once it has ended: its exit code, stdout and stderr (each cut at "
          f"{OUTPUT_CAP} bytes)", "execInVm",
          path=(NAME,), body=EXEC, ok=(Success(200, "The command ended", EXEC_RESULT),),
          problems=(VmNotFound, OciImage, NotRunning, TartNotRunning, TartVmMissing,
                    TartGuestAgentUnreachable, GuestTimeout, *TART_FAILURES)),
)
