"""A websocket's token: in the Authorization header, or (browsers cannot set headers on a
websocket) as the first message ``{"token": "…"}`` — never in the URL, where it would land in
access logs and browser history."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Callable

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from web.api_common import UNAUTHENTICATED_KEY, error_response
from web.auth import Principal, TokenRegistry

log = structlog.get_logger(__name__)

FIRST_MESSAGE_TIMEOUT_S = 10.0
MAX_FIRST_MESSAGE_BYTES = 4096
# the largest frame a socket takes (aiohttp's default is 4 MiB, buffered whole before the token is
# checked: 256 waiting sockets could hold 1 GiB); the browsers send nothing but their token
MAX_SOCKET_MESSAGE_BYTES = 16 * MAX_FIRST_MESSAGE_BYTES
# websocket close codes (4000–4999 are the application's): like HTTP's 401, 403, 404, 429
CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN, CLOSE_NOT_FOUND = 4401, 4403, 4404
CLOSE_TOO_MANY_PENDING = 4429
# the same code (a browser retries it with back-off), for a token that has its fill of open sockets
CLOSE_TOO_MANY_SOCKETS = 4429
DEFAULT_MAX_PENDING = 256  # http.max_pending_sockets
DEFAULT_MAX_PER_TOKEN = 16  # http.max_sockets_per_token
# how long the close of a socket refused for a full cap waits for the client's close reply
# (aiohttp waits 10 s: a client that never replies held the connection that long, past the cap)
REFUSED_CLOSE_WAIT_S = 1.0
_TOO_MANY_PENDING = b"too many sockets are waiting for a token: retry"
URL_SECRETS = ("token", "access_token", "auth")  # query names refused: access logs and history keep URLs
# the API's tokens, for routes that authenticate themselves (websockets)
TOKENS_KEY: web.AppKey[TokenRegistry] = web.AppKey("tokens", TokenRegistry)


class PendingSockets:
    """The controller's websockets that are open and still waiting for their first-message token
    (up to FIRST_MESSAGE_TIMEOUT_S each). Capped: every open socket holds a connection, buffers
    and a task, so without a cap anyone who can reach the port could hold any number of them.
    Beyond ``limit`` a socket is closed at once with CLOSE_TOO_MANY_PENDING (counted in
    ``refused``); sockets authenticated by their header never wait here."""

    def __init__(self, limit: int = DEFAULT_MAX_PENDING) -> None:
        if limit < 1:
            raise ValueError("the pending sockets' limit is at least 1")
        self.limit = limit
        self.waiting = 0
        self.refused = 0

    def enter(self) -> bool:
        """Take a place for one more waiting socket; False (counted) when all are taken."""
        if self.waiting >= self.limit:
            self.refused += 1
            return False
        self.waiting += 1
        return True

    def leave(self) -> None:
        self.waiting -= 1


class TokenSockets:
    """The controller's authenticated websockets, counted per token (its Principal) across every
    socket route: one token — a seat's, or a leaked one — may hold at most ``limit`` open at once,
    each a connection, buffers, a task and a subscriber that every push is copied to. Beyond it
    a socket is refused (HTTP 429 before the upgrade with a header token, else closed with
    CLOSE_TOO_MANY_SOCKETS), counted in ``refused``. A place is held until the handler's task
    ends, however it ends (returned, raised, cancelled)."""

    def __init__(self, limit: int = DEFAULT_MAX_PER_TOKEN) -> None:
        if limit < 1:
            raise ValueError("the sockets per token limit is at least 1")
        self.limit = limit
        self.open: dict[Principal, int] = {}
        self.refused = 0
        # per token, for the log: its first refusal and every 100th (principals come from the
        # registry only: this stays as small as the list of tokens)
        self._refused_by: dict[Principal, int] = {}

    def enter(self, who: Principal) -> bool:
        """Take a place for one more socket of ``who``; False (counted) when all are taken."""
        held = self.open.get(who, 0)
        if held >= self.limit:
            self.refused += 1
            self._refused_by[who] = self._refused_by.get(who, 0) + 1
            return False
        self.open[who] = held + 1
        return True

    def leave(self, who: Principal) -> None:
        held = self.open.get(who, 0) - 1
        if held > 0:
            self.open[who] = held
        else:
            self.open.pop(who, None)

    def refused_of(self, who: Principal) -> int:
        return self._refused_by.get(who, 0)

    @property
    def total(self) -> int:
        """Authenticated sockets open now, every token's."""
        return sum(self.open.values())


