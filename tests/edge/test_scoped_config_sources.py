"""A declarative file's create of a VM of a token limited to VM patterns, from a local VM
outside them, over a real server: the token's event stream tells the create's step without
that source (``config.applied``) and its operation with ``image`` null; a token without
patterns is told both whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sse_client import EventReader
from support import token_new, tokens_file, wait_for

CI = token_new("ci", "--role", "read", "--vm", "ubuntu-*")
READER = token_new("reader", "--role", "read")
FULL = "full-access-token-0123456789"
HIDDEN = "macos-sequoia-base"  # a local VM of the simulator, outside the patterns


def _data(reader: EventReader, type_: str) -> dict[str, Any]:
    block = reader.next_event(30, type_)
    assert block is not None, f"no {type_}"
    return block.data["data"]  # type: ignore[no-any-return]


def test_a_scoped_token_is_not_told_the_source_of_a_files_create(operator_factory: Any,
                                                                tmp_path: Path) -> None:
    config = tmp_path / "vms.toml"
    config.write_text("")
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL, "TART_SIM_HANG": "clone"},
                          args=["--tokens-file", str(tokens_file(tmp_path / "tokens.toml", CI,
                                                                 READER)),
                                "--config", str(config)])
    wait_for(lambda: any(record.get("event") == "config-applied" for record in op.log_records()),
             timeout=30, message="the start-up apply done (its event is not the one watched)")
    with EventReader(op.port, "/events", CI.auth) as scoped, \
            EventReader(op.port, "/events", READER.auth) as everything:
        assert (scoped.status, everything.status) == (200, 200)
        config.write_text(f'[vms.ubuntu-6]\nfrom = "{HIDDEN}"\ndesired = "stopped"\n')
        status, doc = op.json("POST", "/config/reload", {"Authorization": f"Bearer {FULL}"})
        assert status == 200 and [step["vm"] for step in doc["steps"]] == ["ubuntu-6"], doc

        assert _data(everything, "operation.queued")["image"] == HIDDEN
        assert _data(scoped, "operation.queued")["image"] is None
        assert _data(everything, "config.applied")["steps"] == [
            f"create ubuntu-6 from {HIDDEN}: desired stopped: queued"]
        assert _data(scoped, "config.applied")["steps"] == [
            "create ubuntu-6 from a VM not shown: desired stopped: queued"]
