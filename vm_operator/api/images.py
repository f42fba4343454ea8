"""Tart's OCI image cache: list it, pull into it, delete from it, prune it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from vm_operator.api.app import App
from vm_operator.api.operations import operation_answer
from vm_operator.api.params import IMAGE_PATH, IMAGE_REF
from vm_operator.api.problems import TART_FAILURES
from vm_operator.api.schemas import OPERATION, ref
from vm_operator.core.errors import ImageNotFound, OperationsClosed, OperationsFull
from vm_operator.edge.body import Body, Field
from vm_operator.edge.params import Boolean, Int
from vm_operator.edge.responses import Response, json_response
from vm_operator.edge.routing import Request, Route, Success
from vm_operator.tart.errors import TartVmMissing
from vm_operator.tart.names import VmName
from vm_operator.vocabulary import PRUNE_OLDER_THAN_DAYS, PRUNE_SPACE_BUDGET_GB


@dataclass(frozen=True)
class PullBody:
    ref: Annotated[VmName, Field(IMAGE_REF, "The OCI reference to pull, e.g. "
                                 "ghcr.io/cirruslabs/macos-sequoia-base:latest")]
    insecure: Annotated[bool, Field(Boolean(), "Reach the registry over plain HTTP, or HTTPS "
                                    "without checking its certificate (tart pull --insecure)")
                        ] = False


@dataclass(frozen=True)
class PruneBody:
    older_than_days: Annotated[int | None, Field(
        Int(*PRUNE_OLDER_THAN_DAYS), "Remove the images not used for this many days (tart prune "
        "--older-than)")] = None
    space_budget_gb: Annotated[int | None, Field(
        Int(*PRUNE_SPACE_BUDGET_GB), "Keep the most recently used images that fit in this many GB, remove "
        "the rest (tart prune --space-budget)")] = None


PULL = Body(PullBody, "The image to pull into Tart's cache")
PRUNE = Body(PruneBody, "Which cached images to remove: at least one criterion", min_fields=1)


def list_images(app: App, req: Request) -> Response:
    return json_response(200, [image.to_json() for image in app.service.images.list_images()])


def pull_image(app: App, req: Request) -> Response:
    body = req.get(PULL)
    return operation_answer(202, app.service.images.pull(body.ref, body.insecure))


def delete_image(app: App, req: Request) -> Response:
    app.service.images.delete(req.get(IMAGE_PATH))
    return Response(204, b"", "")


def prune_images(app: App, req: Request) -> Response:
    body = req.get(PRUNE)
    return operation_answer(202, app.service.images.prune(body.older_than_days, body.space_budget_gb))


QUEUED = Success(202, "Queued: the operation (its Location header is its URL)", OPERATION,
                 headers={"Location": {"description": "/operations/{id}: the operation",
                                       "schema": {"type": "string"}}})

ROUTES: tuple[Route[App], ...] = (
    Route("GET", "/images", list_images, "Tart's OCI image cache (tart list --source oci)",
          "listImages", ok=(Success(200, "The cached images", {"type": "array",
                                                               "items": ref("Image")}),),
          problems=TART_FAILURES),
    Route("POST", "/images", pull_image,
          "Pull an image into Tart's cache (tart pull), as an operation with progress",
          "pullImage", body=PULL, ok=(QUEUED,),
          problems=(OperationsFull, OperationsClosed)),
    Route("POST", "/images/prune", prune_images,
          "Remove the least recently used cached images (tart prune --entries caches), as an "
          "operation", "pruneImages", body=PRUNE, ok=(QUEUED,),
          problems=(OperationsFull, OperationsClosed)),
    Route("DELETE", "/images/{ref}", delete_image,
          "Remove an image from Tart's cache (tart delete REF); never a local VM", "deleteImage",
          path=(IMAGE_PATH,), ok=(Success(204, "Removed", None),),
          problems=(ImageNotFound, TartVmMissing, *TART_FAILURES)),
)
