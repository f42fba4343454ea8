"""The Tart adapter's lifecycle commands, the pure parts: the OCI cache listing, the disk line,
the classification of Tart's refusals, and the argument lists the commands build."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from vm_operator.tart.commands import Tart
from vm_operator.tart.errors import (
    TartAlreadyRunning,
    TartCommandError,
    TartImageMissing,
    TartInvalidResources,
    TartNotLocalName,
    TartNotRunning,
    TartVmExists,
    TartVmIsRunning,
    TartVmMissing,
    command_error,
)
from vm_operator.tart.parse import TartBadOutput, parse_disk, parse_image_list
from vm_operator.tart.records import HostDisk, Image
from vm_operator.tart.transport import OutputSink, StartedSink

DIGEST = "ghcr.io/cirruslabs/ubuntu@sha256:" + "ab" * 32
TAG = "ghcr.io/cirruslabs/ubuntu:latest"


def entry(name: str, source: str = "OCI", **extra: object) -> dict[str, object]:
    return {"Source": source, "Name": name, "Disk": 20, "Size": 4,
            "Accessed": "2026-01-02T03:04:05Z", "Running": False, "State": "stopped", **extra}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], []),
        ([entry(TAG)], [Image(TAG, "tag", 20, 4, "2026-01-02T03:04:05Z")]),
        ([entry(DIGEST)], [Image(DIGEST, "digest", 20, 4, "2026-01-02T03:04:05Z")]),
        # Tart 2.15-2.30: no Accessed
        ([{k: v for k, v in entry(TAG, SizeOnDisk=3).items() if k != "Accessed"}],
         [Image(TAG, "tag", 20, 4, None)]),
        # a local entry (never printed with --source oci) is not an image
        ([entry("macos-ci", "local"), entry(TAG)],
         [Image(TAG, "tag", 20, 4, "2026-01-02T03:04:05Z")]),
    ],
)
def test_the_oci_cache_as_typed_images(rows: list[dict[str, object]],
                                       expected: list[Image]) -> None:
    assert parse_image_list(json.dumps(rows)) == expected


def test_an_image_as_json() -> None:
    assert Image(TAG, "tag", 20, 4, None).to_json() == {
        "ref": TAG, "kind": "tag", "disk_gb": 20, "size_gb": 4, "accessed": None}


@pytest.mark.parametrize("text", ["", "{}", "[1]", json.dumps([{"Source": "OCI"}])])
def test_a_cache_listing_that_is_not_tarts(text: str) -> None:
    with pytest.raises(TartBadOutput):
        parse_image_list(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Users/me/.tart\n/dev/disk3s5  971350180 512000000 400000000    57%    /System/Volumes/Data\n",
         HostDisk("/Users/me/.tart", 971350180 * 1024, 400000000 * 1024)),
        # a file system and a mount point with spaces in their names
        ("/tmp/t h\nmap auto home  100 40 60 40% /Volumes/My Disk\n",
         HostDisk("/tmp/t h", 100 * 1024, 60 * 1024)),
    ],
)
def test_the_disk_line(text: str, expected: HostDisk) -> None:
    assert parse_disk(text) == expected


@pytest.mark.parametrize("text", ["", "/home\n", "/home\nFilesystem 1024-blocks Used\n",
                                  "\n/dev/x 1 2 3 4% /\n"])
def test_a_disk_answer_that_is_not_df(text: str) -> None:
    with pytest.raises(TartBadOutput):
        parse_disk(text)


# Tart's messages (TART_FACTS.md, lifecycle table), as the simulator prints them.
@pytest.mark.parametrize(
    ("message", "code", "kind"),
    [
        ('the specified VM "a" does not exist', 2, TartVmMissing),
        ('VM "a" is running', 1, TartVmIsRunning),
        ('VM "a" is not running', 2, TartNotRunning),
        ('VM "a" is already running!', 2, TartAlreadyRunning),
        ('VM "a" already exists', 1, TartVmExists),
        ("Error: failed to rename VM a, target VM b already exists, delete it first!", 64,
         TartVmExists),
        ("Error: failed to rename a non-existent local VM: a", 64, TartVmMissing),
        (("Error: LessThanMinimalResourcesError: VM should have 4 CPU cores at minimum "
         "(requested 2)"), 1, TartInvalidResources),
        (("Error: LessThanMinimalResourcesError: VM should have 8589934592 bytes of memory at "
         "minimum (requested 1073741824)"), 1, TartInvalidResources),
        ("new disk size of 10 GB should be larger than the current disk size of 50 GB", 1,
         TartInvalidResources),
        ("New disk size of 10 GB should be larger than the current disk size of 50 GB", 1,
         TartInvalidResources),
        ("Error: <new-name> should be a local name", 64, TartNotLocalName),
        (('Error: UnexpectedHTTPStatusCode(when: "pulling manifest", code: 404, details: '
         '"{\\"errors\\":[{\\"code\\":\\"MANIFEST_UNKNOWN\\",\\"message\\":\\"manifest '
         'unknown\\"}]}")'), 1, TartImageMissing),
        ("Error: at least one pruning criteria must be specified", 64, TartCommandError),
    ],
)
def test_tarts_lifecycle_refusals_are_classified(message: str, code: int,
                                                 kind: type[TartCommandError]) -> None:
    error = command_error(message, code)
    assert type(error) is kind
    assert (error.message, error.exit_code) == (message, code)


class Recording:
    """A transport that records the argument lists it is given (and answers ``answer``)."""

    timeout = 10.0

    def __init__(self, answer: str = "") -> None:
        self.answer = answer
        self.calls: list[tuple[list[str], float | None]] = []

    def call(self, args: Sequence[str], timeout: float | None = None) -> str:
        self.calls.append((list(args), timeout))
        return self.answer

    def stream(self, args: Sequence[str], on_output: OutputSink, on_started: StartedSink,
               timeout: float) -> None:
        self.calls.append((list(args), timeout))
        on_output(b"0%\n")


@pytest.mark.parametrize(
    ("command", "argv", "timeout"),
    [
        (lambda t: t.clone("ghcr.io/a/b:1", "ci"), ["clone", "ghcr.io/a/b:1", "ci"], 99.0),
        (lambda t: t.clone("base", "ci", insecure=True), ["clone", "--insecure", "base", "ci"],
         99.0),
        (lambda t: t.pull("reg:5000/a/b:1", insecure=True),
         ["pull", "--insecure", "reg:5000/a/b:1"], 99.0),
        (lambda t: t.set("ci"), ["set", "ci"], None),
        (lambda t: t.set("ci", cpu=4, memory_mb=8192, disk_gb=80, display="1920x1080",
                         random_mac=True),
         ["set", "ci", "--cpu", "4", "--memory", "8192", "--disk-size", "80", "--display",
          "1920x1080", "--random-mac"], None),
        (lambda t: t.set("ci", memory_mb=4096), ["set", "ci", "--memory", "4096"], None),
        (lambda t: t.delete("ci"), ["delete", "ci"], None),
        (lambda t: t.prune(older_than_days=7),
         ["prune", "--entries", "caches", "--older-than", "7"], 99.0),
        (lambda t: t.prune(space_budget_gb=100),
         ["prune", "--entries", "caches", "--space-budget", "100"], 99.0),
        (lambda t: t.list_images(), ["list", "--source", "oci", "--format", "json"], None),
    ],
)
def test_each_command_builds_its_argument_list(command: object, argv: list[str],
                                                timeout: float | None) -> None:
    transport = Recording("[]")
    command(Tart(transport, pull_timeout=99.0))  # type: ignore[operator,arg-type]
    assert transport.calls == [(argv, timeout)]


def test_a_clone_hands_its_output_over() -> None:
    seen: list[bytes] = []
    Tart(Recording(), 5.0).clone("a", "b", on_output=seen.append)  # type: ignore[arg-type]
    assert seen == [b"0%\n"]
