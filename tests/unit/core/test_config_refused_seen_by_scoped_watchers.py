"""What a watcher limited to VM patterns is told of a ``config.refused`` (``Event.seen_by``):
the error, line and key only when the refusal is about an entry ``[vms.NAME]`` it may touch
(``FleetError.vm``, set by the parser); else that the file was refused, nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from vm_operator.core.event_catalogue import REFUSED_ELSEWHERE, Withheld
from vm_operator.core.events import Event
from vm_operator.core.fleet import FleetError, parse_fleet


def _refused(error: FleetError) -> Event:
    return Event(3, "config.refused", "2026-12-07T10:00:00.000Z", None,
                 {"file": "vms.toml", "error": error.reason, "line": error.line,
                  "key": error.key}, withheld=Withheld(error.vm, REFUSED_ELSEWHERE))


def _refusal(text: str) -> FleetError:
    with pytest.raises(FleetError) as refused:
        parse_fleet(text)
    return refused.value


BAD_CPU = '[vms.{}]\nfrom = "base"\ncpu = "many"\n'


@pytest.mark.parametrize(("text", "about"), [
    (BAD_CPU.format("ci-1"), "ci-1"),
    (BAD_CPU.format("prod"), "prod"),
    ('[vms."prod.x"]\nfrom = "base"\nrestart = "sometimes"\n', "prod.x"),
    ("[vms.prod]\ncpu = 2\n", "prod"),  # from is missing
    ("[vms.prod]\nfrom = 'base'\n[vms.prod]\n", None),  # TOML's own error
    ("prune = 1\n", None),
    ("[prod]\n", None),
])
def test_the_parser_says_which_entry_a_refusal_is_about(text: str, about: str | None) -> None:
    assert _refusal(text).vm == about


def _ci(name: str) -> bool:
    return name.startswith("ci-")


@pytest.mark.parametrize(("text", "may_touch", "whole"), [
    (BAD_CPU.format("ci-1"), _ci, True),
    (BAD_CPU.format("prod"), _ci, False),
    (BAD_CPU.format("prod"), lambda name: name == "prod", True),
    (BAD_CPU.format("prod"), lambda name: True, True),
    ("[vms.ci-1]\nfrom = 'base'\n[vms.ci-1]\n", _ci, False),  # not known to be about ci-1
    ("prune = 1\n", lambda name: True, False),  # about no VM: a scoped watcher is not told
])
def test_a_refusal_is_told_whole_only_about_the_watchers_vms(text: str, may_touch: Any,
                                                             whole: bool) -> None:
    event = _refused(_refusal(text))
    seen = event.seen_by(may_touch)
    assert seen is not None and (seen.id, seen.type, seen.vm) == (event.id, "config.refused", None)
    if whole:
        assert seen.data == event.data
    else:
        assert seen.data == {**event.data, **REFUSED_ELSEWHERE}
        assert seen.data["file"] == "vms.toml" and seen.withheld is None


def test_an_unscoped_watcher_is_told_the_event_as_published() -> None:
    event = _refused(_refusal(BAD_CPU.format("prod")))
    assert event.to_json()["data"] == {"file": "vms.toml", "error": event.data["error"],
                                       "line": 3, "key": "vms.prod.cpu"}
