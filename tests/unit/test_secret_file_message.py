"""The one-line start-up error for a token file the operator cannot read (config.py).

The Docker tier (tests/docker/test_compose_recipes.py) sees the same line from a real container.
"""

import errno
import os

import pytest

from vm_operator.config import load_config
from vm_operator.tokens import unreadable_secret_file

PATH = "/run/secrets/vm_operator_token"


@pytest.mark.parametrize(
    ("exc", "wanted", "unwanted"),
    [
        (PermissionError(errno.EACCES, os.strerror(errno.EACCES)),
         ["VM_OPERATOR_TOKEN_FILE", PATH, "Permission denied", "runs as UID 10001 (GID 10001)",
          "setfacl -m u:10001:r FILE"], []),
        (FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)),
         ["VM_OPERATOR_TOKEN_FILE", PATH, "No such file or directory"], ["UID", "setfacl"]),
        (IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)),
         ["Is a directory"], ["UID"]),
    ],
    ids=["permission", "missing", "directory"],
)
def test_message_names_file_reason_and_for_permissions_the_user(
        exc: OSError, wanted: list[str], unwanted: list[str]) -> None:
    message = unreadable_secret_file("VM_OPERATOR_TOKEN_FILE", PATH, exc, uid=10001, gid=10001)
    assert "\n" not in message and message.startswith("vm-operator: cannot read ")
    for part in wanted:
        assert part in message, (part, message)
    for part in unwanted:
        assert part not in message, (part, message)


def test_load_config_stops_with_it(tmp_path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SystemExit) as stop:
        load_config([], {"HOME": str(tmp_path), "VM_OPERATOR_READ_TOKEN_FILE": str(missing)})
    assert str(stop.value) == ("vm-operator: cannot read VM_OPERATOR_READ_TOKEN_FILE "
                               f"({missing}): No such file or directory")
