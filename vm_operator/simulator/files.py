"""Small pieces every command uses: a line of output, a file written whole, a JSON file read
back, a stable hash of a name, times as Tart prints them."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import zlib
from pathlib import Path

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every call
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]  # a parsed JSON object (config.json, the run file)


def say(line: str, err: bool = False) -> None:
    """Print one line and flush, so a log file sees it at once; survive EPIPE."""
    stream = sys.stderr if err else sys.stdout
    try:
        print(line, file=stream, flush=True)
    except OSError:  # reader went away: stop writing, keep the VM alive
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


# tempfile and shutil (about 5 ms of a call's start) are imported by the functions that need
# them, never by `list`, `get` and `ip`: the calls an operator makes most.

def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new directory under ``parent`` named ``prefix`` and random letters."""
    import tempfile
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def rmtree(path: Path) -> None:
    """``shutil.rmtree`` that ignores errors: a directory and what it holds removed, as far as it
    can be (what is gone already is no error)."""
    import shutil
    shutil.rmtree(path, ignore_errors=True)


def atomic_write(path: Path, text: str) -> None:
    """Write via tmp + os.replace so concurrent readers never see half a file."""
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Json | None:
    """Parse a JSON file; None if it vanished or is unreadable (races)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def name_hash(name: str) -> int:
    """64 stable bits per name (zlib is cheaper to import than hashlib)."""
    return zlib.crc32(name.encode()) | zlib.crc32(b"tart-sim:" + name.encode()) << 32


def iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def ago(ts: float) -> str:
    """Prose like Tart's text table: `3 minutes ago`."""
    secs = max(0, int(time.time() - ts))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if secs >= size or unit == "second":
            n = secs // size
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return ""