PENDING_SOCKETS_KEY: web.AppKey[PendingSockets] = web.AppKey("pending_sockets", PendingSockets)
TOKEN_SOCKETS_KEY: web.AppKey[TokenSockets] = web.AppKey("token_sockets", TokenSockets)
# the app's open sockets, closed (1001 "going away") when it shuts down: a graceful stop must not
# wait for browsers that keep their desks and wallboards open all day
OPEN_SOCKETS_KEY: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("open_sockets")


def pending_sockets(
    app: web.Application, limit: int = DEFAULT_MAX_PENDING, per_token: int = DEFAULT_MAX_PER_TOKEN
) -> PendingSockets:
    """The app's one PendingSockets, made with ``limit`` if it has none yet (and its one
    TokenSockets, with ``per_token``): every route that opens a socket calls it when added, so
    all of an app's sockets share one cap (the controller makes it first with
    http.max_pending_sockets and http.max_sockets_per_token)."""
    if PENDING_SOCKETS_KEY not in app:
        app[PENDING_SOCKETS_KEY] = PendingSockets(limit)
        app[TOKEN_SOCKETS_KEY] = TokenSockets(per_token)
        app[OPEN_SOCKETS_KEY] = weakref.WeakSet()
        app.on_shutdown.append(_close_open_sockets)
    return app[PENDING_SOCKETS_KEY]


async def _close_open_sockets(app: web.Application) -> None:
    """On shutdown: close every open socket (the browsers reconnect to the next controller)."""
    sockets = [socket for socket in app[OPEN_SOCKETS_KEY] if not socket.closed]
    await asyncio.gather(
        *(socket.close(code=WSCloseCode.GOING_AWAY, message=b"the controller is stopping") for socket in sockets),
        return_exceptions=True,
    )
    if sockets:
        log.info("socket.closed_on_shutdown", sockets=len(sockets))


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
    (refused before the upgrade, as plain HTTP: 401, or the close code minus 4000; 429 when the
    token has its fill of open sockets), or as the first message within FIRST_MESSAGE_TIMEOUT_S
    (refused by closing with 4401 or the refusal's code; with 4429 at once when the app's
    PendingSockets are all taken or the token has its fill of open sockets); a token in the URL
    is refused with 400 (logged as ``url_token_event``). Returns the open socket and its
    principal, its place among the token's sockets held until the calling handler's task ends,
    or when refused the final response (an HTTP error or the closed socket)."""
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
        opened = await open_header_socket(request, principal)
        return (opened, principal) if isinstance(opened, web.WebSocketResponse) else opened
    return await _open_by_first_message(request, tokens, refusal)


async def _open_by_first_message(
    request: web.Request, tokens: TokenRegistry, refusal: Refusal
) -> tuple[web.WebSocketResponse, Principal] | web.WebSocketResponse:
    """open_socket for a socket without a header: the open socket and its principal, or the
    socket closed (4401, 4429, the refusal's code)."""
    socket = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_SOCKET_MESSAGE_BYTES)
    principal = await _first_message(request, socket, tokens)
    if principal is None:
        return socket  # closed: 4429 or 4401
    refused = refusal(principal)
    if refused is not None:
        await socket.close(code=refused[0], message=refused[1].encode())
        return socket
    if not _take_place(request, principal):
        await _close_refused(socket, CLOSE_TOO_MANY_SOCKETS, _too_many_for(request).encode())
        return socket
    return socket, principal


