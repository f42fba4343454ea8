"""Tart's OCI image cache: list it, pull an image into it, delete an image, prune it.

A pull and a prune are operations (``operations.OperationQueue``): a pull takes minutes for a
macOS image, and its progress is read from Tart's output as it comes (``tart.progress``); pulls
of different images run side by side (``core/scheduling.py``); a prune waits for the clones
from images and the pulls under way, whose images it must not pull the rug from under. Deleting one image is quick, and answered at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from vm_operator.core.errors import ImageNotFound
from vm_operator.core.operations import Job, OperationContext, OperationQueue
from vm_operator.core.parts import Parts
from vm_operator.store.operation_records import Operation
from vm_operator.tart.errors import TartError, TartVmMissing
from vm_operator.tart.names import VmName
from vm_operator.tart.parse import image_of
from vm_operator.tart.progress import PhaseChanged, ProgressChanged, ProgressEvent, ProgressParser
from vm_operator.tart.records import Image
from vm_operator.vocabulary import OperationKind

MAX_NAMED = 10  # images a prune's result names; the rest are counted


def show_progress(ctx: OperationContext, events: Sequence[ProgressEvent]) -> None:
    """Tart's progress, as the operation's: a percentage as it rises."""
    for event in events:
        if isinstance(event, ProgressChanged):
            ctx.set_progress(event.percent)
        elif isinstance(event, PhaseChanged) and event.step == "disk":
            ctx.set_progress(0)


def pruned_note(before: Sequence[Image], after: Sequence[Image]) -> str:
    """The result of a prune: which cached images it removed (references of both forms)."""
    left = {image.ref for image in after}
    gone = sorted(image.ref for image in before if image.ref not in left)
    if not gone:
        return "nothing to prune: every cached image meets the criteria"
    named = ", ".join(gone[:MAX_NAMED])
    more = f" and {len(gone) - MAX_NAMED} more" if len(gone) > MAX_NAMED else ""
    return f"removed {len(gone)} cached image reference{'s' if len(gone) != 1 else ''}: {named}{more}"


class Images:
    """The OCI cache of Tart."""

    def __init__(self, parts: Parts, queue: OperationQueue) -> None:
        self.parts = parts
        self.tart = parts.tart
        self.inventory = parts.inventory
        self.queue = queue

    def _submit(self, kind: OperationKind, job: Job, image: str | None = None) -> Operation:
        return self.queue.submit(kind, job, image=image, pulls=kind == "pull")

    def list_images(self) -> list[Image]:
        """The cache, from the VM listing (it lists the images too): cached as GET /vms is,
        fresh after every change made through the API."""
        return [image_of(vm) for vm in self.inventory.list_vms() if vm["source"] == "oci"]

    def delete(self, ref: VmName) -> None:
        """``tart delete REF`` of an image the cache holds: never of a local VM."""
        if "/" not in ref:  # a local VM's name: never deleted here, Tart not even asked
            raise _not_cached(ref)
        cached = {vm["name"] for vm in self.inventory.list_vms(fresh=True) if vm["source"] == "oci"}
        if ref not in cached:
            raise _not_cached(ref)
        try:
            self.tart.delete(ref)
        except TartVmMissing:
            raise _not_cached(ref) from None
        finally:
            self.inventory.changed()

    def pull(self, ref: VmName, insecure: bool = False) -> Operation:
        """Queue ``tart pull REF``: the operation's progress is the download's."""

        def run(ctx: OperationContext) -> None:
            ctx.set_phase("pulling")
            parser = ProgressParser()
            try:
                self.tart.pull(ref, insecure=insecure,
                               on_output=lambda chunk: show_progress(ctx, parser.feed(chunk)),
                               on_started=ctx.on_cancel)
            except TartError as exc:
                raise self.parts.failure(exc) from None
            finally:
                ctx.on_cancel(None)
                self.inventory.changed()
            show_progress(ctx, parser.close())

        return self._submit("pull", Job(run), image=ref)

    def prune(self, older_than_days: int | None, space_budget_gb: int | None) -> Operation:
        """Queue ``tart prune --entries caches`` with the criteria given (at least one)."""
        if older_than_days is None and space_budget_gb is None:  # the API refuses it (400)
            raise ValueError("a prune needs a criterion")

        def run(ctx: OperationContext) -> None:
            ctx.set_phase("pruning")
            try:
                before = self.tart.list_images()
                self.tart.prune(older_than_days=older_than_days, space_budget_gb=space_budget_gb)
                after = self.tart.list_images()
            except TartError as exc:
                raise self.parts.failure(exc) from None
            finally:
                self.inventory.changed()
            ctx.note(pruned_note(before, after))

        return self._submit("prune", Job(run))


def _not_cached(ref: str) -> ImageNotFound:
    hint = ("" if "/" in ref else
            f"; a local VM is deleted with DELETE /vms/{quote(ref, safe='')}")
    return ImageNotFound(f'Tart\'s cache has no image "{ref}" (GET /images lists it){hint}')
