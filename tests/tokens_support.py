"""Named tokens for the API tests: made by ``vm-operator token new`` itself, as a user would."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class NewToken:
    name: str
    token: str  # what the client sends
    entry: str  # the [[token]] entry to paste

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def token_new(name: str, *options: str) -> NewToken:
    """``vm-operator token new NAME OPTIONS``: the token (its first line) and the entry."""
    done = subprocess.run([sys.executable, "-m", "vm_operator", "token", "new", name, *options],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=True)
    token, _, rest = done.stdout.partition("\n")
    return NewToken(name, token, rest)


def tokens_file(path: Path, *tokens: NewToken) -> Path:
    path.write_text("".join(token.entry for token in tokens))
    return path