async def open_header_socket(request: web.Request, principal: Principal) -> web.StreamResponse:
    """Open the websocket of a request its Authorization header authenticated as ``principal``
    (open_socket's, or the auth middleware's for a route marked ``requires``): the open socket,
    its place among the token's sockets held until the calling handler's task ends; or, when the
    token has its fill of open sockets (http.max_sockets_per_token), 429 before the upgrade."""
    if not _take_place(request, principal):
        return error_response(429, _too_many_for(request))
    socket = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_SOCKET_MESSAGE_BYTES)
    await prepare_socket(request, socket)
    return socket


def _take_place(request: web.Request, principal: Principal) -> bool:
    """Take one of ``principal``'s places among the app's authenticated sockets, given back
    when the current task — the request's handler (aiohttp runs each request in a task of its
    own, aiohttp#3406) — ends, however it ends: returned, raised, cancelled (a vanished client, a stopping app).
    False (counted, logged on the token's first refusal and every 100th) when all are taken."""
    places = request.app[TOKEN_SOCKETS_KEY]
    if not places.enter(principal):
        refused = places.refused_of(principal)
        if refused == 1 or refused % 100 == 0:  # a token hammering its cap must not flood the log
            log.warning(
                "socket.too_many_for_token", who=principal.name, path=request.path, remote=request.remote or "",
                limit=places.limit, refused=refused,
            )  # fmt: skip
        return False
    task = asyncio.current_task()
    if task is None:  # not in a task: nothing would give the place back
        places.leave(principal)
        raise RuntimeError("a socket's place is taken in its handler's task")
    task.add_done_callback(lambda _task: places.leave(principal))
    return True


def _too_many_for(request: web.Request) -> str:
    limit = request.app[TOKEN_SOCKETS_KEY].limit
    return f"this token has {limit} sockets open already (http.max_sockets_per_token): close one"


async def prepare_socket(request: web.Request, socket: web.WebSocketResponse) -> None:
    """Open ``socket`` (the upgrade) and count it among the app's open sockets."""
    await socket.prepare(request)
    if OPEN_SOCKETS_KEY in request.app:
        request.app[OPEN_SOCKETS_KEY].add(socket)


async def _close_refused(socket: web.WebSocketResponse, code: int, message: bytes) -> None:
    """Close a socket refused for a full cap without aiohttp's 10 s wait for the client's reply:
    past a cap, nothing may hold a connection long."""
    try:
        async with asyncio.timeout(REFUSED_CLOSE_WAIT_S):
            await socket.close(code=code, message=message)
    except TimeoutError:
        pass  # aiohttp closed the transport when the wait was cut


async def _first_message(
    request: web.Request, socket: web.WebSocketResponse, tokens: TokenRegistry
) -> Principal | None:
    """Open the socket and read its token from its first message, holding one of the app's
    PendingSockets places meanwhile; None once the socket is closed: 4429 when every place is
    taken (a browser sees no HTTP status on a refused upgrade: so open, then close), 4401 when
    no valid token came."""
    pending = request.app[PENDING_SOCKETS_KEY]
    if not pending.enter():
        if pending.refused == 1 or pending.refused % 100 == 0:  # a flood must not flood the log too
            log.warning(
                "socket.too_many_pending", path=request.path, remote=request.remote or "",
                limit=pending.limit, refused=pending.refused,
            )  # fmt: skip
        await socket.prepare(request)
        await _close_refused(socket, CLOSE_TOO_MANY_PENDING, _TOO_MANY_PENDING)
        return None
    try:
        await prepare_socket(request, socket)
        principal = await first_message_principal(socket, tokens)
        if principal is None:  # closed while its place is held: a client that never replies to the
            # close (up to aiohttp's 10 s) is still counted, or bad tokens would bypass the cap
            request.app[UNAUTHENTICATED_KEY].seen(request.path, request.remote or "")
            await socket.close(code=CLOSE_UNAUTHENTICATED, message=b"a valid token is required")
    finally:
        pending.leave()
    return principal
