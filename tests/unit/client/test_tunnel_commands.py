"""The client's tunnel commands, their pure parts: the port-forward spec, ssh's arguments and
the ProxyCommand line (quoted for ssh's shell, ``%`` escaped from ssh's expansion)."""

from __future__ import annotations

import argparse
import shlex
import sys

import pytest

from vm_operator.client.http import Client
from vm_operator.client.tunnel import forward_spec, proxy_command, ssh_argv


@pytest.mark.parametrize(("text", "ports"), [
    ("22", (22, 22)), ("2222:22", (2222, 22)), (":5900", (0, 5900)), ("0:80", (0, 80)),
])
def test_forward_specs(text: str, ports: tuple[int, int]) -> None:
    assert forward_spec(text) == ports


@pytest.mark.parametrize("text", ["", "0", "70000", "a:22", "22:", "1:2:3", "-1"])
def test_bad_forward_specs(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        forward_spec(text)


def namespace(rest: list[str], name: str = "vm") -> argparse.Namespace:
    return argparse.Namespace(name=name, user="admin", port=22, token_file=None, ssh_args=rest)


CLIENT = Client("http://127.0.0.1:8082", None, 5)


@pytest.mark.parametrize(("rest", "user", "tail"), [
    ([], "admin", []),
    (["--", "uname", "-a"], "admin", ["uname", "-a"]),
    (["--user", "runner", "--", "-v", "ls"], "runner", ["-v", "ls"]),
    (["--user=ci", "--port=2222"], "ci", []),
])
def test_ssh_arguments(rest: list[str], user: str, tail: list[str]) -> None:
    argv = ssh_argv(CLIENT, namespace(rest))
    assert argv[0] == "ssh" and argv[1] == "-o" and argv[2].startswith("ProxyCommand=")
    assert argv[3] == f"{user}@vm" and argv[4:] == tail


@pytest.mark.parametrize("rest", [["uname"], ["--user"], ["--port", "x"]])
def test_ssh_arguments_refused(rest: list[str]) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        ssh_argv(CLIENT, namespace(rest))


def test_the_proxy_command_is_quoted_and_escapes_percent() -> None:
    args = namespace([], name="we'ird%h")
    line = proxy_command(CLIENT, args, 2222)
    words = shlex.split(line.replace("%%", "%"))
    assert words == [sys.executable, "-m", "vm_operator", "--url", "http://127.0.0.1:8082",
                     "proxy", "we'ird%h", "2222"]
    assert "%h" not in line.replace("%%", "")
