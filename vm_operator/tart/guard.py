"""``python guard.py TART ARGS...``: run one long Tart call (a clone, a pull) and kill it when
the operator goes away.

The operator starts this (by its path, with the operator's own interpreter) in a session of its
own, with a pipe as its stdin that the operator holds open and never writes. Tart runs as its
child in the same process group, its stdout and stderr the operator's pipes. When the stdin
ends while Tart still runs, the operator has died (even by SIGKILL: the kernel closes its end):
the guard kills its process group, Tart with it, so that no pull or clone outlives the operator
and finishes a VM that nobody asked for any more. It exits as Tart did (killed by the same
signal, or with its exit code). Standard library only, imports nothing of the operator.
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


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: guard.py TART ARGS...", file=sys.stderr)
        return 64
    try:
        tart = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"cannot run {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return NO_TART
    threading.Thread(target=_watch_operator, daemon=True).start()
    code = tart.wait()
    if code < 0:  # killed by a signal: end the same way, so the operator sees which
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
