"""A websocket's token: in the Authorization header, or (browsers cannot set headers on a
websocket) as the first message ``{"token": "…"}`` — never in the URL, where it would land in
access logs and browser history."""

from __future__ import annotations

import json

from aiohttp import WSMsgType, web

from web.auth import Principal, TokenRegistry

FIRST_MESSAGE_TIMEOUT_S = 10.0
MAX_FIRST_MESSAGE_BYTES = 4096
# websocket close codes (4000–4999 are the application's): like HTTP's 401, 403, 404
CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4401, 4403, 4404
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
