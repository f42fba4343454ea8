"""A running exec's signals (tart/exec_stream.py): a terminal's resize is only a SIGWINCH, and
only a kill tells ``on_kill`` (over SSH it kills the command's group on the Mac), once."""

from __future__ import annotations

import os
import signal

from vm_operator.tart.exec_stream import ExecStream

# stands in for tart exec: waits, and says which signals reached it
WAITER = ("import signal, sys, time\n"
          "signal.signal(signal.SIGWINCH, lambda *a: print('winch', flush=True))\n"
          "print('up', flush=True)\n"
          "time.sleep(30)\n")


def started(kills: list[str]) -> ExecStream:
    stream = ExecStream(["python3", "-c", WAITER], dict(os.environ), tty=True,
                        on_kill=lambda: kills.append("kill"))
    seen = b""
    while b"up" not in seen:
        seen += stream.read(stream.stdout_fd)
    return stream


def test_a_resize_signals_the_terminal_and_kills_nothing() -> None:
    kills: list[str] = []
    stream = started(kills)
    try:
        stream.resize(40, 120)
        seen = b""
        while b"winch" not in seen:
            seen += stream.read(stream.stdout_fd)
        assert kills == [] and stream.proc.poll() is None
    finally:
        stream.kill()
        stream.wait()


def test_the_first_kill_of_a_running_exec_tells_on_kill_once() -> None:
    kills: list[str] = []
    stream = started(kills)
    stream.kill()
    stream.kill()
    assert stream.wait() in (-signal.SIGKILL, 128 + signal.SIGKILL)
    stream.kill()
    assert kills == ["kill"]
