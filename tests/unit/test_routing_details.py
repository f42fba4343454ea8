"""Routing's pure pieces at their edges (edge/routing.py): the request target split, the 405's
Allow, the strict query and path decoding, word for word."""

from __future__ import annotations

import pytest

from vm_operator.edge.errors import ApiError
from vm_operator.edge.routing import split_target


@pytest.mark.parametrize(("target", "segments", "query"), [
    ("/", [""], ""),
    ("/vms", ["vms"], ""),
    ("/vms/a?x=1", ["vms", "a"], "x=1"),
    ("/vms/a?x=1?y", ["vms", "a"], "x=1?y"),
    ("/vms//a/", ["vms", "", "a", ""], ""),
])
def test_a_target_splits_into_segments_and_query(target: str, segments: list[str],
                                                 query: str) -> None:
    assert split_target(target) == (segments, query)


@pytest.mark.parametrize("target", ["vms", "*", "http://h/vms", "/vms#frag", ""])
def test_a_target_that_is_no_absolute_path_is_refused(target: str) -> None:
    with pytest.raises(ApiError) as caught:
        split_target(target)
    assert (caught.value.slug, caught.value.detail) == (
        "bad-target", "the request target must be an absolute path")
