"""Into a guest through the operator: ``proxy`` (stdin/stdout to a guest's port, for ssh's
ProxyCommand), ``ssh`` (the system ssh with that ProxyCommand) and ``port-forward`` (a
loopback listener, one tunnel per connection). Each tunnel is a WebSocket to
``GET /vms/{name}/port-forward?port=N`` (``Client.open_tunnel``); no SSH of ours: the user's
own OpenSSH, with its keys, known hosts, scp and rsync.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys
import threading
from collections.abc import Callable

from vm_operator.client.commands import EXIT_USAGE, Command, vm_name
from vm_operator.client.console import Console
from vm_operator.client.http import Client, ClientError, TimedOut, Unreachable
from vm_operator.client.websocket import WebSocket

READ_SIZE = 64 * 1024
DEFAULT_USER = "admin"  # as Cirrus Labs' images


def port_number(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (1-65535): {text!r}")
    return int(text)


def forward_spec(text: str) -> tuple[int, int]:
    """``[LOCAL:]REMOTE`` as (local, remote): REMOTE alone listens on the same number;
    ``:REMOTE`` or ``0:REMOTE`` on any free port."""
    local, colon, remote = text.rpartition(":")
    try:
        remote_port = port_number(remote)
        if not colon:
            return remote_port, remote_port
        if local in ("", "0"):
            return 0, remote_port
        return port_number(local), remote_port
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected [LOCAL:]REMOTE port numbers, not {text!r}") from None


def carry(ws: WebSocket, read_in: Callable[[], bytes], write_out: Callable[[bytes], None]) -> None:
    """Carry a local stream over the tunnel both ways until either end closes it."""
    def upstream() -> None:
        try:
            while data := read_in():
                ws.send(data)
        except OSError:
            pass
        ws.close()

    threading.Thread(target=upstream, name="tunnel-up", daemon=True).start()
    try:
        while (data := ws.recv()) is not None:
            write_out(data)
    except OSError:
        pass
    finally:
        ws.close()
        ws.shutdown()


def _write_all(fd: int) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return write


def _proxy(client: Client, args: argparse.Namespace, console: Console) -> int:
    ws = client.open_tunnel(args.name, args.port)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    carry(ws, lambda: os.read(stdin, READ_SIZE), _write_all(stdout))
    return 0


def _proxy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", type=vm_name, help="the VM's name")
    parser.add_argument("port", metavar="PORT", type=port_number, help="the guest's TCP port")


def proxy_command(client: Client, args: argparse.Namespace, port: int) -> str:
    """The ProxyCommand line ssh gives its shell: this client's ``proxy``, with the same URL
    and token file (a token in the environment is inherited), every word quoted and ``%``
    escaped from ssh's own expansion."""
    words = [sys.executable, "-m", "vm_operator", "--url", client.base_url]
    if args.token_file is not None:
        words += ["--token-file", os.path.abspath(args.token_file)]
    words += ["proxy", args.name, str(port)]
    return " ".join(shlex.quote(word) for word in words).replace("%", "%%")


def split_ssh_args(args: argparse.Namespace, rest: list[str]) -> list[str]:
    """What follows NAME: ``--user U`` and ``--port P`` (ours), then ``--`` and ssh's own
    arguments. A usage error (``argparse.ArgumentTypeError``) for anything else before ``--``."""
    at = 0
    while at < len(rest) and rest[at] != "--":
        option, has_value, value = rest[at].partition("=")
        if option not in ("--user", "--port"):
            raise argparse.ArgumentTypeError(
                f"unexpected {rest[at]!r}: ssh's own arguments go after --")
        if not has_value:
            if at + 1 >= len(rest):
                raise argparse.ArgumentTypeError(f"{option} needs a value")
            at, value = at + 1, rest[at + 1]
        if option == "--user":
            args.user = value
        else:
            args.port = port_number(value)
        at += 1
    return rest[at + 1:]


def ssh_argv(client: Client, args: argparse.Namespace) -> list[str]:
    extra = split_ssh_args(args, list(args.ssh_args))
    return ["ssh", "-o", f"ProxyCommand={proxy_command(client, args, args.port)}",
            f"{args.user}@{args.name}", *extra]


def _ssh(client: Client, args: argparse.Namespace, console: Console) -> int:
    try:
        argv = ssh_argv(client, args)
    except argparse.ArgumentTypeError as exc:
        console.note(f"ssh: {exc}")
        return EXIT_USAGE
    console.out.flush()
    try:
        os.execvp(argv[0], argv)  # the system ssh replaces this process: no shell, no wrapper
    except OSError as exc:
        console.note(f"cannot run ssh: {exc.strerror or exc}")
    return 127


def _ssh_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", type=vm_name, help="the VM's name")
    parser.add_argument("--user", default=DEFAULT_USER,
                        help=f"the guest's user (default {DEFAULT_USER})")
    parser.add_argument("--port", type=port_number, default=22,
                        help="the guest's SSH port (default 22)")
    parser.add_argument("ssh_args", nargs=argparse.REMAINDER, metavar="-- SSH_ARGS",
                        help="given to ssh after the destination (options, a command)")


def _serve_one(client: Client, args: argparse.Namespace, console: Console,
               conn: socket.socket) -> None:
    with conn:
        try:
            ws = client.open_tunnel(args.name, args.remote)
        except (ClientError, Unreachable, TimedOut) as exc:
            said = f"{exc.status} {exc.problem.slug}: {exc.problem.detail}" if isinstance(
                exc, ClientError) else str(exc)
            console.note(f"a connection to {args.name}:{args.remote} was refused: {said}")
            return
        carry(ws, lambda: conn.recv(READ_SIZE), conn.sendall)


def _port_forward(client: Client, args: argparse.Namespace, console: Console) -> int:
    local, remote = args.ports
    args.remote = remote
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", local))
        listener.listen(64)
        console.line(f"forwarding 127.0.0.1:{listener.getsockname()[1]} -> "
                     f"{args.name}:{remote} (Ctrl-C ends)")
        console.out.flush()
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=_serve_one, args=(client, args, console, conn),
                             name="port-forward", daemon=True).start()


def _port_forward_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", type=vm_name, help="the VM's name")
    parser.add_argument("ports", metavar="[LOCAL:]REMOTE", type=forward_spec,
                        help="the guest's port REMOTE, on 127.0.0.1:LOCAL here (the same "
                        "number when LOCAL is left out; :REMOTE for any free port)")


TABLE: tuple[Command, ...] = (
    Command("proxy", "connect stdin and stdout to a guest's TCP port (for ssh -o "
            "ProxyCommand='vm-operator proxy %h 22')", _proxy, _proxy_arguments, json=False),
    Command("ssh", "run the system ssh to a VM through the operator (--user, default admin; "
            "-- SSH_ARGS)", _ssh, _ssh_arguments, json=False),
    Command("port-forward", "listen on 127.0.0.1:LOCAL and carry each connection to a "
            "guest's port", _port_forward, _port_forward_arguments, json=False),
)
