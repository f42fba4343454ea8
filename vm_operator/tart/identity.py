"""Which VM carries a name: the identity of its directory under the Tart home.

Tart gives a VM no id (``tart list`` and ``tart get`` show none), but every VM lives in its own
directory, ``$TART_HOME/vms/NAME/``, and every ``tart clone`` builds a new one in a temporary
directory and moves it into place: a VM deleted and cloned again under its name has another
directory. Its inode number and birth time tell the two apart (an inode number alone does not:
Linux file systems hand a freed one out again at once), and neither changes while the VM is
started, stopped, suspended, reconfigured (``tart set``) or renamed. A file system that keeps
no birth time reports 0: then the inode number alone is what is compared.

``IDENTITY_SCRIPT`` reads it, the same fixed text wherever Tart runs (locally, or on the host
over SSH): the VM name is its only parameter (``"$1"``), never script text. It works with both
BSD ``stat`` (macOS) and GNU ``stat`` (Linux, where the tests' simulator and sshd run).
"""

from __future__ import annotations

import os

from vm_operator.tart.errors import TartError

IDENTITY_MISSING = 3  # exit code of IDENTITY_SCRIPT: no directory for the VM

# sh -c IDENTITY_SCRIPT vm-operator NAME: "INODE BIRTH" of $TART_HOME/vms/NAME (else
# ~/.tart/vms/NAME); exit 3 when it does not exist. GNU stat knows -c (birth time with
# nanoseconds); BSD stat refuses it and takes -f (birth time in seconds: APFS never hands an
# inode number out again anyway).
IDENTITY_SCRIPT = (
    'd=${TART_HOME:-$HOME/.tart}/vms/$1; '
    f'[ -d "$d" ] || exit {IDENTITY_MISSING}; '
    "if stat -c %i / >/dev/null 2>&1; "
    "then exec stat -L -c '%i %.9W' -- \"$d\"; "
    "else exec stat -L -f '%i %B' -- \"$d\"; fi"
)


def local_vm_name(name: str) -> bool:
    """Whether ``name`` can be a local VM's directory (an OCI reference has a '/')."""
    return "/" not in name and name not in ("", ".", "..")


def identity_of_stat(found: os.stat_result) -> str | None:
    """The identity from a ``stat`` of the directory here, without a process, where the
    platform reports birth times (macOS, where Tart runs: ``st_birthtime``, whole seconds as BSD
    ``stat -f %B`` prints them, so the answer is the script's); None where it does not (Linux
    before Python 3.12: then the script, whose GNU ``stat`` asks ``statx``)."""
    birth = getattr(found, "st_birthtime", None)
    if not isinstance(birth, int | float):
        return None
    return parse_identity(f"{found.st_ino} {int(birth)}")


def parse_identity(text: str) -> str:
    """The script's answer as the identity ``"INODE:BIRTH"``; TartError when it is not one."""
    words = text.split()
    if len(words) != 2 or not words[0].isascii() or not words[0].isdigit():
        raise TartError(f"cannot read the identity of a VM's directory from {text[:80]!r}")
    inode, birth = words
    if birth in ("-", "?"):  # a stat that cannot read birth times
        birth = "0"
    seconds, _, fraction = birth.partition(".")
    if not (seconds.isascii() and seconds.isdigit()) or not (
            fraction == "" or (fraction.isascii() and fraction.isdigit())):
        raise TartError(f"cannot read the birth time of a VM's directory from {text[:80]!r}")
    return f"{int(inode)}:{int(seconds)}.{fraction.rstrip('0') or '0'}"
