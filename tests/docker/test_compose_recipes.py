"""The README's compose recipes, run as written with docker-compose (v1) on this Linux engine.

"Tokens in compose": the three blocks after the ``<!-- recipe: compose-token`` marker are taken
from README.md itself: the shell block runs in a copy of ``docker/vm-operator``, the YAML becomes
``docker-compose.override.yml`` there, and the last block runs too (its ``docker-compose`` line
first; then, once the service is healthy, its curl line with the host port this test publishes
instead of 8082). The service must become healthy without a single restart, answer 401 without
the token and 200 with it, and the token file must stay unreadable for everyone else.

Only ports published on 127.0.0.1 are used. The project name, host port and image tag are unique
to this run; everything is removed afterwards (``docker-compose down -v --rmi local``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import free_port
from test_docker_tier import ROOT, docker, engine_problem, wait_until

README = ROOT / "README.md"
LOCAL_BASE = "vm-operator-base:bookworm"
HEALTHY_WITHIN_S = 90.0


def recipe(marker: str) -> tuple[list[tuple[str, str]], str]:
    """The fenced blocks (language, text) that follow ``<!-- recipe: MARKER``, and the prose
    between them; a recipe ends at the next heading or bold paragraph title."""
    text = README.read_text()
    start = text.index(f"<!-- recipe: {marker}")
    end = re.compile(r"^(#+ |\*\*)", re.MULTILINE).search(text, start)
    section = text[start:end.start() if end else len(text)]
    blocks = re.findall(r"^```(\w+)\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```\w+\n.*?^```$", "", section, flags=re.MULTILINE | re.DOTALL)
    return blocks, prose


def http_status(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@dataclass
class Project:
    """A copy of the checkout's build context with the compose directory to run recipes in."""

    compose_dir: Path
    env: dict[str, str]
    port: int

    def sh(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A line of the README's shell, as a user would type it in the compose directory."""
        return subprocess.run(["sh", "-eu", "-c", script], cwd=self.compose_dir, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker-compose", *args], cwd=self.compose_dir, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    missing = engine_problem() or next(
        (f"no {tool} on PATH" for tool in ("docker-compose", "setfacl", "curl")
         if shutil.which(tool) is None), None)
    if missing:
        if os.environ.get("VM_OPERATOR_REQUIRE_DOCKER") == "1":
            pytest.fail(f"VM_OPERATOR_REQUIRE_DOCKER=1 but {missing} (scripts/test.sh --docker)")
        pytest.skip(f"compose recipes skipped: {missing}")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("vm_operator", "bin", "docker"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=skip, symlinks=True)
    shutil.copy(ROOT / ".dockerignore", tmp_path / ".dockerignore")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TART_", "VM_OPERATOR_", "COMPOSE_"))}
    env.update({"COMPOSE_PROJECT_NAME": f"vmoprecipe{os.getpid()}", "VM_OPERATOR_PORT": str(port),
                "VM_OPERATOR_BIND": "127.0.0.1",
                "VM_OPERATOR_IMAGE": f"vm-operator-recipe-pytest:{os.getpid()}",
                "BASE_IMAGE": os.environ.get("BASE_IMAGE", LOCAL_BASE)})
    made = Project(tmp_path / "docker" / "vm-operator", env, port)
    try:
        yield made
    finally:
        made.compose("down", "-v", "--rmi", "local", "--remove-orphans")
        docker("rmi", "-f", env["VM_OPERATOR_IMAGE"])


@pytest.mark.docker
def test_readme_token_recipe_works_as_written(project: Project) -> None:
    blocks, prose = recipe("compose-token")
    assert [language for language, _ in blocks] == ["sh", "yaml", "sh"], blocks
    (_, make_token), (_, override), (_, run) = blocks
    assert "docker-compose.override.yml" in prose  # where the README says the YAML goes

    made = project.sh(make_token)
    assert made.returncode == 0, made.stderr
    (project.compose_dir / "docker-compose.override.yml").write_text(override)
    token_file = project.compose_dir / "vm_operator_token.txt"
    token = token_file.read_text().strip()
    assert len(token) >= 16
    assert_only_the_owner_and_the_operator_read(token_file)
    curls, _ = up_and_healthy(project, run)

    for line in curls:  # the README's curl, against this run's port
        out = project.sh(line.replace("127.0.0.1:8082", f"127.0.0.1:{project.port}"))
        assert out.returncode == 0, out.stderr
        assert "macos-sequoia-base" in {vm["name"] for vm in json.loads(out.stdout)}, out.stdout
    assert http_status(project.port, "/vms")[0] == 401
    assert http_status(project.port, "/vms", "x" * len(token))[0] == 401
    assert http_status(project.port, "/vms", token)[0] == 200
    assert http_status(project.port, "/health")[0] == 200  # the probes need no token


def assert_only_the_owner_and_the_operator_read(path: Path) -> None:
    """Least privilege: nobody but the file's owner and the container's UID 10001 may read
    the secret (mode 0600 or 0640 plus an ACL entry for 10001)."""
    assert path.stat().st_mode & 0o777 & ~0o740 == 0, oct(path.stat().st_mode)
    acl = subprocess.run(["getfacl", "--omit-header", "--numeric", str(path)],
                         capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert sorted(acl) == sorted(["user::rw-", "user:10001:r--", "group::---", "mask::r--",
                                  "other::---"]), acl


def up_and_healthy(project: Project, run: str) -> tuple[list[str], str]:
    """Run the recipe's ``docker-compose`` lines; the service must turn healthy by its own
    HEALTHCHECK, never restart, and run as the non-root user. The recipe's ``curl`` lines,
    and the service's last log lines."""
    lines = [line for line in run.splitlines() if line.strip()]
    ups = [line for line in lines if line.startswith("docker-compose ")]
    curls = [line for line in lines if line.startswith("curl ")]
    assert ups and curls and len(ups) + len(curls) == len(lines), lines
    for line in ups:
        up = project.sh(line, timeout=900)
        assert up.returncode == 0, up.stdout + up.stderr

    cid = project.compose("ps", "-q", "vm-operator").stdout.strip()
    assert cid

    def health() -> str:
        return docker("inspect", "-f", "{{.State.Health.Status}}", cid).stdout.strip()

    healthy = wait_until(lambda: health() == "healthy", HEALTHY_WITHIN_S, step=0.5)
    logs = project.compose("logs", "--no-color", "--tail", "20").stdout
    assert healthy is not None, f"not healthy ({health()}):\n{logs}"
    state = json.loads(docker("inspect", cid, check=True).stdout)[0]
    assert state["RestartCount"] == 0, logs
    assert state["Config"]["User"] == "10001:10001"  # still the non-root user
    return curls, logs
