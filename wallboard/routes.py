"""``GET /api/v1/wallboard``: the live board over a websocket (supervisor role). The token comes
in the Authorization header (refused before the upgrade, as plain HTTP) or as the first message
``{"token": …}`` within 10 s; a token in the URL is refused. Boards are pushed; the browser's
messages are read and ignored (so that close frames and pongs are seen)."""

from __future__ import annotations

import structlog
from aiohttp import web

from wallboard.service import Wallboard
from web.api_common import SERVING_KEY
from web.auth import Principal
from web.openapi import describe
from web.socket_auth import CLOSE_FORBIDDEN, TOKENS_KEY, open_socket, pending_sockets
from web.socket_pump import pump

log = structlog.get_logger(__name__)

WALLBOARD_KEY: web.AppKey[Wallboard] = web.AppKey("wallboard", Wallboard)


def _refusal(principal: Principal, request: web.Request) -> tuple[int, str] | None:
    if not principal.may("supervisor"):
        return CLOSE_FORBIDDEN, "the wallboard needs the supervisor role"
    serving = request.app[SERVING_KEY]
    if not serving.scope_of(principal).may_view(serving.platform):
        return CLOSE_FORBIDDEN, "this token is another platform's"
    return None


@describe(
    "the live wallboard over a websocket: per queue and platform, pushed every few seconds and on events",
    websocket=True,
    role="supervisor",
    description="The token in the Authorization header, or (browsers) as the first message "
    '{"token": "…"} within 10 s; refusals close with 4401 / 4403 / 4429. A token in the URL is refused (400).',
    errors={
        400: "a token in the URL",
        401: "the Authorization header's token is not valid",
        403: "not a supervisor",
        429: "this token has http.max_sockets_per_token sockets open already",
    },
)
async def wallboard(request: web.Request) -> web.StreamResponse:
    board, tokens = request.app[WALLBOARD_KEY], request.app[TOKENS_KEY]
    opened = await open_socket(request, tokens, lambda who: _refusal(who, request), "wallboard.token_in_url")
    if not isinstance(opened, tuple):
        return opened
    socket, principal = opened
    province = request.app[SERVING_KEY].scope_of(principal).province
    subscriber = board.subscribe(province)
    log.info("wallboard.open", who=principal.name, province=province)
    try:
        await socket.send_json({"type": "hello", "who": principal.name, "province": province})
        await pump(socket, subscriber.boards)
    finally:
        board.unsubscribe(subscriber)
        log.info("wallboard.closed", who=principal.name)
    return socket


def add_routes(app: web.Application, board: Wallboard) -> None:
    """Serve ``board`` (the app must hold TOKENS_KEY, as hotline/api.py's build_api sets it)."""
    app[WALLBOARD_KEY] = board
    pending_sockets(app)  # its socket waits for its token: capped with the app's others
    app.router.add_get("/api/v1/wallboard", wallboard)
