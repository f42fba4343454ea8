"""The spec store's files: a listing (the reconciler's pass) never removes the temporary file
of a write in flight, only those a crash left."""

from __future__ import annotations

import threading
from pathlib import Path

from vm_operator.store.specs import SpecStore, VmSpec


def spec(name: str) -> VmSpec:
    return VmSpec(name, False, "2026-11-29T00:00:00.000Z")


def test_listing_specs_waits_for_a_write_in_flight_before_removing_its_temporary_file(
        tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "specs")
    store.save(spec("a"))
    in_flight = store.directory / "%tmp-abc123"
    listed: list[list[VmSpec]] = []
    with store._lock:  # a save between its temporary file and its rename
        in_flight.write_bytes(b"{")
        lister = threading.Thread(target=lambda: listed.append(store.all()))
        lister.start()
        lister.join(0.3)
        assert lister.is_alive() and in_flight.exists()  # the save is left to finish
    lister.join(10)
    assert [s.name for s in listed[0]] == ["a"]
    assert not in_flight.exists()  # nobody renamed it: a crash's leftover, removed


def test_saves_and_listings_together_never_fail(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "specs")
    errors: list[BaseException] = []
    stop = threading.Event()

    def list_all() -> None:
        while not stop.is_set():
            store.all()

    def save_many() -> None:
        try:
            for _ in range(300):
                store.save(spec("a"))
        except BaseException as exc:  # noqa: BLE001 - what the test looks for
            errors.append(exc)

    lister = threading.Thread(target=list_all)
    lister.start()
    save_many()
    stop.set()
    lister.join(10)
    assert errors == []


def test_a_spec_is_read_from_disk_once_and_every_write_is_seen(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "specs")
    assert store.load("a") is None
    store.save(spec("a"))
    loaded = store.load("a")
    assert loaded is not None and loaded.ephemeral is False
    store._path("a").write_bytes(b"not json")  # behind its back: the kept spec answers
    assert store.load("a") == loaded
    store.save(VmSpec("a", True, "2026-11-29T00:00:00.000Z"))
    again = store.load("a")
    assert again is not None and again.ephemeral is True
    store.delete("a")
    assert store.load("a") is None


def test_a_spec_that_could_not_be_read_is_read_again(tmp_path: Path) -> None:
    store = SpecStore(tmp_path / "specs")
    store.save(spec("a"))
    store._loaded.clear()  # as a fresh process finds it
    good = store._path("a").read_bytes()
    store._path("a").write_bytes(b"{torn")
    assert store.load("a") is None  # unreadable now (logged) ...
    store._path("a").write_bytes(good)
    found = store.load("a")  # ... not remembered as "no spec"
    assert found is not None and found.name == "a"
