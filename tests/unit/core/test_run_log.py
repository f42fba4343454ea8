"""Run logs and run records, in process: the log tail, record completion, log rotation, the
run lock that tells a restarted operator whether an earlier run still lives, and the remote
log scripts of the SSH transport run by the local /bin/sh."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

import pytest

from vm_operator.core.runs import finished_record
from vm_operator.store.state import (
    LogTail,
    RunRecord,
    StateDirError,
    StateStore,
    cut_tail,
    last_lines,
    normalize_record,
)
from vm_operator.tart.local import AdoptedRun
from vm_operator.tart.ssh import parse_log_answer
from vm_operator.tart.ssh_commands import LAUNCH_SCRIPT, LOG_MISSING, LOG_SCRIPT


@pytest.mark.parametrize(("data", "count", "expected"), [
    (b"a\nb\nc\n", 1, (b"c\n", True)),
    (b"a\nb\nc\n", 2, (b"b\nc\n", True)),
    (b"a\nb\nc\n", 3, (b"a\nb\nc\n", True)),
    (b"a\nb\nc\n", 4, (b"a\nb\nc\n", False)),
    (b"a\nb\nc", 1, (b"c", True)),  # a last line still being written counts
    (b"a\nb\nc", 2, (b"b\nc", True)),
    (b"a\n\n\n", 2, (b"\n\n", True)),  # empty lines are lines
    (b"", 1, (b"", False)),
])
def test_last_lines(data: bytes, count: int, expected: tuple[bytes, bool]) -> None:
    assert last_lines(data, count) == expected


def _tail(log: bytes, lines: int | None = None, limit: int = 10, extra: bool = True) -> LogTail:
    """What the store does: the last limit+1 bytes (or only limit, without ``extra``)."""
    chunk = log[-(limit + 1):] if extra else log[-limit:]
    return cut_tail(chunk, len(log), lines, limit)


@pytest.mark.parametrize(("log", "lines", "extra", "data", "truncated"), [
    (b"", None, True, b"", False),
    (b"a\nb\nc\n", None, True, b"a\nb\nc\n", False),  # fits: the whole log
    (b"a\nb\nc\n", 2, True, b"b\nc\n", False),
    (b"aaa\nbbb\nccc\nddd\n", None, True, b"ccc\nddd\n", True),  # mid-line: drop that part
    (b"aaaa\nbbbb\ncccc\n", None, True, b"bbbb\ncccc\n", True),  # already at a line start
    (b"aaaa\nbbbb\ncccc\n", None, False, b"cccc\n", True),  # unknown: assume mid-line
    (b"aaaa\nbbbb\ncccc\n", 1, True, b"cccc\n", False),  # N lines fit: not cut by the limit
    (b"aaaa\nbbbb\ncccc\n", 2, True, b"bbbb\ncccc\n", False),
    (b"aaaa\nbbbb\ncccc\n", 3, True, b"bbbb\ncccc\n", True),  # the limit cut the third
    (b"x" * 30 + b"\n", None, True, b"", True),  # one line longer than the limit
    (b"x" * 30, 1, True, b"", True),
])
def test_cut_tail(log: bytes, lines: int | None, extra: bool, data: bytes,
                  truncated: bool) -> None:
    tail = _tail(log, lines, extra=extra)
    assert (tail.data, tail.truncated) == (data, truncated)
    assert tail.size == len(log) and tail.omitted == len(log) - len(data)
    assert log.endswith(data)


def test_parse_log_answer() -> None:
    tail = parse_log_answer("   12\nb\nc\n", 1)  # wc -c pads with spaces on macOS
    assert (tail.data, tail.size, tail.omitted, tail.truncated) == (b"c\n", 12, 10, False)
    assert parse_log_answer("0\n").data == b""
    with pytest.raises(Exception, match="no size"):
        parse_log_answer("garbage")


RUNNING: RunRecord = {"started_at": "2026-01-02T03:04:05.000Z", "pid": 42, "suspendable": False,
                      "finished_at": None, "exit_code": None, "exit_code_known": False,
                      "error": None}
NOW = "2026-01-02T04:00:00.000Z"


@pytest.mark.parametrize(("code", "error", "expected"), [
    (0, None, {"exit_code": 0, "exit_code_known": True, "error": None}),
    (1, "boom", {"exit_code": 1, "exit_code_known": True, "error": "boom"}),
    (-9, "killed", {"exit_code": -9, "exit_code_known": True, "error": "killed"}),
    (None, "ignored", {"exit_code": None, "exit_code_known": False, "error": None}),
])
def test_finished_record(code: int | None, error: str | None, expected: dict[str, object]) -> None:
    done = finished_record(RUNNING, code, error, NOW)
    assert done == {**RUNNING, "finished_at": NOW, **expected}
    assert RUNNING["finished_at"] is None  # the running record is left alone


@pytest.mark.parametrize(("data", "expected"), [
    ({"started_at": "t", "pid": 1, "suspendable": True, "finished_at": "u", "exit_code": 0,
      "error": None},  # written before exit_code_known existed
     {"started_at": "t", "pid": 1, "suspendable": True, "finished_at": "u", "exit_code": 0,
      "error": None, "exit_code_known": True}),
    ({"started_at": "t", "pid": 1, "finished_at": None, "exit_code": None, "error": None},
     {"started_at": "t", "pid": 1, "suspendable": False, "finished_at": None, "exit_code": None,
      "error": None, "exit_code_known": False}),
    (dict(RUNNING), dict(RUNNING)),
    ({"pid": 1}, None),
    ({"started_at": "t", "pid": "1"}, None),
    ([1, 2], None),
    (None, None),
])
def test_normalize_record(data: object, expected: dict[str, object] | None) -> None:
    assert normalize_record(data) == expected


def test_logs_rotate_and_only_a_few_are_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for run in range(6):
        Path(store.prepare_log("vm")).write_text(f"run {run}\n")
    folder = tmp_path / "vms" / "vm"
    assert sorted(p.name for p in folder.iterdir()) == [
        "run.1.log", "run.2.log", "run.3.log", "run.log"]
    assert [(folder / f).read_text() for f in ("run.log", "run.1.log", "run.2.log", "run.3.log")] \
        == ["run 5\n", "run 4\n", "run 3\n", "run 2\n"]
    assert store.read_log("vm") == b"run 5\n"


def test_a_state_dir_that_is_a_file_is_a_state_dir_error(tmp_path: Path) -> None:
    root = tmp_path / "state"
    root.write_text("a file")
    store = StateStore(root)
    for action in (lambda: store.check_writable("vm"), lambda: store.prepare_log("vm"),
                   lambda: store.read_last_run("vm"), lambda: store.tail_log("vm"),
                   lambda: store.open_run_lock("vm"), lambda: store.write_last_run("vm", RUNNING)):
        with pytest.raises(StateDirError) as caught:
            action()
        assert str(root) in str(caught.value) and caught.value.root == root
    assert store.read_last_run("vm") == RUNNING  # written to memory first
    assert store.last_log_line("vm") == ""
    assert store.unfinished_runs() == []


def test_a_finished_record_never_replaces_a_newer_runs_record(tmp_path: Path) -> None:
    """The reaper of a run that just ended races with the start of the next run."""
    store = StateStore(tmp_path)
    store.write_last_run("vm", RUNNING)
    newer: RunRecord = {**RUNNING, "pid": 43, "started_at": "2026-01-02T03:59:00.000Z"}
    store.write_last_run("vm", newer)
    assert store.finish_run("vm", finished_record(RUNNING, 0, None, NOW)) is False
    assert StateStore(tmp_path).read_last_run("vm") == newer
    done = finished_record(newer, 0, None, NOW)
    assert store.finish_run("vm", done) is True
    assert StateStore(tmp_path).read_last_run("vm") == done == store.read_last_run("vm")


def test_unfinished_runs_are_found_after_a_restart(tmp_path: Path) -> None:
    first = StateStore(tmp_path)
    first.write_last_run("a/b:c", RUNNING)
    first.write_last_run("done", {**RUNNING, "finished_at": NOW, "exit_code": 0,
                                  "exit_code_known": True})
    (tmp_path / "vms" / "junk").mkdir()
    assert StateStore(tmp_path).unfinished_runs() == [("a/b:c", RUNNING)]


def test_an_adopted_run_has_ended_once_its_lock_is_free(tmp_path: Path) -> None:
    lock = tmp_path / "run.lock"
    lock.touch()
    holder = os.open(lock, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as the live tart run holds it
    run = AdoptedRun(lock, pid=1, poll=0.01)
    assert run.ended() is False
    os.close(holder)
    assert run.ended() is True and run.wait() is None
    # A record from before run locks: its PID decides.
    assert AdoptedRun(tmp_path / "none", pid=os.getpid()).ended() is False
    dead = subprocess.Popen(["true"])
    dead.wait()
    assert AdoptedRun(tmp_path / "none", pid=dead.pid).ended() is True


# --- the remote scripts, run by the local /bin/sh in a throw-away home -----------------------


def _sh(home: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", script, "vm-operator", *args],
                          env={"HOME": str(home), "PATH": os.defpath}, capture_output=True,
                          text=True, timeout=10, check=False)


def test_the_launch_script_keeps_earlier_logs(tmp_path: Path) -> None:
    log = ".vm-operator/logs/vm.log"
    for run in range(5):
        started = _sh(tmp_path, LAUNCH_SCRIPT, log, "/bin/echo", f"run {run}")
        assert started.returncode == 0 and started.stdout.strip().isdigit(), started
        deadline = time.monotonic() + 10
        while not (tmp_path / f"{log}.exit").exists():
            assert time.monotonic() < deadline, "the detached run never wrote its exit code"
            time.sleep(0.01)
    folder = tmp_path / ".vm-operator" / "logs"
    assert sorted(p.name for p in folder.iterdir()) == [
        "vm.log", "vm.log.1", "vm.log.2", "vm.log.3", "vm.log.exit"]
    assert [(folder / f).read_text() for f in ("vm.log", "vm.log.1", "vm.log.3")] == [
        "run 4\n", "run 3\n", "run 1\n"]


def test_the_log_script_sends_the_size_then_the_tail(tmp_path: Path) -> None:
    folder = tmp_path / ".vm-operator" / "logs"
    folder.mkdir(parents=True)
    (folder / "vm.log").write_text("one\ntwo\nthree\n")
    answer = _sh(tmp_path, LOG_SCRIPT, ".vm-operator/logs/vm.log", "9")
    assert answer.returncode == 0, answer
    assert answer.stdout == "14\nwo\nthree\n"
    tail = parse_log_answer(answer.stdout)  # 9 bytes of 14 arrived: "wo" is half a line
    assert (tail.data, tail.size, tail.omitted, tail.truncated) == (b"three\n", 14, 8, True)
    assert _sh(tmp_path, LOG_SCRIPT, ".vm-operator/logs/none.log", "9").returncode == LOG_MISSING
