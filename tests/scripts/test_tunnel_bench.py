"""scripts/bench.py --tunnels-only: tunnel throughput and added latency against a direct
connection, measured end to end (no timing asserted: only that the figures are there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import REPO_ROOT

ROOT = REPO_ROOT


def test_the_benchmark_measures_tunnels_against_direct_connections(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--tunnels-only", "--quick",
         "--no-ssh", "--tunnel-mib", "1", "--json"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout)["tunnels"]
    local = figures["local"]
    for key in ("direct_mib_s", "tunnel_mib_s", "direct_rtt_ms", "tunnel_rtt_ms", "added_ms"):
        assert isinstance(local[key], float | int) and not isinstance(local[key], bool), key
    assert local["tunnel_mib_s"] > 0 and local["bytes"] == 1 << 20
    assert figures["ssh"] == {"skipped": "--no-ssh"}
