"""The operations' records on disk: written whole, read back, interrupted ones failed."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support import REPO_ROOT, wait_for

from vm_operator.core.operations import Job, OperationContext, OperationQueue
from vm_operator.store.atomic import write_whole
from vm_operator.store.operation_records import Operation, OperationError
from vm_operator.store.operations import (
    INTERRUPTED,
    BadRecord,
    OperationStore,
    read_record,
)

WAIT = 10.0
NOW = "2025-06-01T12:00:00.000Z"


def store_in(directory: Path) -> OperationStore:
    return OperationStore(directory, now=lambda: NOW)


def sample_operations() -> list[Operation]:
    return [
        Operation("q1", "create", "queued", "t0", seq=3, vm="web", image="ghcr.io/o/i:1"),
        Operation("r1", "pull", "running", "t0", seq=2, image="ghcr.io/o/i:1", phase="pulling",
                  progress=57, started_at="t1", cancel_requested=True),
        Operation("s1", "delete", "succeeded", "t0", seq=0, vm="old", started_at="t1",
                  finished_at="t2"),
        Operation("f1", "create", "failed", "t0", seq=1, vm="café/x", started_at="t1",
                  finished_at="t2", result="created VM kept, stopped: start failed",
                  error=OperationError("tart-failed", "start failed", "VM \"x\" is running", 1)),
        Operation("c1", "prune", "cancelled", "t0", seq=4, finished_at="t2"),
    ]


def test_finished_operations_load_as_they_were_saved(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    finished = [op for op in sample_operations() if op.finished]
    for op in finished:
        store.save(op)
    loaded = store_in(tmp_path).load()
    assert loaded.operations == sorted(finished, key=lambda op: op.seq)
    assert loaded.unreadable == []


def test_interrupted_operations_fail_and_their_leftovers_are_reported(tmp_path: Path) -> None:
    store = store_in(tmp_path)
    for op in sample_operations():
        store.save(op)
    reported: list[Operation] = []
    loaded = store_in(tmp_path).load(reported.append)
    by_id = {op.id: op for op in loaded.operations}
    assert [op.id for op in reported] == ["r1", "q1"]  # in the order they were submitted
    for op_id in ("r1", "q1"):
        op = by_id[op_id]
        assert (op.state, op.error, op.finished_at) == ("failed", INTERRUPTED, NOW)
        assert op.error is not None and op.error.detail == "interrupted by a restart"
    assert reported[1].vm == "web"  # what the lifecycle layer needs to clean up
    assert by_id["r1"].progress == 57 and by_id["r1"].phase == "pulling"  # where it stopped
    again: list[Operation] = []
    assert store_in(tmp_path).load(again.append).operations == loaded.operations
    assert again == []  # recorded as failed: reported once


def test_a_failed_cleanup_is_tried_again_at_the_next_start(tmp_path: Path) -> None:
    store_in(tmp_path).save(sample_operations()[0])

    def broken_cleanup(op: Operation) -> None:
        raise OSError("tart is not there")

    loaded = store_in(tmp_path).load(broken_cleanup)
    assert loaded.operations[0].state == "failed"
    assert loaded.operations[0].result == "not cleaned up after the restart"
    assert read_record(tmp_path / "q1.json").state == "queued"  # unchanged on disk
    reported: list[Operation] = []
    store_in(tmp_path).load(reported.append)
    assert [op.id for op in reported] == ["q1"]


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("garbage.json", b"{not json", "Expecting"),
    ("empty.json", b"", "Expecting value"),
    ("list.json", b"[]", "not an operation record"),
    ("future.json", b'{"format": 2, "seq": 0, "operation": {}}', "not an operation record"),
    ("other.json", json.dumps({"format": 1, "seq": 0, "operation": sample_operations()[2]
                               .to_json()}).encode(), "holds operation s1"),
    ("badstate.json", json.dumps({"format": 1, "seq": 0, "operation": {
        **sample_operations()[2].to_json(), "id": "badstate", "state": "paused"}}).encode(),
     "state must be one of"),
    ("badseq.json", json.dumps({"format": 1, "seq": True, "operation": {
        **sample_operations()[2].to_json(), "id": "badseq"}}).encode(), "seq must be of type int"),
    ("baderror.json", json.dumps({"format": 1, "seq": 0, "operation": {
        **sample_operations()[2].to_json(), "id": "baderror", "error": "boom"}}).encode(),
     "error must be an object"),
])
def test_an_unreadable_record_is_reported_and_kept(
        tmp_path: Path, name: str, content: bytes, problem: str) -> None:
    store = store_in(tmp_path)
    store.save(sample_operations()[2])
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=problem):
        read_record(tmp_path / name)
    loaded = store_in(tmp_path).load()
    assert loaded.unreadable == [tmp_path / name] and (tmp_path / name).exists()
    assert [op.id for op in loaded.operations] == ["s1"]


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    (tmp_path / ".tmp-abc123").write_bytes(b'{"format": 1, "se')
    assert store_in(tmp_path).load().operations == []
    assert list(tmp_path.iterdir()) == []


def test_records_are_private_and_ids_cannot_escape_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "operations"
    store = store_in(directory)
    store.load()
    store.save(sample_operations()[2])
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "s1.json").stat().st_mode) == 0o600
    for bad in ("../escape", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(ValueError, match="not an operation id"):
            store.save(Operation(bad, "prune", "queued", "t0", seq=0))
    assert BadRecord.__mro__[1] is ValueError
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["s1.json"]


def records_in(folder: Path) -> list[str]:
    """The records in the store's folder, not the temporary files of writes under way."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".tmp-"))


