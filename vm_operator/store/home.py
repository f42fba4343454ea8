"""The Tart home a state directory serves: ``<state dir>/tart-home.json``, written whole.

Specs, run records, logs and run locks are kept by VM name, and a name means a VM only within
one Tart home: the same name in another home is another VM. So the first operator to use a
state directory records the home it serves (``tart/home.py``'s label), and an operator of
another home refuses to start with it (``claim``), instead of applying one home's specs,
records and locks to the other's VMs.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from vm_operator.store.atomic import sync_directory

HOME_FILE = "tart-home.json"
FORMAT = 1


class HomeMismatch(Exception):
    """The state directory serves another Tart home (or its record cannot be read)."""

    def __init__(self, served: str | None, reason: str) -> None:
        super().__init__(reason)
        self.served = served
        self.reason = reason


def served_home(root: Path) -> str | None:
    """The home the state directory at ``root`` records; None when it records none yet.
    HomeMismatch when its record cannot be read; OSError from the file system."""
    path = root / HOME_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        raise HomeMismatch(None, f"{path} is not a record of the Tart home it serves") from None
    home = data.get("tart_home") if isinstance(data, dict) else None
    if not isinstance(home, str) or not home:
        raise HomeMismatch(None, f"{path} is not a record of the Tart home it serves")
    return home


def claim(root: Path, home: str) -> None:
    """Make the state directory at ``root`` (it exists) the one of ``home``: record it when it
    records no home yet; HomeMismatch when it serves another. OSError from the file system."""
    served = served_home(root)
    if served == home:
        return
    if served is not None:
        raise HomeMismatch(served, f"it serves the Tart home {served}, not {home}")
    data = json.dumps({"format": FORMAT, "tart_home": home}, ensure_ascii=False).encode()
    # written whole beside it, then linked into place: of two operators that start on a new
    # state directory at once, one records its home, and the other finds it recorded
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".tart-home.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(tmp, root / HOME_FILE)
    except FileExistsError:
        claim(root, home)
        return
    finally:
        os.unlink(tmp)
    sync_directory(root)
