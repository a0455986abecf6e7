"""A websocket's token: in the Authorization header, or (browsers cannot set headers on a
websocket) as the first message ``{"token": "…"}`` — never in the URL, where it would land in
access logs and browser history."""

from __future__ import annotations

import json
from collections.abc import Callable

import structlog
from aiohttp import WSMsgType, web

from web.api_common import UNAUTHENTICATED_KEY, error_response
from web.auth import Principal, TokenRegistry

log = structlog.get_logger(__name__)

FIRST_MESSAGE_TIMEOUT_S = 10.0
MAX_FIRST_MESSAGE_BYTES = 4096
# websocket close codes (4000–4999 are the application's): like HTTP's 401, 403, 404
CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4401, 4403, 4404
URL_SECRETS = ("token", "access_token", "auth")  # query names refused: access logs and history keep URLs
# the API's tokens, for routes that authenticate themselves (websockets)
TOKENS_KEY: web.AppKey[TokenRegistry] = web.AppKey("tokens", TokenRegistry)


async def first_message_principal(
    socket: web.WebSocketResponse, tokens: TokenRegistry, timeout_s: float = FIRST_MESSAGE_TIMEOUT_S
) -> Principal | None:
    """The principal of the socket's first message ``{"token": "…"}``, or None (no message
    within ``timeout_s``, not JSON, too large, unknown token)."""
    try:
        message = await socket.receive(timeout=timeout_s)
    except TimeoutError:
        return None
    if message.type is not WSMsgType.TEXT or len(message.data) > MAX_FIRST_MESSAGE_BYTES:
        return None
    try:
        data = json.loads(message.data)
    except ValueError:
        return None
    token = data.get("token") if isinstance(data, dict) else None
    return tokens.authenticate(f"Bearer {token}") if isinstance(token, str) else None


# why a principal may not follow this socket: (close code, reason), or None
Refusal = Callable[[Principal], tuple[int, str] | None]


async def open_socket(
    request: web.Request, tokens: TokenRegistry, refusal: Refusal, url_token_event: str
) -> tuple[web.WebSocketResponse, Principal] | web.StreamResponse:
    """Authenticate a websocket request and open it: the token in the Authorization header
    (refused before the upgrade, as plain HTTP: 401, or the close code minus 4000), or as the
    first message within FIRST_MESSAGE_TIMEOUT_S (refused by closing with 4401 or the refusal's
    code); a token in the URL is refused with 400 (logged as ``url_token_event``). Returns the
    open socket and its principal, or when refused the final response (an HTTP error or the
    closed socket)."""
    if any(name in request.query for name in URL_SECRETS):  # access logs and history keep URLs
        log.warning(url_token_event, remote=request.remote or "")
        return error_response(400, "never put a token in the URL: send it as the first message or a header")
    header = request.headers.get("Authorization")
    principal = tokens.authenticate(header) if header else None
    if header is not None:  # refused before the upgrade, as plain HTTP
        if principal is None:
            request.app[UNAUTHENTICATED_KEY].seen(request.path, request.remote or "")
            return error_response(401, "a valid bearer token is required")
        refused = refusal(principal)
        if refused is not None:
            return error_response(refused[0] - 4000, refused[1])
    socket = web.WebSocketResponse(heartbeat=20)
    await socket.prepare(request)
    if principal is None:
        principal = await first_message_principal(socket, tokens)
        if principal is None:
            request.app[UNAUTHENTICATED_KEY].seen(request.path, request.remote or "")
            await socket.close(code=CLOSE_UNAUTHENTICATED, message=b"a valid token is required")
            return socket
        refused = refusal(principal)
        if refused is not None:
            await socket.close(code=refused[0], message=refused[1].encode())
            return socket
    return socket, principal
