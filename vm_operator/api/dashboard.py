"""The dashboard: one page for browsers and its assets, shipped inside the package (vm_operator/ui/).

The files are fixed text, read once when the module is imported. The page and its assets hold no
data, so they are public like the documentation (no token: a browser cannot send one for the
page itself); every call the page makes to the API carries the user's bearer token and passes the
usual token, Host and cross-site checks. A strict Content-Security-Policy lets the page run only
its own scripts and styles and be framed by nobody.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files

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


ASSETS: tuple[Asset, ...] = (
    Asset("/", "index.html", "text/html", "getDashboard",
          "The dashboard: a page for browsers (public; its data comes from this API, with the "
          "user's token)"),
    Asset("/ui/style.css", "style.css", "text/css", "getDashboardStyle",
          "The dashboard's style sheet"),
    Asset("/ui/app.js", "app.js", "text/javascript", "getDashboardApp",
          "The dashboard's main script (a JavaScript module)"),
    Asset("/ui/api.js", "api.js", "text/javascript", "getDashboardApi",
          "The dashboard's API client: tokens, requests, problems (a JavaScript module)"),
    Asset("/ui/stream.js", "stream.js", "text/javascript", "getDashboardStream",
          "The dashboard's reader of GET /events (a JavaScript module)"),
    Asset("/ui/dom.js", "dom.js", "text/javascript", "getDashboardDom",
          "The dashboard's DOM helpers: text only, never HTML (a JavaScript module)"),
    Asset("/ui/timeline.js", "timeline.js", "text/javascript", "getDashboardTimeline",
          "The dashboard's state timelines (a JavaScript module)"),
    Asset("/ui/session.js", "session.js", "text/javascript", "getDashboardSession",
          "The dashboard's record of the routes offered and the token's access (a JavaScript "
          "module)"),
    Asset("/ui/status.js", "status.js", "text/javascript", "getDashboardStatus",
          "The dashboard's notices, unreachable banner and refusals (a JavaScript module)"),
    Asset("/ui/debounce.js", "debounce.js", "text/javascript", "getDashboardDebounce",
          "The dashboard's delayed calls, one per key (a JavaScript module)"),
    Asset("/ui/events.js", "events.js", "text/javascript", "getDashboardEvents",
          "The dashboard's events of each VM and their descriptions (a JavaScript module)"),
    Asset("/ui/operations.js", "operations.js", "text/javascript", "getDashboardOperations",
          "The dashboard's long-running operations and progress bars (a JavaScript module)"),
    Asset("/ui/vms.js", "vms.js", "text/javascript", "getDashboardVms",
          "The dashboard's VMs as the API lists them (a JavaScript module)"),
    Asset("/ui/table.js", "table.js", "text/javascript", "getDashboardTable",
          "The dashboard's table of VMs (a JavaScript module)"),
    Asset("/ui/actions.js", "actions.js", "text/javascript", "getDashboardActions",
          "The dashboard's VM actions: start, stop, suspend, delete (a JavaScript module)"),
    Asset("/ui/detail.js", "detail.js", "text/javascript", "getDashboardDetail",
          "The dashboard's VM details panel: fields, run log, events (a JavaScript module)"),
    Asset("/ui/guest.js", "guest.js", "text/javascript", "getDashboardGuest",
          "The dashboard's way into a VM's guest: the ssh line, a command box (a JavaScript "
          "module)"),
    Asset("/ui/create.js", "create.js", "text/javascript", "getDashboardCreate",
          "The dashboard's create form and its progress (a JavaScript module)"),
    Asset("/ui/host.js", "host.js", "text/javascript", "getDashboardHost",
          "The dashboard's host panel: host, image cache, prune (a JavaScript module)"),
)


def read_asset(file: str) -> bytes:
    """A file of the package's ui/ directory (in a checkout or an installed package)."""
    return (files("vm_operator") / "ui" / file).read_bytes()


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
