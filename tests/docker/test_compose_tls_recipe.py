"""README "TLS in compose", run as written with docker-compose (v1) on this Linux engine.

The three blocks after the ``<!-- recipe: compose-tls`` marker: the shell block runs in a copy of
``docker/vm-operator`` (``vm-operator`` there is this checkout's CLI), the YAML becomes
``docker-compose.override.yml``, the last block runs (its ``docker-compose`` line, then, once the
service is healthy, its curl line with this run's host port instead of 8082). The service's own
health check must pass over HTTPS without a restart, curl with the certificate gets 200, plain HTTP
gets no API answer, and the key stays readable by its owner and UID 10001 only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import test_compose_recipes as recipes
from test_compose_recipes import (
    Project,
    assert_only_the_owner_and_the_operator_read,
    recipe,
    up_and_healthy,
)
from test_docker_tier import ROOT

project = recipes.project  # the fixture: a compose directory, port and project name of this run


def put_cli_on_path(made: Project, bin_dir: Path) -> None:
    """``vm-operator`` as a user has it: this checkout's package run by this Python."""
    bin_dir.mkdir()
    shim = bin_dir / "vm-operator"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m vm_operator "$@"\n')
    shim.chmod(0o755)
    made.env["PATH"] = f"{bin_dir}:{made.env.get('PATH', '/usr/bin:/bin')}"


@pytest.mark.docker
def test_readme_tls_recipe_works_as_written(project: Project, tmp_path: Path) -> None:
    blocks, prose = recipe("compose-tls")
    assert [language for language, _ in blocks] == ["sh", "yaml", "sh"], blocks
    (_, make_certificate), (_, override), (_, run) = blocks
    assert "docker-compose.override.yml" in prose
    put_cli_on_path(project, tmp_path / "cli-bin")

    made = project.sh(make_certificate)
    assert made.returncode == 0, made.stdout + made.stderr
    (project.compose_dir / "docker-compose.override.yml").write_text(override)
    cert = project.compose_dir / "tls" / "cert.pem"
    key = project.compose_dir / "tls" / "key.pem"
    assert_only_the_owner_and_the_operator_read(key)
    curls, logs = up_and_healthy(project, run)
    assert '"tls":true' in logs.replace(" ", ""), logs

    for line in curls:  # the README's curl, against this run's port
        out = project.sh(line.replace("127.0.0.1:8082", f"127.0.0.1:{project.port}"))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["status"] == "healthy", out.stdout
    plain = project.sh(f"curl -sS --max-time 10 http://127.0.0.1:{project.port}/health")
    assert plain.returncode != 0 and plain.stdout == "", (plain.stdout, plain.stderr)
    assert cert.stat().st_mode & 0o444 == 0o444  # the certificate is public
