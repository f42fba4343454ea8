"""vm-operator as a launchd agent of the logged-in Mac user: ``vm-operator launchd ...``.

    vm-operator launchd install   [--token-file F] [--port P] [...]   write the plist, load it
    vm-operator launchd uninstall                                       unload it, remove the plist
    vm-operator launchd print     [same options as install]             the plist, on stdout

A *user agent* (``gui/<uid>`` domain, ``~/Library/LaunchAgents``), not a system daemon:
Tart keeps its VMs in the user's ``~/.tart``, and Virtualization.framework VMs belong to
the user's session. The plist is built as a dict and written with ``plistlib``;
``print`` works everywhere (that is what the tests parse), ``install``/``uninstall``
only on macOS.
"""

from __future__ import annotations

import argparse
import os
import plistlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vm_operator.settings.declare import declared
from vm_operator.settings.table import TLS, Config

LABEL = "dev.vm-operator"
# launchd starts agents with PATH=/usr/bin:/bin:/usr/sbin:/sbin: Homebrew's tart is elsewhere.
AGENT_PATH = "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
LAUNCHCTL = "/bin/launchctl"
LAUNCHCTL_TIMEOUT = 30.0


def plist_path(label: str, home: Path) -> Path:
    return home / "Library" / "LaunchAgents" / f"{label}.plist"


def log_dir(home: Path) -> Path:
    return home / "Library" / "Logs" / "vm-operator"


def build_plist(
    *,
    python: str,
    home: Path,
    label: str = LABEL,
    host: str = "127.0.0.1",
    port: int = 8082,
    token_file: str | None = None,
    read_token_file: str | None = None,
    tart: str | None = None,
    state_dir: str | None = None,
    tls: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The agent's property list (pure): run ``python -m vm_operator`` at login, keep it alive."""
    arguments = [python, "-m", "vm_operator", "--host", host, "--port", str(port)]
    if tart:
        arguments += ["--tart", tart]
    if state_dir:
        arguments += ["--state-dir", state_dir]
    env = {"PATH": AGENT_PATH, "PYTHONUNBUFFERED": "1"}
    if token_file:
        env["VM_OPERATOR_TOKEN_FILE"] = token_file
    if read_token_file:
        env["VM_OPERATOR_READ_TOKEN_FILE"] = read_token_file
    env.update(tls or {})  # VM_OPERATOR_TLS_CERT, _KEY, _CLIENT_CA: HTTPS (README "Security")
    env.update(extra_env or {})
    logs = log_dir(home)
    return {
        "Label": label,
        "ProgramArguments": arguments,
        "EnvironmentVariables": env,
        "WorkingDirectory": str(home),
        "RunAtLoad": True,
        "KeepAlive": True,  # restarted whenever it exits; launchd throttles a crash loop
        "ThrottleInterval": 10,
        # VMs it started run in their own process group: they must outlive the operator.
        "AbandonProcessGroup": True,
        "ProcessType": "Interactive",
        "StandardOutPath": str(logs / "vm-operator.out.log"),
        "StandardErrorPath": str(logs / "vm-operator.err.log"),
    }


def render(plist: dict[str, Any]) -> bytes:
    return plistlib.dumps(plist, fmt=plistlib.FMT_XML, sort_keys=True)


# --- the command (shell) -------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vm-operator launchd",
        description="Run vm-operator as a launchd agent of this Mac user (starts at login, "
        "restarted when it exits).",
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="{install,uninstall,print}")
    for action, text in (("install", "write the agent's plist and load it"),
                         ("print", "print the plist install would write (any OS)")):
        p = sub.add_parser(action, help=text, description=text)
        p.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=8082, help="port (default 8082)")
        p.add_argument("--token-file", help="file holding the full-access token "
                       "(VM_OPERATOR_TOKEN_FILE); strongly recommended")
        p.add_argument("--read-token-file", help="file holding a read-only token")
        for flag, setting in TLS_SETTINGS.items():
            p.add_argument(flag, metavar=setting.spec.metavar,
                           help=f"{setting.spec.help} ({setting.variable})")
        p.add_argument("--tart", help="Tart binary (default: tart on the agent's PATH, "
                       "which includes /opt/homebrew/bin)")
        p.add_argument("--state-dir", help="run logs and last-run records")
        p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                       help="another environment variable for the agent (repeatable)")
        p.add_argument("--python", default=sys.executable,
                       help="interpreter that has vm_operator installed (default: this one)")
        p.add_argument("--label", default=LABEL, help=f"launchd label (default {LABEL})")
    p = sub.add_parser("uninstall", help="unload the agent and remove its plist")
    p.add_argument("--label", default=LABEL, help=f"launchd label (default {LABEL})")
    return parser


# The agent's HTTPS: the server's TLS settings (flag, help, variable), as the table declares them.
TLS_SETTINGS = {setting.flag: setting for setting in declared(Config)
                if setting.spec.section is TLS and setting.flag}


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