def test_the_store_follows_a_queue_and_a_restart_restores_it(tmp_path: Path) -> None:
    clock = iter(f"2025-06-01T12:00:{n:02d}Z" for n in range(60))
    store = OperationStore(tmp_path, now=lambda: next(clock))
    queue = OperationQueue(lambda: next(clock), history=2, restored=store.load().operations)
    queue.add_listener(store.record)
    queue.start()
    done = []
    for n in range(3):  # one after the other: pulls of different images may run side by side
        done.append(queue.submit("pull", Job(lambda ctx: None), image=f"img{n}"))
        queue.wait(done[-1].id, WAIT)
    started, never = threading.Event(), threading.Event()

    def hangs(ctx: OperationContext) -> None:
        ctx.set_phase("pulling")
        ctx.set_progress(40)
        started.set()
        never.wait(WAIT)

    running = queue.submit("create", Job(hangs), vm="web", image="img1")
    queued = queue.submit("create", Job(lambda ctx: None), vm="db", image="img1")
    assert started.wait(WAIT)
    # the history keeps 2 finished: the first pull's record is gone (a record being written
    # now, by the running create's thread, is a temporary file until it replaces its record)
    # (events reach the store from whichever thread delivers them, a moment after the change)
    expected = sorted(f"{op.id}.json" for op in (done[1], done[2], running, queued))
    wait_for(lambda: records_in(tmp_path) == expected, message=f"records {expected}")
    wait_for(lambda: read_record(tmp_path / f"{running.id}.json").progress == 40,
             message="the running create's progress recorded")

    # the operator dies here (the queue is left as it is); a new one starts on the same files
    reported: list[Operation] = []
    loaded = OperationStore(tmp_path, now=lambda: NOW).load(reported.append)
    assert [op.vm for op in reported] == ["web", "db"]
    restarted = OperationQueue(lambda: NOW, history=2, restored=loaded.operations)
    restarted.add_listener(store.record)
    assert [(op.id, op.state) for op in restarted.list_operations()] == [
        (running.id, "failed"), (queued.id, "failed")]  # the history bound forgot two more
    assert records_in(tmp_path) == sorted(f"{op.id}.json" for op in (running, queued))
    never.set()
    queue.close(WAIT)


WRITER = """
import os, random, sys
from pathlib import Path
from vm_operator.store.operation_records import Operation
from vm_operator.store.operations import OperationStore

if sys.argv[3] == "pause":  # stop in each save, after the write, before the rename
    real_replace = os.replace
    def paused_replace(source, target):
        print("renaming", flush=True)
        sys.stdin.readline()
        real_replace(source, target)
    os.replace = paused_replace
store = OperationStore(Path(sys.argv[1]), now=lambda: "t")
rng = random.Random(int(sys.argv[2]))
seq = 0
while True:
    op_id = f"op{rng.randrange(6)}"
    if sys.argv[3] == "run" and rng.random() < 0.1:
        store.delete(op_id)
    else:
        state = rng.choice(["queued", "running", "succeeded", "failed"])
        store.save(Operation(op_id, "create", state, "t", seq=seq, vm="vm",
                             result="x" * rng.randrange(300_000)))
    seq += 1
    print("written", flush=True)
"""


def start_writer(directory: Path, seed: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(directory), str(seed), mode],
                            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def kill(writer: subprocess.Popen[str]) -> None:
    os.kill(writer.pid, signal.SIGKILL)
    writer.communicate(timeout=WAIT)
    assert writer.returncode == -signal.SIGKILL


def records(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.glob("*.json")}


def assert_every_record_loads(directory: Path) -> None:
    for record in directory.glob("*.json"):
        read_record(record)  # raises if a record is half written
    loaded = store_in(directory).load(lambda op: None)
    assert loaded.unreadable == []
    assert not any(p.name.startswith(".tmp-") for p in directory.iterdir())


def test_a_crash_at_any_instant_leaves_every_record_readable(tmp_path: Path) -> None:
    """A writer saving records in a loop, killed with SIGKILL at random moments (after a random
    number of writes, wherever it is then), over one directory: every record always loads."""
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    for attempt in range(10):
        writer = start_writer(tmp_path, seed + attempt, "run")
        assert writer.stdout is not None
        for _ in range(rng.randint(1, 8)):
            assert writer.stdout.readline() == "written\n", f"seed {seed + attempt}"
        kill(writer)
        assert_every_record_loads(tmp_path)


def test_a_crash_between_write_and_rename_keeps_the_old_record(tmp_path: Path) -> None:
    """The worst instant, made certain: the writer is killed while it holds a whole new record
    that is not in place yet. The old records stay as they were; the leftover is removed."""
    for attempt in range(4):
        writer = start_writer(tmp_path, attempt, "pause")
        assert writer.stdin is not None and writer.stdout is not None
        for _ in range(attempt + 1):  # let a few saves through, then kill inside the next one
            assert writer.stdout.readline() == "renaming\n"
            writer.stdin.write("\n")
            writer.stdin.flush()
            assert writer.stdout.readline() == "written\n"
        assert writer.stdout.readline() == "renaming\n"
        before = records(tmp_path)
        kill(writer)
        assert records(tmp_path) == before
        assert any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
        assert_every_record_loads(tmp_path)


def test_write_whole_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """store/atomic.write_whole, the one writer of every record: the new content replaces
    the old whole, and a write that fails (here: the target is a directory) keeps the old
    state and leaves no temporary file."""
    target = tmp_path / "record.json"
    write_whole(target, b"old", ".tmp.")
    write_whole(target, b"new", ".tmp.")
    assert target.read_bytes() == b"new"
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        write_whole(tmp_path / "taken", b"x", ".tmp.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json", "taken"]
