"""The web client's pages, its static modules and the Socket.IO browser client from npm."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

import web_client
from rooms.errors import DomainError

routes = web.RouteTableDef()

#: Where ``npm install`` put the browser dependencies (the checkout's node_modules/).
NODE_MODULES = Path(web_client.__file__).resolve().parent.parent / "node_modules"
SOCKET_IO_CLIENT = NODE_MODULES / "socket.io-client" / "dist" / "socket.io.esm.min.js"


class ClientNotInstalled(DomainError):
    code, status = "client_not_installed", 503


def _page(name: str) -> web.FileResponse:
    response = web.FileResponse(web_client.TEMPLATES_DIR / name)
    # Join links carry a token: never cache the page, never send the URL on as a referrer.
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/")
async def index(request: web.Request) -> web.FileResponse:
    """The landing page."""
    return _page("index.html")


@routes.get("/join/{consult_id}")
async def join_page(request: web.Request) -> web.FileResponse:
    """The consult page: device check, lobby, call."""
    return _page("consult.html")


@routes.get("/pharmacy")
async def pharmacy_page(request: web.Request) -> web.FileResponse:
    """The pharmacist's review queue (token in the link, kept in sessionStorage)."""
    return _page("pharmacy.html")


@routes.get("/review")
async def review_page(request: web.Request) -> web.FileResponse:
    """The quality review page: recordings, player, timeline, scoring (``#token=`` once)."""
    return _page("review.html")


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.FileResponse:
    """The audit log page of a hospital's administrators (``#token=`` once)."""
    return _page("audit.html")


@routes.get("/vendor/socket.io.esm.min.js")
async def socket_io_client(request: web.Request) -> web.FileResponse:
    """The Socket.IO browser client, served from the npm package."""
    if not SOCKET_IO_CLIENT.is_file():
        raise ClientNotInstalled("The browser client is not installed: run `make install`")
    return web.FileResponse(SOCKET_IO_CLIENT, headers={"Cache-Control": "max-age=3600"})


def add_static(app: web.Application) -> None:
    """Serve the web client's modules under /static/."""
    app.router.add_static("/static/", web_client.STATIC_DIR, append_version=False)
