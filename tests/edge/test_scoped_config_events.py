"""The event stream of a token limited to VM patterns, over a real server with a declarative
file: a ``config.applied`` tells it only the steps about its VMs (``failed`` counting those),
and still comes when none is (the file was applied); a token without patterns is told all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sse_client import EventReader
from support import token_new, tokens_file, wait_for

CI = token_new("ci", "--role", "read", "--vm", "ubuntu-*")
READER = token_new("reader", "--role", "read")
FULL = "full-access-token-0123456789"


def _clone(name: str) -> str:
    return f'[vms.{name}]\nfrom = "ubuntu-runner"\ndesired = "stopped"\n\n'


def _applied(reader: EventReader) -> dict[str, Any]:
    block = reader.next_event(30, "config.applied")
    assert block is not None, "no config.applied"
    return block.data["data"]  # type: ignore[no-any-return]


def test_config_applied_tells_a_scoped_token_only_the_steps_of_its_vms(
        operator_factory: Any, tmp_path: Path) -> None:
    config = tmp_path / "vms.toml"
    config.write_text("")
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL},
                          args=["--tokens-file", str(tokens_file(tmp_path / "tokens.toml", CI,
                                                                 READER)),
                                "--config", str(config)])
    reload = {"Authorization": f"Bearer {FULL}"}
    wait_for(lambda: any(record.get("event") == "config-applied" for record in op.log_records()),
             timeout=30, message="the start-up apply done (its event is not the one watched)")
    with EventReader(op.port, "/events", CI.auth) as scoped, \
            EventReader(op.port, "/events", READER.auth) as everything:
        assert (scoped.status, everything.status) == (200, 200)
        config.write_text(_clone("ubuntu-5") + _clone("prod-5"))
        status, doc = op.json("POST", "/config/reload", reload)
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
        status, doc = op.json("POST", "/config/reload", reload)
        assert status == 200 and [step["vm"] for step in doc["steps"]] == ["prod-6"], doc
        assert any("prod-6" in line for line in _applied(everything)["steps"])
        assert _applied(scoped)["steps"] == []
