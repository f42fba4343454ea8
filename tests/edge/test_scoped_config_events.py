"""The event stream of a token limited to VM patterns, over a real server with a declarative
file: a ``config.applied`` tells it only the steps about its VMs (``failed`` counting those),
and still comes when none is (the file was applied); a ``config.refused`` tells it the error,
line and key only when the refusal is about one of its VMs (an entry ``[vms.NAME]`` it may
touch), else only that the file was refused, as the error or the key would name another VM.
A token without patterns is told all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sse_client import EventReader
from support import token_new, tokens_file, wait_for

from vm_operator.core.event_catalogue import REFUSED_ELSEWHERE

CI = token_new("ci", "--role", "read", "--vm", "ubuntu-*")
READER = token_new("reader", "--role", "read")
FULL = "full-access-token-0123456789"


def _clone(name: str) -> str:
    return f'[vms.{name}]\nfrom = "ubuntu-runner"\ndesired = "stopped"\n\n'


def _told(reader: EventReader, event: str) -> dict[str, Any]:
    block = reader.next_event(30, event)
    assert block is not None, f"no {event}"
    return block.data["data"]  # type: ignore[no-any-return]


def _applied(reader: EventReader) -> dict[str, Any]:
    return _told(reader, "config.applied")


def _refused(reader: EventReader) -> dict[str, Any]:
    return _told(reader, "config.refused")


RELOAD = {"Authorization": f"Bearer {FULL}"}


def _operator(operator_factory: Any, tmp_path: Path) -> tuple[Any, Path]:
    """An operator with the tokens and an empty declarative file, its start-up apply done."""
    config = tmp_path / "vms.toml"
    config.write_text("")
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL},
                          args=["--tokens-file", str(tokens_file(tmp_path / "tokens.toml", CI,
                                                                 READER)),
                                "--config", str(config)])
    wait_for(lambda: any(record.get("event") == "config-applied" for record in op.log_records()),
             timeout=30, message="the start-up apply done (its event is not the one watched)")
    return op, config


@contextmanager
def _streams(op: Any) -> Iterator[tuple[EventReader, EventReader]]:
    """The event streams of the scoped token and of a token without patterns."""
    with EventReader(op.port, "/events", CI.auth) as scoped, \
            EventReader(op.port, "/events", READER.auth) as everything:
        assert (scoped.status, everything.status) == (200, 200)
        yield scoped, everything


def test_config_applied_tells_a_scoped_token_only_the_steps_of_its_vms(
        operator_factory: Any, tmp_path: Path) -> None:
    op, config = _operator(operator_factory, tmp_path)
    with _streams(op) as (scoped, everything):
        config.write_text(_clone("ubuntu-5") + _clone("prod-5"))
        status, doc = op.json("POST", "/config/reload", RELOAD)
        assert status == 200, doc
        assert sorted(step["vm"] for step in doc["steps"]) == ["prod-5", "ubuntu-5"]

        whole = _applied(everything)
        assert sorted(whole["steps"]) == sorted(step["step"] + ": " + step["outcome"]
                                                for step in doc["steps"])
        assert any("prod-5" in line for line in whole["steps"])
        seen = _applied(scoped)
        assert seen["steps"] == [line for line in whole["steps"] if "ubuntu-5" in line]
        assert (seen["failed"], seen["file"], seen["cause"]) == (0, str(config), "api")

        # an apply with no step about its VMs: told, with no steps
        config.write_text(_clone("ubuntu-5") + _clone("prod-5") + _clone("prod-6"))
        status, doc = op.json("POST", "/config/reload", RELOAD)
        assert status == 200 and [step["vm"] for step in doc["steps"]] == ["prod-6"], doc
        assert any("prod-6" in line for line in _applied(everything)["steps"])
        assert _applied(scoped)["steps"] == []


def test_config_refused_tells_a_scoped_token_where_and_why_only_about_its_vms(
        operator_factory: Any, tmp_path: Path) -> None:
    op, config = _operator(operator_factory, tmp_path)
    with _streams(op) as (scoped, everything):
        for name, told in (("prod-5", False), ("ubuntu-5", True)):
            config.write_text(f'[vms.{name}]\nfrom = "ubuntu-runner"\ncpu = "many"\n')
            status, doc = op.json("POST", "/config/reload", RELOAD)
            assert (status, doc["key"]) == (422, f"vms.{name}.cpu"), doc
            whole = _refused(everything)
            assert (whole["key"], whole["line"]) == (f"vms.{name}.cpu", 3)
            seen = _refused(scoped)
            if told:
                assert seen == whole
            else:
                assert seen == {**whole, **REFUSED_ELSEWHERE}
                assert name not in str(seen)

        # a refusal about no entry (TOML's own error may quote any key): not where nor why
        config.write_text('[vms.prod-6]\nfrom = "ubuntu-runner"\n[vms.prod-6]\n')
        status, doc = op.json("POST", "/config/reload", RELOAD)
        assert status == 422 and "prod-6" in doc["detail"], doc
        assert "prod-6" in str(_refused(everything))
        seen = _refused(scoped)
        assert seen["error"] == REFUSED_ELSEWHERE["error"] and "prod-6" not in str(seen)
