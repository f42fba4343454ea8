"""``python guard.py [--stdin SIZE] TART ARGS...``: run one long Tart call (a clone, a pull,
an exec) and kill it when the operator goes away.

The operator starts this (by its path, with the operator's own interpreter) in a session of its
own, with a pipe as its stdin that the operator holds open and never writes. Tart runs as its
child in the same process group, its stdout and stderr the operator's pipes. When the stdin
ends while Tart still runs, the operator has died (even by SIGKILL: the kernel closes its end):
the guard kills its process group, Tart with it, so that no pull or clone outlives the operator
and finishes a VM that nobody asked for any more. It exits as Tart did (killed by the same
signal, or with its exit code). With ``--stdin SIZE`` (an exec given stdin) the first SIZE bytes
the operator writes are Tart's stdin, closed after them; the end of the pipe is watched as
before. Standard library only, imports nothing of the operator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

NO_TART = 127


def _watch_operator() -> None:
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os.killpg(0, signal.SIGKILL)  # the operator is gone: Tart and this guard go too


def _feed_then_watch(tart: subprocess.Popen[bytes], size: int) -> None:
    """``--stdin SIZE``: the first SIZE bytes of the stdin are Tart's stdin (then closed), the
    rest is watched as without."""
    assert tart.stdin is not None
    left = size
    try:
        while left > 0:
            chunk = os.read(0, min(65536, left))
            if not chunk:  # the operator went away before it had sent them all
                os.killpg(0, signal.SIGKILL)
            left -= len(chunk)
            try:
                tart.stdin.write(chunk)
                tart.stdin.flush()
            except BrokenPipeError:  # Tart reads no more: the rest is read and dropped
                pass
    finally:
        try:
            tart.stdin.close()
        except BrokenPipeError:
            pass
    _watch_operator()


def main(argv: list[str]) -> int:
    size = None
    if argv[:1] == ["--stdin"] and len(argv) > 1 and argv[1].isdigit():
        size, argv = int(argv[1]), argv[2:]
    if not argv:
        print("usage: guard.py [--stdin SIZE] TART ARGS...", file=sys.stderr)
        return 64
    try:
        tart = subprocess.Popen(argv, stdin=subprocess.DEVNULL if size is None else subprocess.PIPE)
    except OSError as exc:
        print(f"cannot run {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return NO_TART
    if size is None:
        threading.Thread(target=_watch_operator, daemon=True).start()
    else:
        threading.Thread(target=_feed_then_watch, args=(tart, size), daemon=True).start()
    code = tart.wait()
    if code < 0:  # killed by a signal: end the same way, so the operator sees which
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
