"""The dashboard: one page for browsers and its assets, shipped inside the package (vm_operator/ui/).

The files are fixed text, read once when the module is imported. The page and its assets hold no
data, so they are public like the documentation (no token: a browser cannot send one for the
page itself); every call the page makes to the API carries the user's bearer token and passes the
usual token, Host and cross-site checks. A strict Content-Security-Policy lets the page run only
its own scripts and styles and be framed by nobody.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from vm_operator.api.app import App
from vm_operator.api.schemas import TEXT
from vm_operator.edge.responses import Response
from vm_operator.edge.routing import Request, Route, Success

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
# Every response of the operator already says Cache-Control: no-store and
# X-Content-Type-Options: nosniff (edge/http1.py): the assets are small, served from loopback or
# the LAN, and never stale after an upgrade of the operator.
HEADERS = (("Content-Security-Policy", CSP), ("Referrer-Policy", "no-referrer"))


@dataclass(frozen=True)
class Asset:
    """A file of vm_operator/ui/ and how it is served."""

    path: str  # the URL path
    file: str  # its name in vm_operator/ui/
    media_type: str  # without parameters: what /openapi.json says
    operation_id: str
    summary: str

    @property
    def content_type(self) -> str:
        return f"{self.media_type}; charset=utf-8"


def script(file: str, summary: str) -> Asset:
    """A JavaScript module of the page: served at /ui/FILE, its operation named after it."""
    stem = file.removesuffix(".js")
    return Asset(f"/ui/{file}", file, "text/javascript", f"getDashboard{stem.capitalize()}",
                 f"{summary} (a JavaScript module)")


ASSETS: tuple[Asset, ...] = (
    Asset("/", "index.html", "text/html", "getDashboard",
          "The dashboard: a page for browsers (public; its data comes from this API, with the "
          "user's token)"),
    Asset("/ui/style.css", "style.css", "text/css", "getDashboardStyle",
          "The dashboard's style sheet"),
    script("app.js", "The dashboard's main script"),
    script("api.js", "The dashboard's API client: tokens, requests, problems"),
    script("stream.js", "The dashboard's reader of GET /events"),
    script("dom.js", "The dashboard's DOM helpers: text only, never HTML"),
    script("timeline.js", "The dashboard's state timelines"),
    script("session.js", "The dashboard's record of the routes offered and the token's access"),
    script("status.js", "The dashboard's notices, unreachable banner and refusals"),
    script("debounce.js", "The dashboard's delayed calls, one per key"),
    script("events.js", "The dashboard's events of each VM and their descriptions"),
    script("operations.js", "The dashboard's long-running operations and progress bars"),
    script("vms.js", "The dashboard's VMs as the API lists them"),
    script("table.js", "The dashboard's table of VMs"),
    script("actions.js", "The dashboard's VM actions: start, stop, suspend, delete"),
    script("detail.js", "The dashboard's VM details panel: fields, run log, events"),
    script("guest.js", "The dashboard's way into a VM's guest: the ssh line, a command box"),
    script("create.js", "The dashboard's create form and its progress"),
    script("host.js", "The dashboard's host panel: host, image cache, prune"),
)


def read_asset(file: str) -> bytes:
    """A file of the package's ui/ directory (in a checkout or an installed package, zipped
    or not), read by the package's own loader: ``importlib.resources`` would cost a serving
    operator its reader classes and ``zipfile`` for a few files read once."""
    data = pkgutil.get_data("vm_operator", f"ui/{file}")
    if data is None:
        raise OSError(f"the loader of vm_operator cannot read ui/{file}")
    return data


def _serve(asset: Asset) -> Callable[[App, Request], Response]:
    body = read_asset(asset.file)

    def serve(app: App, req: Request) -> Response:
        return Response(200, body, asset.content_type, HEADERS)

    serve.__name__ = f"serve_{asset.operation_id}"
    return serve


ROUTES: tuple[Route[App], ...] = tuple(
    Route("GET", asset.path, _serve(asset), asset.summary, asset.operation_id,
          ok=(Success(200, asset.file, TEXT, asset.media_type),), public=True)
    for asset in ASSETS
)