def _plist_from(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    extra: dict[str, str] = {}
    for item in args.env:
        name, eq, value = item.partition("=")
        if not eq or not name or not name.replace("_", "").isalnum():
            raise SystemExit(f"vm-operator launchd: --env wants NAME=VALUE, got {item!r}")
        extra[name] = value
    if not 0 < args.port < 65536:
        raise SystemExit("vm-operator launchd: --port must be from 1 to 65535")
    return build_plist(
        python=os.path.abspath(args.python),
        home=home,
        label=args.label,
        host=args.host,
        port=args.port,
        token_file=_absolute(args.token_file),
        read_token_file=_absolute(args.read_token_file),
        tart=_absolute(args.tart) if args.tart and "/" in args.tart else args.tart,
        state_dir=_absolute(args.state_dir),
        tls={setting.variable: str(_absolute(value)) for setting in TLS_SETTINGS.values()
             if (value := getattr(args, setting.name))},
        extra_env=extra,
    )


def _launchctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LAUNCHCTL, *args], capture_output=True, text=True,
                          timeout=LAUNCHCTL_TIMEOUT, stdin=subprocess.DEVNULL, check=False)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _require_macos(action: str) -> None:
    if sys.platform != "darwin":
        raise SystemExit(
            f"vm-operator launchd {action}: launchd is macOS only (this is {sys.platform}). "
            "`vm-operator launchd print` shows the plist anywhere."
        )


def _check_files(plist: dict[str, Any]) -> None:
    env = plist["EnvironmentVariables"]
    for key in ("VM_OPERATOR_TOKEN_FILE", "VM_OPERATOR_READ_TOKEN_FILE",
                *(setting.variable for setting in TLS_SETTINGS.values())):
        path = env.get(key)
        if path and not os.access(path, os.R_OK):
            raise SystemExit(f"vm-operator launchd: {key} {path} does not exist or is not readable")
    program = plist["ProgramArguments"][0]
    # As launchd will run it: from the agent's working directory, with the agent's environment.
    probe = subprocess.run([program, "-c", "import vm_operator"], capture_output=True,
                           cwd=plist["WorkingDirectory"],
                           env={"HOME": os.environ.get("HOME", ""), **env},
                           timeout=30, stdin=subprocess.DEVNULL, check=False)
    if probe.returncode != 0:
        raise SystemExit(f"vm-operator launchd: {program} cannot import vm_operator; "
                         "pass --python with the interpreter it is installed for")


def install(plist: dict[str, Any], home: Path) -> int:
    _require_macos("install")
    _check_files(plist)
    label = plist["Label"]
    env = plist["EnvironmentVariables"]
    if "VM_OPERATOR_TOKEN_FILE" not in env and "VM_OPERATOR_TOKEN" not in env:
        _say("warning: no --token-file: anything on this Mac can start and stop VMs through "
             "the API. See the README's macOS section for creating a token.")
    tart = "--tart" in plist["ProgramArguments"] or shutil.which("tart", path=env["PATH"])
    if not tart:
        _say(f"warning: no tart on {env['PATH']}: install it (brew install cirruslabs/cli/tart) "
             "or pass --tart")
    log_dir(home).mkdir(parents=True, exist_ok=True)
    target = plist_path(label, home)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{label}.")
    with os.fdopen(fd, "wb") as out:
        out.write(render(plist))
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    domain = f"gui/{os.getuid()}"
    _launchctl("bootout", f"{domain}/{label}")  # a reinstall replaces the running agent
    _launchctl("enable", f"{domain}/{label}")
    loaded = _launchctl("bootstrap", domain, str(target))
    if loaded.returncode != 0:
        _say(f"launchctl bootstrap {domain} {target} failed ({loaded.returncode}): "
             f"{(loaded.stderr or loaded.stdout).strip()}")
        return 1
    args = plist["ProgramArguments"]
    host, port = args[args.index("--host") + 1], args[args.index("--port") + 1]
    _say(f"installed {target} and started {label}\n"
         f"  logs:  {plist['StandardErrorPath']}\n"
         f"  check: curl http://{host}:{port}/health\n"
         "  remove: vm-operator launchd uninstall")
    return 0


def uninstall(label: str, home: Path) -> int:
    _require_macos("uninstall")
    target = plist_path(label, home)
    domain = f"gui/{os.getuid()}"
    result = _launchctl("bootout", f"{domain}/{label}")
    if result.returncode not in (0, 3, 113):  # 3/113: it was not loaded
        _say(f"launchctl bootout {domain}/{label}: {(result.stderr or result.stdout).strip()}")
    existed = target.exists()
    target.unlink(missing_ok=True)
    _say(f"{'removed' if existed else 'no'} {target}; {label} is not loaded. "
         f"Logs are kept in {log_dir(home)}. VMs it started keep running (tart stop NAME).")
    return 0


def main(argv: Sequence[str] | None = None, home: Path | None = None) -> int:
    args = _parser().parse_args(argv)
    home = Path.home() if home is None else home
    if args.action == "uninstall":
        return uninstall(args.label, home)
    plist = _plist_from(args, home)
    if args.action == "print":
        sys.stdout.buffer.write(render(plist))
        sys.stdout.flush()
        return 0
    return install(plist, home)
