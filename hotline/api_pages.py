"""The pages (the supervisors' console, a seat's desk) and ``/api/v1/me`` that they read first."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from web.api_common import PRINCIPAL_KEY, requires

STATIC = Path(__file__).resolve().parent / "static"


def _page(name: str) -> web.FileResponse:
    """A static page that reads this API with the user's token (it carries no data itself)."""
    return web.FileResponse(
        STATIC / name,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            "X-Frame-Options": "DENY",
        },
    )


async def console(request: web.Request) -> web.FileResponse:
    """The supervisors' web console."""
    return _page("console.html")


async def seat_desk(request: web.Request) -> web.FileResponse:
    """A seat's desk: its call, the case, one-key emergency transfers, consultations."""
    return _page("seat.html")


@requires("seat")
async def who_am_i(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL_KEY]
    return web.json_response({"name": principal.name, "role": principal.role, "seat": principal.seat})


def add_page_routes(app: web.Application) -> None:
    app.router.add_get("/", console)
    app.router.add_get("/seat", seat_desk)
    app.router.add_get("/api/v1/me", who_am_i)
