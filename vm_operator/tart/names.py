"""VM names: which may reach Tart.

A name is passed to Tart as a command-line argument, so everything here is about
making sure an HTTP client can never turn a name into an option, a path outside
Tart's storage, or a string that looks like one VM and names another.

The rules are printable ASCII only, so that they can be stated exactly as one
regular expression (``NAME_PATTERN``, published in /openapi.json) and so that no
two names look alike: Tart's local names and OCI references are ASCII in practice.
"""

from __future__ import annotations

from typing import Self

MAX_NAME_LENGTH = 255
FIRST_CHAR, LAST_CHAR = "!", "~"  # the printable ASCII characters: U+0021 to U+007E

# The rules of ``name_problem`` in words: the name parameter's description in /openapi.json, and
# (word for word, tests/unit/tart/test_names.py checks) the problem type invalid-name's page.
NAME_RULE = (f"1 to {MAX_NAME_LENGTH} printable ASCII characters (U+{ord(FIRST_CHAR):04X} to "
             f"U+{ord(LAST_CHAR):04X}: no spaces, controls or non-ASCII), not starting with '-', "
             "and no empty, '.' or '..' segment between '/'")

# The same rules as ``name_problem``, as a pattern that means the same in ECMA-262 (JSON Schema)
# and Python: segments separated by '/', each made of the printable ASCII characters U+0021-U+007E
# other than '/', none empty, '.' or '..', the first not starting with '-'. A segment either
# starts with a character other than '.', or is '.' followed by one other than '.', or is '..'
# followed by at least one more character. The length (1-255) is maxLength/minLength beside it.
_ANY = "[!-.0-~]"  # printable ASCII but '/'
_NOT_DOT = "[!-\\-0-~]"  # ... and not '.'
_SEGMENT_TAIL = f"\\.{_NOT_DOT}{_ANY}*|\\.\\.{_ANY}+"
_FIRST = f"(?:[!-,0-~]{_ANY}*|{_SEGMENT_TAIL})"  # the first segment: not '-' either
_SEGMENT = f"(?:{_NOT_DOT}{_ANY}*|{_SEGMENT_TAIL})"
NAME_PATTERN = f"^{_FIRST}(?:/{_SEGMENT})*$"
OCI_PATTERN = f"^{_FIRST}(?:/{_SEGMENT})+$"  # a name with a '/': an OCI reference
LOCAL_NAME_PATTERN = f"^{_FIRST}$"  # a local VM's name: one segment, no '/'


class InvalidName(ValueError):
    """The name cannot be used; the message says why, for the client."""


def name_problem(name: str) -> str | None:
    """Return why ``name`` may not reach Tart, or None when it may."""
    if not name:
        return "the VM name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"the VM name is longer than {MAX_NAME_LENGTH} characters"
    for char in name:
        if not FIRST_CHAR <= char <= LAST_CHAR:
            return (f"the VM name holds a character outside printable ASCII (U+{ord(char):04X}); "
                    f"names use the characters U+{ord(FIRST_CHAR):04X} to U+{ord(LAST_CHAR):04X}: "
                    "no spaces, controls or non-ASCII")
    if name.startswith("-"):
        return "a VM name may not start with '-'"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "the VM name holds an empty, '.' or '..' path segment"
    return None


class VmName(str):
    """A VM name that may reach Tart. It can only be built through the rules: ``VmName(text)``
    raises InvalidName for any other text, so a function that takes a VmName (every Tart
    command that names a VM does) can only be given a validated name."""

    __slots__ = ()

    def __new__(cls, name: str) -> Self:
        problem = name_problem(name)
        if problem is not None:
            raise InvalidName(problem)
        return super().__new__(cls, name)


def validate_name(name: str) -> VmName:
    """``name`` as a VmName when it is safe to pass to Tart, else raise InvalidName."""
    return VmName(name)
