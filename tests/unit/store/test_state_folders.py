"""Every valid VM name gets a state folder of its own that the file system accepts."""

import pytest

from vm_operator.store.state import MAX_FOLDER_NAME, RunRecord, StateStore, folder_name

LONG_SLASHES = "a/" * 127 + "a"  # 255 characters that quote to 636
NAMES = [
    "macos-ci",
    "ghcr.io/cirruslabs/macos-sequoia-base:latest",
    "x" * 255,
    LONG_SLASHES,
    "b/" * 127 + "a",
    "%" * 255,
    "%" * 66,  # quotes to exactly MAX_FOLDER_NAME - 2
    "%" * 67,  # the first that is cut
    ":" * 254 + ";",
]


def test_short_names_keep_their_readable_folder() -> None:
    assert folder_name("macos-ci") == "macos-ci"
    assert folder_name("ghcr.io/org/img:tag") == "ghcr.io%2Forg%2Fimg%3Atag"


@pytest.mark.parametrize("name", NAMES)
def test_every_folder_fits_a_file_name(name: str) -> None:
    folder = folder_name(name)
    assert 0 < len(folder.encode()) <= MAX_FOLDER_NAME <= 255
    assert "/" not in folder and folder not in (".", "..")


def test_folders_never_collide() -> None:
    folders = [folder_name(name) for name in NAMES]
    assert len(set(folders)) == len(NAMES)
    # a short name cannot spell a long name's folder: '+' is always escaped in short ones
    crafted = folder_name(LONG_SLASHES)
    assert "+" in crafted and folder_name(crafted) != crafted


@pytest.mark.parametrize("name", NAMES)
def test_logs_and_records_of_long_names_work(tmp_path, name: str) -> None:
    store = StateStore(tmp_path)
    assert store.read_log(name) is None and store.read_last_run(name) is None
    with open(store.prepare_log(name), "wb") as log:
        log.write(b"booted\n")
    record: RunRecord = {"started_at": "2026-11-29T00:00:00.000Z", "pid": 1, "suspendable": False,
                         "finished_at": None, "exit_code": None, "exit_code_known": False,
                         "error": None}
    store.write_last_run(name, record)
    assert store.read_log(name) == b"booted\n"
    assert StateStore(tmp_path).read_last_run(name) == record  # read back from disk
