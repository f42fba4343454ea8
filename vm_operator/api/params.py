"""The parameters the routes share: a VM name (a ``VmName``, wherever it comes from) and the
query parameters of the VM routes."""

from __future__ import annotations

import re

from vm_operator import vocabulary
from vm_operator.edge.params import Boolean, Int, OneOf, Schema, TextParam, Verbatim
from vm_operator.edge.problems import CATALOGUE
from vm_operator.edge.problems.client_errors import INVALID_NAME
from vm_operator.edge.routing import OptionalQuery, PathParam, Query
from vm_operator.store.state import LOG_TAIL_LINES_MAX
from vm_operator.tart.names import (
    LOCAL_NAME_PATTERN,
    MAX_NAME_LENGTH,
    NAME_PATTERN,
    NAME_RULE,
    OCI_PATTERN,
    InvalidName,
    VmName,
)
from vm_operator.vocabulary import DISPLAY_EXAMPLE, DISPLAY_PATTERN, VM_SOURCES, VM_STATES


class VmNameType(TextParam[VmName]):
    """A VM name: validated by ``VmName`` (the name rules of tart/names.py), so a name from
    a path, a query or a body is checked the same way, once, before anything uses it."""

    problem = INVALID_NAME

    def schema(self) -> Schema:
        return {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH,
                "pattern": NAME_PATTERN}

    def from_text(self, key: str, text: str) -> VmName:
        try:
            return VmName(text)
        except InvalidName as exc:
            raise ValueError(str(exc)) from None

    def expected(self, key: str) -> str:
        return f"{key} must be a VM name (a string)"


VM_NAME = VmNameType()


class LocalVmNameType(VmNameType):
    """The name of a local VM to create: a VM name without '/' (Tart: ``<new-name> should be a
    local name``; a '/' makes it an OCI reference)."""

    def schema(self) -> Schema:
        return {**super().schema(), "pattern": LOCAL_NAME_PATTERN}

    def from_text(self, key: str, text: str) -> VmName:
        name = super().from_text(key, text)
        if "/" in name:
            raise ValueError(f"{key} must be a local VM name, without '/' (a '/' makes it an "
                             "OCI reference)")
        return name


LOCAL_VM_NAME = LocalVmNameType()

_DISPLAY = re.compile(DISPLAY_PATTERN)


class Display(TextParam[str]):
    """A display size for ``tart set --display``: WIDTHxHEIGHT in pixels, e.g. 1920x1080."""

    PATTERN = f"^{DISPLAY_PATTERN}$"

    def schema(self) -> Schema:
        return {"type": "string", "pattern": self.PATTERN, "maxLength": 11,
                "examples": [DISPLAY_EXAMPLE]}

    def expected(self, key: str) -> str:
        return f"{key} must be WIDTHxHEIGHT in pixels, e.g. 1920x1080"

    def from_text(self, key: str, text: str) -> str:
        if not _DISPLAY.fullmatch(text):
            raise ValueError(self.expected(key))
        return text


DISPLAY = Display()
CPU = Int(*vocabulary.CPU)
MEMORY_MB = Int(*vocabulary.MEMORY_MB)
DISK_GB = Int(*vocabulary.DISK_GB)

NAME = PathParam(
    "name", VM_NAME,
    "VM name, percent-encoded (an OCI name such as ghcr.io/org/img:tag "
    f"is sent as ghcr.io%2Forg%2Fimg%3Atag): {NAME_RULE}. Any other name is refused (400) "
    "before Tart is asked.",
)
SLUG = PathParam(
    "slug", Verbatim({"type": "string", "enum": [problem.slug for problem in CATALOGUE]}),
    "A problem type: the last segment of a problem document's type",
)

STATE = OptionalQuery("state", OneOf((*VM_STATES, "creating")), "Only this state")
SOURCE = OptionalQuery("source", OneOf(VM_SOURCES), "Only this source")
SUSPENDABLE = Query("suspendable", Boolean(), False,
                    "Add --suspendable (needed for a later suspend)")
TIMEOUT = Query("timeout", Int(0, 300), 30, "Seconds before Tart kills the VM")
WAIT = Query("wait", Int(0, 120), 0, "Seconds to wait for an address, while the VM runs")
WAIT_FOR = OptionalQuery("wait", OneOf(("ready",)),
                         "ready: answer once the VM is ready (Tart reports its IP address and "
                         "its guest accepts a TCP connection on VM_OPERATOR_READY_PORT), with "
                         "its detail; absent: answer once Tart reports it running")
READY_TIMEOUT_DEFAULT = 120
READY_TIMEOUT = OptionalQuery("timeout", Int(1, 900),
                              f"With wait=ready: seconds to wait, the start included (default "
                              f"{READY_TIMEOUT_DEFAULT}); then 504 ready-timeout, the VM left "
                              "running. Checked (1 to 900) with or without wait=ready; without "
                              "it, it bounds nothing (the start is bounded by --start-timeout)")
TAIL = OptionalQuery("tail", Int(1, LOG_TAIL_LINES_MAX), "Only the last N lines")


# --- changing VMs and the image cache -------------------------------------------------------


class ImageRefType(VmNameType):
    """An OCI reference (``ghcr.io/org/image:tag``, ``...@sha256:…``): a VM name with a '/', so
    that Tart can never take it for a local VM."""

    def schema(self) -> Schema:
        return {**super().schema(), "pattern": OCI_PATTERN}

    def from_text(self, key: str, text: str) -> VmName:
        ref = super().from_text(key, text)
        if "/" not in ref:
            raise ValueError(f"{key} must be an OCI reference such as "
                             "ghcr.io/cirruslabs/macos-sequoia-base:latest (a local VM name has "
                             "no '/')")
        return ref


IMAGE_REF = ImageRefType()

IMAGE_PATH = PathParam(  # any VM name: one that is no cached image (a local VM's) is a 404
    "ref", VM_NAME,
    "An OCI reference of Tart's cache, percent-encoded as one path segment "
    "(ghcr.io/org/img:tag is sent as ghcr.io%2Forg%2Fimg%3Atag), as GET /images lists it",
)
FORCE = Query("force", Boolean(), False, "Stop a running or suspended VM first, then delete it")
STOP_TIMEOUT = Query("timeout", Int(0, 300), 30,
                     "With force: seconds Tart gives the VM to shut down before it kills it")
