"""The macOS cap's refusal names no VM but the one asked about, over a real server: a token
limited to VM patterns that starts one of its VMs while two others run is told the cap and how
many run, never which (those may be VMs it may not see; ``GET /vms`` lists what it may)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import LOCAL_VMS
from support import token_new, tokens_file

SEQUOIA, SONOMA, _ = LOCAL_VMS
CI = token_new("ci", "--role", "read,write", "--vm", "ci-*")
FULL = "full-access-token-0123456789"


def test_the_macos_cap_refusal_does_not_name_the_vms_that_run(operator_factory: Any,
                                                              tmp_path: Path) -> None:
    op = operator_factory(env={"VM_OPERATOR_TOKEN": FULL},
                          args=["--tokens-file", str(tokens_file(tmp_path / "tokens.toml", CI))])
    assert op.tart("clone", SEQUOIA, "ci-mac").returncode == 0
    full = {"Authorization": f"Bearer {FULL}"}
    for name in (SEQUOIA, SONOMA):
        assert op.json("POST", f"/vms/{name}/start", full)[0] == 202
    status, doc = op.json("POST", "/vms/ci-mac/start", CI.auth)
    assert (status, doc["type"], doc["limit"]) == (409, "/problems/vm-limit", 2), doc
    assert "running or starting now: 2" in doc["detail"], doc
    assert SEQUOIA not in json.dumps(doc) and SONOMA not in json.dumps(doc), doc
