"""Where a key of the declarative file is written: the line of a dotted key in a TOML text,
so that a refusal names the line and the key (core/fleet.py). Pure text work: TOML's own
parser tells values, not where they stand.
"""

from __future__ import annotations

import re

_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)|\(at end of document\)")


def error_line(message: str, text: str) -> int | None:
    found = _TOML_AT.search(message)
    if found is None:
        return None
    if found.group(1) is not None:
        return int(found.group(1))
    return max(1, len(text.splitlines()))  # at end of document: the last line


def error_reason(message: str) -> str:
    return _TOML_AT.sub("", message).strip()


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _read_key(text: str, at: int) -> tuple[tuple[str, ...], int] | None:
    """The dotted key that starts at ``at`` in ``text`` (after blanks), and where it ends."""
    parts: list[str] = []
    i = at
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] in "\"'":
            quote = text[i]
            end = i + 1
            while end < len(text) and text[end] != quote:
                end += 2 if quote == '"' and text[end] == "\\" else 1
            if end >= len(text):
                return None
            raw = text[i + 1:end]
            parts.append(raw if quote == "'" else _unescape(raw))
            i = end + 1
        else:
            bare = _BARE.match(text, i)
            if bare is None:
                return None
            parts.append(bare.group())
            i = bare.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        return tuple(parts), i


def _unescape(raw: str) -> str:
    import tomllib  # here: only the line of a fleet file's error needs it

    try:
        value = tomllib.loads(f'k = "{raw}"')["k"]
    except tomllib.TOMLDecodeError:
        return raw
    return value if isinstance(value, str) else raw


def _lines(text: str) -> list[tuple[int, tuple[str, ...] | None]]:
    """Each line's number and the full key it writes (a table header, or a key in its table)."""
    found: list[tuple[int, tuple[str, ...] | None]] = []
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            header = _read_key(stripped, 1)
            if header is not None:
                table = header[0]
                found.append((number, table))
                continue
        key = _read_key(line, 0)
        written = key is not None and line[key[1]:key[1] + 1] == "="
        found.append((number, table + key[0] if key is not None and written else None))
    return found


def key_line(text: str, table: tuple[str, ...], key: str) -> int | None:
    """The line where ``table`` . ``key`` is written: as ``key = …`` in the table, as a header,
    as a dotted key; else the line of the nearest enclosing table or inline table."""
    wanted = (*table, key)
    nearest: tuple[int, int] | None = None  # (length of the matched prefix, line)
    for number, full in _lines(text):
        if full is None:
            continue
        if full[:len(wanted)] == wanted:
            return number
        if wanted[:len(full)] == full and (nearest is None or len(full) > nearest[0]):
            nearest = (len(full), number)
    return nearest[1] if nearest else None


def key_on_line(text: str, line: int | None) -> str | None:
    """The dotted key a line writes (for TOML's own errors), if it writes one."""
    for number, full in _lines(text):
        if number == line:
            return dotted(full) if full else None
    return None


def dotted(parts: tuple[str, ...]) -> str:
    return ".".join(part if _BARE.fullmatch(part) else f'"{part}"' for part in parts)
