"""VM names: decoding them from URL paths and deciding which may reach Tart.

A name is passed to Tart as a command-line argument, so everything here is about
making sure an HTTP client can never turn a name into an option, a path outside
Tart's storage, or a string that looks like one VM and names another.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote_to_bytes

MAX_NAME_LENGTH = 255

# Unicode categories that have no business in a name: controls, format characters
# (zero-width joiners, bidi overrides), separators, private use, unassigned, surrogates.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp", "Zs"})
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class InvalidName(ValueError):
    """The name cannot be used; the message says why, for the client."""


def decode_segment(raw: str) -> str:
    """Percent-decode one path segment strictly: malformed escapes and non-UTF-8 are errors.

    ``urllib.parse.unquote`` silently keeps ``%zz`` and replaces bad UTF-8; a strict
    decoder means two different byte strings can never decode to the same name.
    """
    if _BAD_PERCENT.search(raw):
        raise InvalidName("the path holds an invalid percent-encoding")
    try:
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidName("the path does not decode as UTF-8") from None


def name_problem(name: str) -> str | None:
    """Return why ``name`` may not reach Tart, or None when it may."""
    if not name:
        return "the VM name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"the VM name is longer than {MAX_NAME_LENGTH} characters"
    if name.startswith("-"):
        return "a VM name may not start with '-'"
    if not (name.isascii() and name.isprintable() and " " not in name):
        # printable ASCII but space has no forbidden category and is already NFC
        for char in name:
            if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
                return f"the VM name holds a forbidden character (U+{ord(char):04X})"
        if unicodedata.normalize("NFC", name) != name:
            return "the VM name is not in Unicode normalization form C"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "the VM name holds an empty, '.' or '..' path segment"
    return None


def validate_name(name: str) -> str:
    """Return ``name`` unchanged when it is safe to pass to Tart, else raise InvalidName."""
    problem = name_problem(name)
    if problem is not None:
        raise InvalidName(problem)
    return name
