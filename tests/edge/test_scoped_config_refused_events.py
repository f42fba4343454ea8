"""The event stream of a token limited to VM patterns, over a real server with a declarative
file: a ``config.refused`` tells it the error, line and key only when the refusal is about one
of its VMs (an entry ``[vms.NAME]`` it may touch); else only that the file was refused, as the
error or the key would name another VM. A token without patterns is told all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sse_client import EventReader
from support import token_new, tokens_file, wait_for

from vm_operator.core.event_catalogue import REFUSED_ELSEWHERE

CI = token_new("ci", "--role", "read", "--vm", "ubuntu-*")
READER = token_new("reader", "--role", "read")
FULL = "full-access-token-0123456789"


def _refused(reader: EventReader) -> dict[str, Any]:
    block = reader.next_event(30, "config.refused")
    assert block is not None, "no config.refused"
    return block.data["data"]  # type: ignore[no-any-return]


def test_config_refused_tells_a_scoped_token_where_and_why_only_about_its_vms(
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
        for name, told in (("prod-5", False), ("ubuntu-5", True)):
            config.write_text(f'[vms.{name}]\nfrom = "ubuntu-runner"\ncpu = "many"\n')
            status, doc = op.json("POST", "/config/reload", reload)
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
        status, doc = op.json("POST", "/config/reload", reload)
        assert status == 422 and "prod-6" in doc["detail"], doc
        assert "prod-6" in str(_refused(everything))
        seen = _refused(scoped)
        assert seen["error"] == REFUSED_ELSEWHERE["error"] and "prod-6" not in str(seen)
