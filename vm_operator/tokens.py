"""Bearer tokens from the environment: a token variable, or a file it names (Docker and
Kubernetes secrets). A token that is set at all must be usable, or start-up stops: an empty
or unreadable secret never means "no authentication"."""

from __future__ import annotations

import os
from collections.abc import Mapping

MIN_TOKEN_LENGTH = 16
MAX_TOKEN_FILE_BYTES = 4096


def let_the_operator_read(exc: OSError, readme: str, uid: int | None = None,
                          gid: int | None = None) -> str:
    """What follows "cannot read FILE: why" when the reason is permissions: as which user the
    operator runs (UID 10001 in the image) and how to let that user read a mounted file."""
    if not isinstance(exc, PermissionError):
        return ""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    return (f"; the operator runs as UID {uid} (GID {gid}): let that user read the file, e.g. on "
            f"the host `setfacl -m u:{uid}:r FILE` (README: {readme})")


def unreadable_secret_file(variable: str, path: str, exc: OSError, uid: int | None = None,
                           gid: int | None = None) -> str:
    """One line: which file could not be read, as which user, and how to let that user read it."""
    message = f"vm-operator: cannot read {variable} ({path}): {exc.strerror or exc}"
    return message + let_the_operator_read(exc, "Tokens in compose", uid, gid)


def _read_token_file(path: str, file_name: str) -> str:
    source = f"{file_name} ({path})"
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise SystemExit(unreadable_secret_file(file_name, path, exc)) from None
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise SystemExit(f"vm-operator: {source} is larger than {MAX_TOKEN_FILE_BYTES} bytes; "
                         "it must hold just the token")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SystemExit(f"vm-operator: {source} is not text; it must hold just the token") from None


def secret(env: Mapping[str, str], name: str) -> str | None:
    """A token from ``NAME`` or from the file named by ``NAME_FILE`` (Docker/Kubernetes secrets).

    Neither set: None (no token). Set at all: it must yield a usable token, or start-up stops;
    an empty value never means "no authentication".
    """
    file_name = f"{name}_FILE"
    value, path = env.get(name), env.get(file_name)
    if value is not None and path is not None:
        raise SystemExit(f"vm-operator: both {name} and {file_name} are set; set only one")
    if path is not None:
        if not path.strip():
            raise SystemExit(f"vm-operator: {file_name} is set but empty; name the token file, "
                             f"or unset {file_name} to run without this token")
        source, setting = f"{file_name} ({path})", file_name
        value = _read_token_file(path, file_name)
    elif value is not None:
        source, setting = name, name
    else:
        return None
    token = value.strip()
    if not token:
        raise SystemExit(f"vm-operator: {source} is empty; put the token there, "
                         f"or unset {setting} to run without this token")
    if len(token) < MIN_TOKEN_LENGTH:
        raise SystemExit(f"vm-operator: {source} is shorter than {MIN_TOKEN_LENGTH} characters")
    if not all(" " <= char <= "~" for char in token):
        raise SystemExit(f"vm-operator: {source} holds a line break, control or non-ASCII "
                         "character, which a client cannot send in an HTTP header; "
                         "use one line of printable ASCII")
    return token
