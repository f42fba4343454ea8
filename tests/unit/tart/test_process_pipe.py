"""A tunnel's ``ssh -W`` process (``ProcessPipe``): closing it kills its process group and reaps
it, and no close, however many and from however many threads, signals the group once the
process was reaped (its id may belong to another process by then)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator

import pytest

from vm_operator.tart.tunnel import ProcessPipe, open_process


@pytest.fixture
def pipe() -> Iterator[ProcessPipe]:
    opened = open_process(["sleep", "60"], dict(os.environ))
    try:
        yield opened
    finally:
        if opened.proc.poll() is None:
            opened.proc.kill()
            opened.proc.wait()


def record_signals(monkeypatch: pytest.MonkeyPatch, proc: subprocess.Popen[bytes]) -> list[bool]:
    """Each ``killpg`` of the process's group: whether it had been reaped already."""
    real, sent = os.killpg, []

    def killpg(pgid: int, sig: int) -> None:
        if pgid == proc.pid:
            sent.append(proc.returncode is not None)
        real(pgid, sig)

    monkeypatch.setattr(os, "killpg", killpg)
    return sent


def test_closing_kills_and_reaps_the_process(pipe: ProcessPipe) -> None:
    pipe.close()
    assert pipe.proc.returncode is not None
    assert pipe.recv(10) == b""


def test_a_second_close_signals_no_reaped_group(pipe: ProcessPipe,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    sent = record_signals(monkeypatch, pipe.proc)
    pipe.close()
    pipe.close()
    assert sent == [False]


def test_closes_from_several_threads_signal_no_reaped_group(
        pipe: ProcessPipe, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = record_signals(monkeypatch, pipe.proc)
    threads = [threading.Thread(target=pipe.close) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pipe.proc.returncode is not None
    assert sent and not any(sent)
