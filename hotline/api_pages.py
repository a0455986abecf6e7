"""The pages (the supervisors' console, a seat's desk) and ``/api/v1/me`` that they read first."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hotline.api_schemas import Me
from hotline.favicon import favicon
from web.api_common import PRINCIPAL_KEY, error_response, requires
from web.openapi import describe
from webphone.routes import PHONE_BOOK_KEY, websocket_origin

STATIC = Path(__file__).resolve().parent / "static"
# front-end libraries from the npm registry (package.json, package-lock.json), bundled by `make
# pages` (npm ci; npm run build) into node_modules/.hotline/: never copied into the repository
VENDOR = Path(__file__).resolve().parents[1] / "node_modules" / ".hotline"
VENDOR_ASSETS = {"jssip.min.js": "text/javascript"}  # the seat desk's browser phone (JsSIP)


INLINE = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'"
SELF_ONLY = "default-src 'self'; script-src 'self'; style-src 'self'"  # scripts and styles of ours only
# the seat desk with browser phones: also the phones' secure websocket to Asterisk (another port:
# not 'self'), that one origin only (webphone.routes.websocket_origin)
SEAT_DESK = SELF_ONLY + "; connect-src 'self' {wss}"
# the files the pages load (a fixed list: no path from the request reaches the file system)
ASSETS = {
    "seat.js": "text/javascript",
    "seat.css": "text/css",
    "phone.js": "text/javascript",
    "wall.js": "text/javascript",
    "wall.css": "text/css",
}


def _page(name: str, policy: str = INLINE) -> web.FileResponse:
    """A static page that reads this API with the user's token (it carries no data itself)."""
    return web.FileResponse(
        STATIC / name,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": policy,
            "X-Frame-Options": "DENY",
        },
    )


@describe(
    "a page's script or style sheet (open; a fixed list)", content="text/javascript", errors={404: "no such file"}
)
async def asset(request: web.Request) -> web.StreamResponse:
    """A page's script or style sheet."""
    name = request.match_info["name"]
    kind = ASSETS.get(name)
    if kind is None:
        return error_response(404, "no such file")
    return web.FileResponse(
        STATIC / name, headers={"Content-Type": f"{kind}; charset=utf-8", "X-Content-Type-Options": "nosniff"}
    )


@describe(
    "a front-end library from npm (open; a fixed list: jssip.min.js)",
    content="text/javascript",
    errors={404: "no such file", 503: "not installed: run make pages (npm ci)"},
)
async def vendor_asset(request: web.Request) -> web.StreamResponse:
    """A library the pages load, built from node_modules (``make pages``)."""
    name = request.match_info["name"]
    kind = VENDOR_ASSETS.get(name)
    if kind is None:
        return error_response(404, "no such file")
    if not (VENDOR / name).is_file():
        return error_response(503, f"{name} is not installed: run `make pages` (npm ci, then npm run build)")
    return web.FileResponse(
        VENDOR / name, headers={"Content-Type": f"{kind}; charset=utf-8", "X-Content-Type-Options": "nosniff"}
    )


@describe("the supervisors' console page (open; it holds no data)", content="text/html")
async def console(request: web.Request) -> web.FileResponse:
    """The supervisors' web console."""
    return _page("console.html")


@describe("a seat's desk page (open; it holds no data)", content="text/html")
async def seat_desk(request: web.Request) -> web.FileResponse:
    """A seat's desk: the state, the screen pop and the caller's history, the case (knowledge
    base, units), wrap-up, one-key emergency transfers, consultations (hotline/static/seat.*)."""
    book = request.app.get(PHONE_BOOK_KEY)
    if book is None or not book.browser:
        return _page("seat.html", SELF_ONLY)
    return _page("seat.html", SEAT_DESK.format(wss=websocket_origin(book, request)))


@describe("the wallboard for a big screen (hotline/static/wall.*)", content="text/html")
async def wall(request: web.Request) -> web.FileResponse:
    """The wallboard for a big screen (hotline/static/wall.*; the board comes over the socket)."""
    return _page("wall.html", SELF_ONLY)


@describe("who the token is: name, role, seat", response=Me)
@requires("seat")
async def who_am_i(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    return web.json_response({"name": principal.name, "role": principal.role, "seat": principal.seat})


def add_page_routes(app: web.Application) -> None:
    app.router.add_get("/", console)
    app.router.add_get("/seat", seat_desk)
    app.router.add_get("/favicon.ico", describe("the pages' icon (open)", content="image/x-icon")(favicon))
    app.router.add_get("/wall", wall)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/static/vendor/{name}", vendor_asset)
    app.router.add_get("/api/v1/me", who_am_i)
