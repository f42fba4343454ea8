"""The audit log's file: whole JSON lines, rotated by size, a torn last line cut."""

from __future__ import annotations

import json
from pathlib import Path

from vm_operator.store.audit import AUDIT_FILE, AuditLog


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lines_are_whole_json_objects(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)
    log.write({"n": 1, "path": "/vms/é"})
    log.write({"n": 2})
    log.close()
    assert _lines(tmp_path / AUDIT_FILE) == [{"n": 1, "path": "/vms/é"}, {"n": 2}]
    assert (tmp_path / AUDIT_FILE).stat().st_mode & 0o777 == 0o600


def test_past_its_bound_the_file_rotates_keeping_a_few(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, max_bytes=100, keep=2)
    for n in range(12):
        log.write({"n": n, "pad": "x" * 30})  # about 40 bytes: two lines a file
    log.close()
    assert _lines(tmp_path / AUDIT_FILE) == [{"n": 10, "pad": "x" * 30}, {"n": 11, "pad": "x" * 30}]
    assert [line["n"] for line in _lines(tmp_path / "audit.1.jsonl")] == [8, 9]
    assert [line["n"] for line in _lines(tmp_path / "audit.2.jsonl")] == [6, 7]
    assert not (tmp_path / "audit.3.jsonl").exists()


def test_a_torn_last_line_is_cut_when_the_file_is_opened(tmp_path: Path) -> None:
    (tmp_path / AUDIT_FILE).write_bytes(b'{"n":1}\n{"n":2,"pa')
    log = AuditLog(tmp_path)
    log.write({"n": 3})
    log.close()
    assert _lines(tmp_path / AUDIT_FILE) == [{"n": 1}, {"n": 3}]


def test_an_earlier_file_is_appended_to(tmp_path: Path) -> None:
    AuditLog(tmp_path).write({"n": 1})
    log = AuditLog(tmp_path)
    log.write({"n": 2})
    log.close()
    assert _lines(tmp_path / AUDIT_FILE) == [{"n": 1}, {"n": 2}]
