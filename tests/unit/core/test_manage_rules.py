"""The pure rules of deleting, reconfiguring and pruning (core/vm_manage.py, core/images.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from vm_operator.api.images import PRUNE, PULL, PruneBody
from vm_operator.api.params import IMAGE_REF
from vm_operator.api.vm_manage import PATCH, PatchBody
from vm_operator.core.images import pruned_note
from vm_operator.core.vm_manage import VmPatch, tart_change
from vm_operator.edge.body import Body
from vm_operator.edge.errors import ApiError
from vm_operator.tart.names import OCI_PATTERN, name_problem
from vm_operator.tart.records import Image


@pytest.mark.parametrize(("patch", "empty"), [
    (VmPatch(), True),
    (VmPatch(random_mac=False), True),
    (VmPatch(random_mac=True), False),
    (VmPatch(cpu=4), False),
    (VmPatch(memory_mb=8192), False),
    (VmPatch(disk_gb=60), False),
    (VmPatch(display="1920x1080"), False),
])
def test_a_patch_is_empty_when_it_asks_for_nothing(patch, empty):
    assert patch.empty is empty


@pytest.mark.parametrize(("patch", "disk_gb", "sent"), [
    # no disk change, or one that grows or keeps the disk: the whole patch
    (VmPatch(cpu=6), 50, VmPatch(cpu=6)),
    (VmPatch(cpu=6, disk_gb=80), 50, VmPatch(cpu=6, disk_gb=80)),
    (VmPatch(cpu=6, disk_gb=50), 50, VmPatch(cpu=6, disk_gb=50)),
    # a shrink: only the disk, which Tart refuses before it saves anything else
    (VmPatch(cpu=6, display="800x600", random_mac=True, disk_gb=40), 50, VmPatch(disk_gb=40)),
    (VmPatch(disk_gb=10), 50, VmPatch(disk_gb=10)),
])
def test_tart_is_sent_the_whole_patch_unless_it_shrinks_the_disk(patch, disk_gb, sent):
    assert tart_change(patch, disk_gb) == sent


def image(ref: str) -> Image:
    return Image(ref=ref, kind="digest" if "@" in ref else "tag", disk_gb=50, size_gb=30,
                 accessed=None)


@pytest.mark.parametrize(("before", "after", "note"), [
    (["a/x:1"], ["a/x:1"], "nothing to prune: every cached image meets the criteria"),
    ([], [], "nothing to prune: every cached image meets the criteria"),
    (["a/x:1", "a/y:2"], ["a/y:2"], "removed 1 cached image reference: a/x:1"),
    (["a/y:2", "a/x:1", "a/x@sha256:1"], [],
     "removed 3 cached image references: a/x:1, a/x@sha256:1, a/y:2"),
    ([f"r/i:{n:02d}" for n in range(12)], [], "removed 12 cached image references: "
     + ", ".join(f"r/i:{n:02d}" for n in range(10)) + " and 2 more"),
])
def test_a_prune_says_what_it_removed(before, after, note):
    assert pruned_note([image(r) for r in before], [image(r) for r in after]) == note


# --- the bodies of PATCH /vms/{name}, POST /images, POST /images/prune ----------------------

MERGE = "application/merge-patch+json"


def refusal(body: Body[Any], data: bytes, media: str = "application/json") -> tuple[int, Any]:
    with pytest.raises(ApiError) as caught:
        body.parse(data, media)
    return caught.value.status, caught.value.extra.get("errors")


def refused_at(body: Body[Any], data: bytes, media: str = "application/json") -> list[str]:
    """The JSON pointers of the fields a body is refused for (400 Bad Request)."""
    status, errors = refusal(body, data, media)
    assert status == 400, status
    return [error["pointer"] for error in errors]


@pytest.mark.parametrize(("data", "media", "patch"), [
    (b'{"cpu": 6}', MERGE, PatchBody(cpu=6)),
    (b'{"cpu": 6}', "application/json; charset=utf-8", PatchBody(cpu=6)),
    (b'{"memory_mb": 512, "disk_gb": 4096}', MERGE, PatchBody(memory_mb=512, disk_gb=4096)),
    (b'{"display": "1920x1080", "random_mac": true}', MERGE,
     PatchBody(display="1920x1080", random_mac=True)),
    (b'{"random_mac": false}', MERGE, PatchBody()),
])
def test_a_patch_body(data, media, patch):
    assert PATCH.parse(data, media) == patch


@pytest.mark.parametrize(("field", "value"), [
    ("cpu", 0), ("cpu", 65), ("cpu", 4.5), ("cpu", None),
    ("memory_mb", 511), ("memory_mb", 1048577), ("disk_gb", 4097),
    ("display", "1920 x 1080"), ("display", "01920x1080"), ("display", "1920x1080pt"),
    ("display", 1920), ("random_mac", 1),
])
def test_a_wrong_patch_value_is_named_at_its_field(field, value):
    assert refused_at(PATCH, json.dumps({field: value}).encode(), MERGE) == [f"/{field}"]


@pytest.mark.parametrize(("data", "pointers"), [
    (b"{}", [""]),
    (b'{"cpu": 0, "os": "linux"}', ["/os", "/cpu"]),
])
def test_a_wrong_patch_names_each_wrong_field(data, pointers):
    assert refused_at(PATCH, data, MERGE) == pointers


def test_a_patch_is_json_and_nothing_else():
    assert refusal(PATCH, b'{"cpu": 4}', "text/plain")[0] == 415
    assert refusal(PULL, b'{"ref": "ghcr.io/a/b:c"}', MERGE)[0] == 415  # not a patch


@pytest.mark.parametrize(("data", "result"), [
    (b'{"ref": "ghcr.io/cirruslabs/ubuntu:jammy"}', ("ghcr.io/cirruslabs/ubuntu:jammy", False)),
    (b'{"ref": "registry.local:5000/a/b@sha256:00", "insecure": true}',
     ("registry.local:5000/a/b@sha256:00", True)),
])
def test_a_pull_body(data, result):
    pull = PULL.parse(data, "application/json")
    assert (pull.ref, pull.insecure) == result


@pytest.mark.parametrize(("data", "pointers"), [
    (b"{}", ["/ref"]),
    (b'{"ref": "ubuntu-runner"}', ["/ref"]),  # a local name: no '/'
    (b'{"ref": "-x/y"}', ["/ref"]),
    (b'{"ref": "a//b"}', ["/ref"]),
    (b'{"ref": "ghcr.io/a/b", "insecure": "yes"}', ["/insecure"]),
])
def test_a_wrong_pull_names_the_field(data, pointers):
    assert refused_at(PULL, data) == pointers


@pytest.mark.parametrize(("data", "prune"), [
    (b'{"older_than_days": 0}', PruneBody(older_than_days=0)),
    (b'{"space_budget_gb": 100}', PruneBody(space_budget_gb=100)),
    (b'{"older_than_days": 30, "space_budget_gb": 0}', PruneBody(30, 0)),
])
def test_a_prune_body(data, prune):
    assert PRUNE.parse(data, "application/json") == prune


@pytest.mark.parametrize(("data", "pointers"), [
    (b"{}", [""]),
    (b'{"older_than_days": -1}', ["/older_than_days"]),
    (b'{"space_budget_gb": "1"}', ["/space_budget_gb"]),
    (b'{"entries": "vms"}', ["/entries"]),
])
def test_a_wrong_prune_names_the_field(data, pointers):
    assert refused_at(PRUNE, data) == pointers


def test_the_published_bodies_say_at_least_one_field():
    assert PATCH.schema()["minProperties"] == 1 and PRUNE.schema()["minProperties"] == 1
    assert "minProperties" not in PULL.schema()
    assert PULL.schema()["properties"]["ref"]["pattern"] == OCI_PATTERN  # type: ignore[index]


@pytest.mark.parametrize("name", [
    "ghcr.io/cirruslabs/ubuntu:jammy", "a/b", "a/b@sha256:00", "localhost:5000/x/y:1", "a/.b",
    "ubuntu-runner", "a", "a/", "/a", "a//b", "-a/b", "a/./b", "a/../b", "a/b c", ".", "a/b/..",
])
def test_the_published_image_pattern_is_the_rule(name):
    rule = IMAGE_REF.from_json
    try:
        rule("ref", name)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == (re.fullmatch(OCI_PATTERN.strip("^$"), name) is not None)
    assert accepted == (name_problem(name) is None and "/" in name)
