"""The tokens file (``--tokens-file``): named tokens with roles and VM patterns.

``parse_tokens`` is pure: the TOML text to the tokens, or ``TokensRefused`` naming the line
and the key (the file is refused whole). ``NamedTokens`` holds the tokens in force: replaced
whole by a good file, kept when a reload is refused. A token is never stored, only the hex
SHA-256 of it; a presented token is hashed and compared to every entry in constant time.

    [[token]]
    name = "ci-runner"
    sha256 = "<hex SHA-256 of the token>"
    roles = ["read", "write"]        # read | write | connect | admin
    vms = ["ci-*"]                   # optional: shell patterns of the VMs it may touch
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from dataclasses import dataclass

from vm_operator.edge.authz import Caller, Role

MAX_TOKENS_FILE = 1024 * 1024
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
KEYS = ("name", "sha256", "roles", "vms")
RESERVED = frozenset({"token", "read-token", "anonymous"})  # the audit log's other names


class TokensRefused(Exception):
    """The tokens file is refused whole: ``line`` (1-based) and ``key`` say where, when known."""

    def __init__(self, reason: str, line: int | None = None, key: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.key = key
        where = [f"line {line}"] if line is not None else []
        where += [f"key {key}"] if key is not None else []
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


@dataclass(frozen=True)
class NamedToken:
    name: str
    digest: bytes  # SHA-256 of the token
    roles: frozenset[Role]
    vms: tuple[str, ...] | None = None

    @property
    def caller(self) -> Caller:
        return Caller(self.name, self.roles, self.vms)


def digest_of(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)")


def _token_lines(text: str) -> list[int]:
    """The line of each ``[[token]]`` header, in order."""
    return [number for number, line in enumerate(text.splitlines(), start=1)
            if re.fullmatch(r"\s*\[\[\s*token\s*\]\]\s*(#.*)?", line)]


def _key_line(text: str, entry_line: int, key: str) -> int:
    """The line where ``key = …`` is written in the entry that starts at ``entry_line``."""
    lines = text.splitlines()
    for number in range(entry_line + 1, len(lines) + 1):
        line = lines[number - 1].strip()
        if line.startswith("["):
            break
        if re.match(rf"{re.escape(key)}\s*=", line) or re.match(rf'"{re.escape(key)}"\s*=', line):
            return number
    return entry_line


def parse_tokens(text: str) -> tuple[NamedToken, ...]:
    """The tokens of a tokens file, or ``TokensRefused`` with the line and the key."""
    import tomllib  # here: an operator without a tokens file never holds the TOML parser

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_AT.search(str(exc))
        line = int(found.group(1)) if found else None
        raise TokensRefused(f"not valid TOML: {_TOML_AT.sub('', str(exc)).strip()}", line) from None
    unknown = sorted(set(data) - {"token"})
    if unknown:
        raise TokensRefused("unknown key: the file holds only [[token]] entries", None, unknown[0])
    entries = data.get("token", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise TokensRefused("must be [[token]] entries (an array of tables)", None, "token")
    headers = _token_lines(text)
    tokens: list[NamedToken] = []
    for index, entry in enumerate(entries):
        start = headers[index] if index < len(headers) else None
        tokens.append(_entry(text, entry, index, start))
    names = [token.name for token in tokens]
    for index, name in enumerate(names):
        if name in names[:index]:
            start = headers[index] if index < len(headers) else None
            raise TokensRefused(f"the name {name!r} is given twice",
                                start and _key_line(text, start, "name"), f"token[{index}].name")
    digests = [token.digest for token in tokens]
    for index, digest in enumerate(digests):
        if digest in digests[:index]:
            start = headers[index] if index < len(headers) else None
            raise TokensRefused("the same token (sha256) is given twice",
                                start and _key_line(text, start, "sha256"),
                                f"token[{index}].sha256")
    return tuple(tokens)


def _entry(text: str, entry: dict[str, object], index: int, start: int | None) -> NamedToken:
    def refused(reason: str, key: str) -> TokensRefused:
        line = _key_line(text, start, key) if start is not None else None
        return TokensRefused(reason, line, f"token[{index}].{key}")

    for key in entry:
        if key not in KEYS:
            raise refused(f"unknown key (known: {', '.join(KEYS)})", key)
    for key in ("name", "sha256", "roles"):
        if key not in entry:
            raise TokensRefused(f"token[{index}] has no {key}", start, f"token[{index}].{key}")
    name = entry["name"]
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise refused("must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a "
                      "letter or digit", "name")
    if name in RESERVED:
        raise refused(f"{name!r} is reserved (the audit log's name for the legacy tokens and "
                      "for no token)", "name")
    sha = entry["sha256"]
    if not isinstance(sha, str) or not HEX_DIGEST.fullmatch(sha.lower()):
        raise refused("must be the hex SHA-256 of the token (64 hex digits), never the token",
                      "sha256")
    roles = entry["roles"]
    known = ", ".join(role.value for role in Role)
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise refused(f"must be a non-empty list of roles ({known})", "roles")
    try:
        parsed = frozenset(Role(role) for role in roles)
    except ValueError:
        bad = next(role for role in roles if role not in Role.__members__.values())
        raise refused(f"unknown role {bad!r} (known: {known})", "roles") from None
    vms = entry.get("vms")
    if vms is not None and (not isinstance(vms, list) or not vms
                            or not all(isinstance(v, str) and v for v in vms)):
        raise refused("must be a non-empty list of shell patterns of VM names, e.g. [\"ci-*\"]",
                      "vms")
    return NamedToken(name, bytes.fromhex(sha), parsed,
                      tuple(vms) if isinstance(vms, list) else None)


def read_tokens(path: str) -> tuple[NamedToken, ...]:
    """The tokens of the file at ``path``, or ``TokensRefused`` (unreadable, too large, not
    UTF-8, bad)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TOKENS_FILE + 1)
    except OSError as exc:
        raise TokensRefused(f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_TOKENS_FILE:
        raise TokensRefused(f"is larger than {MAX_TOKENS_FILE} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokensRefused("not UTF-8 text (a TOML file is UTF-8)",
                            data[:exc.start].count(b"\n") + 1) from None
    return parse_tokens(text)


class NamedTokens:
    """The named tokens in force (thread-safe): replaced whole by ``reload``, which leaves
    them as they were when the file is refused."""

    def __init__(self, path: str | None = None, tokens: tuple[NamedToken, ...] = ()) -> None:
        self.path = path
        self._tokens = tokens
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether a tokens file is configured (then every request needs a token)."""
        return self.path is not None

    def reload(self) -> int:
        """Read the file again; the number of tokens now in force. ``TokensRefused``: the
        previous tokens stay in force."""
        if self.path is None:
            return 0
        tokens = read_tokens(self.path)
        with self._lock:
            self._tokens = tokens
        return len(tokens)

    @property
    def in_force(self) -> tuple[NamedToken, ...]:
        """The tokens in force, replaced whole by each reload that reads a token (what an
        admission kept under them is not used after it: ``edge/admitted.py``)."""
        return self._tokens

    def find(self, presented: str) -> Caller | None:
        """The caller whose token this is: compared with every entry in constant time."""
        digest = digest_of(presented)
        with self._lock:
            tokens = self._tokens
        found = None
        for token in tokens:
            if hmac.compare_digest(digest, token.digest):
                found = token
        return found.caller if found is not None else None
