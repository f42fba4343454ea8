"""Which Tart home an operator serves, named the same way wherever it is asked (pure).

Tart keeps its VMs under ``$TART_HOME`` (default ``~/.tart``). The operator's state (specs,
run records, logs, operations) is about the VMs of one such home, so the state directory
records the home it serves (``wiring.claim_state_dir``) and the default state directory is one
per home (``config.default_state_dir``). A home is named by ``home_label``:

- locally: the absolute, resolved path of ``$TART_HOME`` (else ``$HOME/.tart``);
- over SSH: ``ssh://USER@HOST:PORT``, the host as the operator reaches it; Tart there uses the
  home its login sets (``$TART_HOME`` there, else ``~/.tart``), which is that user's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from vm_operator.tart.ssh_settings import SshSettings

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def local_tart_home(env: Mapping[str, str]) -> Path:
    """``$TART_HOME`` as Tart reads it, else ``~/.tart``."""
    home = env.get("TART_HOME", "").strip()
    if home:
        return Path(home)
    return Path(env.get("HOME") or Path.home()) / ".tart"


def home_label(env: Mapping[str, str], ssh: SshSettings | None) -> str:
    """The Tart home the operator serves, as one line (see the module's docstring)."""
    if ssh is not None:
        return f"ssh://{ssh.destination}:{ssh.port}"
    return str(local_tart_home(env).expanduser().resolve())


def home_folder(label: str) -> str:
    """A folder name for the state of the home ``label``: readable, and unique (a hash of the
    whole label ends it)."""
    readable = _UNSAFE.sub("-", label).strip("-.")[:48] or "home"
    return f"{readable}-{hashlib.sha256(label.encode()).hexdigest()[:12]}"
