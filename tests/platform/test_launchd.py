"""The launchd agent (vm_operator/platform/launchd.py): the plist is generated, parsed back, every key checked.

``print`` works on any OS; ``install``/``uninstall`` drive launchctl and run only on macOS, so
here they are checked for their refusal elsewhere and, with launchctl replaced by a recorder,
for the exact launchctl calls and the file they write.
"""

from __future__ import annotations

import plistlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

from vm_operator.platform import launchd

EXPECTED_KEYS = {
    "Label", "ProgramArguments", "EnvironmentVariables", "WorkingDirectory", "RunAtLoad",
    "KeepAlive", "ThrottleInterval", "AbandonProcessGroup", "ProcessType", "StandardOutPath",
    "StandardErrorPath",
}


def printed(tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run `python -m vm_operator launchd print ARGS` for real; parse its stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "vm_operator", "launchd", "print", *args],
        cwd=REPO_ROOT, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    data: dict[str, Any] = plistlib.loads(result.stdout, fmt=plistlib.FMT_XML)
    return data


def test_default_plist_every_key(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("a-token-of-some-length-0123456789\n")
    plist = printed(tmp_path, "--token-file", str(token))
    assert set(plist) == EXPECTED_KEYS
    assert plist["Label"] == "dev.vm-operator"
    assert plist["ProgramArguments"] == [sys.executable, "-m", "vm_operator",
                                         "--host", "127.0.0.1", "--port", "8082"]
    assert Path(plist["ProgramArguments"][0]).is_absolute()
    env = plist["EnvironmentVariables"]
    assert env == {
        "PATH": "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "PYTHONUNBUFFERED": "1",
        "VM_OPERATOR_TOKEN_FILE": str(token),
    }
    assert plist["WorkingDirectory"] == str(tmp_path)
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] is True
    assert plist["ThrottleInterval"] == 10
    assert plist["AbandonProcessGroup"] is True
    assert plist["ProcessType"] == "Interactive"
    logs = tmp_path / "Library" / "Logs" / "vm-operator"
    assert plist["StandardOutPath"] == str(logs / "vm-operator.out.log")
    assert plist["StandardErrorPath"] == str(logs / "vm-operator.err.log")


def test_options_reach_the_plist(tmp_path: Path) -> None:
    plist = printed(tmp_path, "--port", "9090", "--host", "0.0.0.0", "--tart", "/opt/tart/bin/tart",
                    "--state-dir", "state", "--token-file", "rel/token",
                    "--read-token-file", "/etc/ro-token", "--env", "VM_OPERATOR_ALLOWED_HOSTS=mac.local",
                    "--env", "VM_OPERATOR_CACHE_TTL=2", "--label", "org.example.vmop",
                    "--python", "/opt/py/bin/python3")
    assert plist["Label"] == "org.example.vmop"
    assert plist["ProgramArguments"] == [
        "/opt/py/bin/python3", "-m", "vm_operator", "--host", "0.0.0.0", "--port", "9090",
        "--tart", "/opt/tart/bin/tart", "--state-dir", str(REPO_ROOT / "state")]
    env = plist["EnvironmentVariables"]
    assert env["VM_OPERATOR_TOKEN_FILE"] == str(REPO_ROOT / "rel" / "token")  # made absolute
    assert env["VM_OPERATOR_READ_TOKEN_FILE"] == "/etc/ro-token"
    assert env["VM_OPERATOR_ALLOWED_HOSTS"] == "mac.local"
    assert env["VM_OPERATOR_CACHE_TTL"] == "2"
    assert "/opt/homebrew/bin" in env["PATH"].split(":")


def test_the_plist_round_trips_through_plistlib(tmp_path: Path) -> None:
    plist = launchd.build_plist(python="/usr/bin/python3", home=tmp_path, token_file="/t")
    assert plistlib.loads(launchd.render(plist)) == plist
    assert launchd.plist_path("dev.vm-operator", tmp_path) == (
        tmp_path / "Library" / "LaunchAgents" / "dev.vm-operator.plist")


@pytest.mark.parametrize("args", [["--env", "NOEQUALS"], ["--env", "=x"], ["--env", "A B=c"],
                                  ["--port", "0"], ["--port", "70000"]])
def test_bad_options_are_refused(tmp_path: Path, args: list[str]) -> None:
    with pytest.raises(SystemExit):
        launchd.main(["print", *args], home=tmp_path)


def test_no_arguments_still_serves_and_launchd_needs_an_action() -> None:
    with pytest.raises(SystemExit) as caught:
        launchd.main([])
    assert caught.value.code == 2


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS")
@pytest.mark.parametrize("action", ["install", "uninstall"])
def test_install_and_uninstall_refuse_off_macos(tmp_path: Path, action: str) -> None:
    result = subprocess.run([sys.executable, "-m", "vm_operator", "launchd", action],
                            cwd=REPO_ROOT, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert "launchd is macOS only" in result.stderr and "launchd print" in result.stderr
    assert not (tmp_path / "Library").exists()


def test_install_and_uninstall_drive_launchctl(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With the platform check and launchctl faked: the file written and the calls made."""
    calls: list[tuple[str, ...]] = []

    def fake_launchctl(*args: str) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        return subprocess.CompletedProcess(["launchctl", *args], 0, "", "")

    monkeypatch.setattr(launchd.sys, "platform", "darwin")
    monkeypatch.setattr(launchd, "_launchctl", fake_launchctl)
    monkeypatch.setattr(launchd.os, "getuid", lambda: 501)
    token = tmp_path / "token"
    token.write_text("a-token-of-some-length-0123456789\n")
    # The agent imports vm_operator from this checkout (an installed copy would need nothing).
    assert launchd.main(["install", "--token-file", str(token), "--env", f"PYTHONPATH={REPO_ROOT}"],
                        home=tmp_path) == 0
    target = tmp_path / "Library" / "LaunchAgents" / "dev.vm-operator.plist"
    written = plistlib.loads(target.read_bytes())
    assert written["EnvironmentVariables"]["VM_OPERATOR_TOKEN_FILE"] == str(token)
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert (tmp_path / "Library" / "Logs" / "vm-operator").is_dir()
    assert calls == [("bootout", "gui/501/dev.vm-operator"), ("enable", "gui/501/dev.vm-operator"),
                     ("bootstrap", "gui/501", str(target))]
    calls.clear()
    assert launchd.main(["uninstall"], home=tmp_path) == 0
    assert calls == [("bootout", "gui/501/dev.vm-operator")]
    assert not target.exists()


def test_install_refuses_an_interpreter_without_vm_operator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launchd.sys, "platform", "darwin")
    monkeypatch.setattr(launchd, "_launchctl", lambda *a: pytest.fail("launchctl called"))
    with pytest.raises(SystemExit, match="cannot import vm_operator"):
        launchd.main(["install", "--python", "/usr/bin/python3"], home=tmp_path)


def test_install_refuses_a_missing_token_file(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launchd.sys, "platform", "darwin")
    monkeypatch.setattr(launchd, "_launchctl", lambda *a: pytest.fail("launchctl called"))
    with pytest.raises(SystemExit, match="not readable"):
        launchd.main(["install", "--token-file", str(tmp_path / "absent")], home=tmp_path)
    assert not (tmp_path / "Library" / "LaunchAgents").exists()
