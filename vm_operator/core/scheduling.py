"""Which waiting operations may start now: the operations queue's rule, a pure function.

Tart's global lock on its home is held while a clone COPIES (an APFS clone: seconds), not while
it pulls (``../shared/TART_FACTS.md``), so operations run side by side where they touch
nothing in common:

- one operation per VM name and per image at a time: a create holds its new name and its
  source (an image, or the local VM it copies); a pull its image; a delete its VM. A create
  from an image that a pull (or another create) is fetching waits for it, then clones from
  the cache: the download is shared, never made twice.
- a prune may remove any cached image: it runs alone among the operations that use an image
  (pulls, creates from an OCI reference), never beside one; creates from local VMs and
  deletes go on beside it.
- at most ``MAX_PULLS`` operations that may download an image at once (pulls, creates from an
  image not cached when they were asked for): each needs its image's size free on disk, and
  Tart fetches one image per registry host at a time anyway (a second pull from the same
  registry waits inside Tart, "waiting for lock..."), so more would only hold disk and split
  the bandwidth. Two keep a pull from one registry from holding back a pull from another.
- at most ``MAX_RUNNING`` at once in all: beyond that, Tart processes would only queue on its
  global lock.
- first come, first served among operations that conflict: an operation never starts before
  an earlier one it conflicts with, even one still waiting (for the pull bound, say), so a
  prune is not starved by a stream of pulls, nor a create overtaken on its image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vm_operator.vocabulary import OperationKind

__all__ = ["MAX_PULLS", "MAX_RUNNING", "Claim", "claim_of", "conflict", "startable"]

MAX_PULLS = 2
MAX_RUNNING = 4


@dataclass(frozen=True)
class Claim:
    """What an operation works on while it runs."""

    names: frozenset[str] = frozenset()  # VM names and image references, one holder each
    pulls: bool = False  # it may download an image: counts against MAX_PULLS
    whole_cache: bool = False  # it may remove any cached image (a prune)

    @property
    def uses_cache(self) -> bool:
        """Whether it reads or writes Tart's OCI cache (an OCI reference carries a '/')."""
        return self.whole_cache or any("/" in name for name in self.names)


def claim_of(kind: OperationKind, vm: str | None, image: str | None, pulls: bool) -> Claim:
    """An operation's claim, from what it names."""
    names = frozenset(name for name in (vm, image) if name is not None)
    return Claim(names, pulls=pulls, whole_cache=kind == "prune")


def conflict(a: Claim, b: Claim) -> bool:
    """Whether two operations must not run at the same time."""
    if a.names & b.names:
        return True
    return (a.whole_cache and b.uses_cache) or (b.whole_cache and a.uses_cache)


def startable(running: Sequence[Claim], waiting: Sequence[Claim], *,
              max_running: int = MAX_RUNNING, max_pulls: int = MAX_PULLS) -> list[int]:
    """The indices (into ``waiting``, in first-come order) of the waiting operations that may
    start now, beside ``running``."""
    busy = list(running)
    pulling = sum(claim.pulls for claim in running)
    held_back: list[Claim] = []  # earlier waiting ones that stay waiting
    chosen: list[int] = []
    for index, claim in enumerate(waiting):
        if len(busy) >= max_running:
            break
        blocked = (any(conflict(claim, other) for other in busy)
                   or any(conflict(claim, other) for other in held_back)
                   or (claim.pulls and pulling >= max_pulls))
        if blocked:
            held_back.append(claim)
            continue
        chosen.append(index)
        busy.append(claim)
        pulling += claim.pulls
    return chosen


@dataclass(frozen=True)
class QueueStats:
    """How many operations run and wait now, and how many may wait."""

    running: int
    queued: int
    max_queued: int
