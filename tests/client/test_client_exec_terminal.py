"""``vm-operator exec -t NAME -- COMMAND…`` under a pseudo-terminal (python's ``pty``): the client
as a real subprocess against a real operator driving the simulator, over the exec WebSocket.

The command runs on a terminal in the guest; keys typed reach it; its exit code is the
client's; the client's terminal is raw while it runs and restored after.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import termios

from conftest import Operator
from support import CLIENT, REPO_ROOT, client_env, wait_for

VM = "ubuntu-runner"


class Screen:
    """What the client wrote to its terminal so far (read from the pty's master side)."""

    def __init__(self, master: int) -> None:
        self.master, self.text = master, b""

    def shows(self, expected: bytes) -> bool:
        if select.select([self.master], [], [], 0.1)[0]:
            try:
                self.text += os.read(self.master, 4096)
            except OSError:
                pass
        return expected in self.text


def test_exec_t_runs_on_a_terminal_takes_keys_and_passes_the_exit_code(operator: Operator) -> None:
    assert operator.json("POST", f"/vms/{VM}/start")[0] == 202
    master, slave = pty.openpty()
    cooked = termios.tcgetattr(slave)
    script = "test -t 0 && echo on-a-terminal; read line; echo got:$line; exit 5"
    proc = subprocess.Popen([*CLIENT, "--url", operator.url, "exec", "-t", VM, "--",
                             "sh", "-c", script], stdin=slave, stdout=slave, stderr=slave,
                            cwd=REPO_ROOT, env=client_env(), start_new_session=True)
    try:
        screen = Screen(master)
        wait_for(lambda: screen.shows(b"on-a-terminal"), message="the command's first line")
        assert termios.tcgetattr(slave) != cooked, "the client's terminal is raw meanwhile"
        os.write(master, b"hello\r")
        wait_for(lambda: screen.shows(b"got:hello"), message="the typed line reached it")
        assert proc.wait(timeout=60) == 5
        assert termios.tcgetattr(slave) == cooked, "the client restored its terminal"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
