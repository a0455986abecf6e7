"""Open authenticated websockets are capped per token (``http.max_sockets_per_token``), across
every socket route of the app: one token — a seat's, or a leaked one — held any number of them
before (each a connection, buffers, a task and a subscriber every push is copied to). Here the
platform events socket (``/api/v1/events``, header only) and the wallboard's (header or first
message) share one count per token; beyond it a socket is refused (429 before the upgrade with a
header token, else closed with 4429) and its place is never leaked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from structlog.testing import capture_logs

from hotline.api import build_api
from tests.support.waiting import wait_until
from tests.unit.test_api import TOKEN_HEADERS, TOKENS, EventsBackend
from tests.unit.test_wallboard_api import wallboard
from wallboard.routes import add_routes
from wallboard.service import Wallboard
from web.auth import Principal
from web.config import HttpConfig
from web.socket_auth import (
    CLOSE_TOO_MANY_SOCKETS,
    DEFAULT_MAX_PER_TOKEN,
    TOKEN_SOCKETS_KEY,
    TokenSockets,
)

CAP = 2
HANG_GUARD_S = 30.0  # a hang ends the test; no speed is asserted
SUP = Principal("sup", "supervisor")
EVENTS, WALL = "/api/v1/events", "/api/v1/wallboard"


@dataclass
class App:
    client: TestClient[Any, Any]
    backend: EventsBackend
    board: Wallboard

    @property
    def places(self) -> TokenSockets:
        places: TokenSockets = self.client.app[TOKEN_SOCKETS_KEY]
        return places


@pytest.fixture
async def app() -> AsyncIterator[App]:
    backend = EventsBackend()
    web_app = build_api(backend, TOKENS, max_sockets_per_token=CAP)
    board = wallboard("kunming", aioredis.Redis(port=1))  # never pushed here: Redis is never asked
    add_routes(web_app, board)
    client: TestClient[Any, Any] = TestClient(TestServer(web_app))
    await client.start_server()
    yield App(client, backend, board)
    await asyncio.wait_for(client.close(), HANG_GUARD_S)  # a handler left waiting would hold it


async def _hello(socket: Any) -> dict[str, Any]:
    message = await socket.receive(timeout=HANG_GUARD_S)
    assert message.type is WSMsgType.TEXT, message
    data: dict[str, Any] = json.loads(message.data)
    assert data["type"] == "hello", data
    return data


async def _by_first_message(app: App, token: str) -> Any:
    socket = await app.client.ws_connect(WALL)
    await socket.send_json({"token": token})
    return socket


async def _refused_by_header(app: App, path: str, who: str = "sup") -> None:
    with pytest.raises(WSServerHandshakeError) as refused:
        await app.client.ws_connect(path, headers=TOKEN_HEADERS[who])
    assert refused.value.status == 429


async def _metric(app: App, name: str) -> float:
    text = await (await app.client.get("/metrics")).text()
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])


async def test_header_sockets_beyond_the_cap_are_refused_on_every_route_and_the_others_keep_working(
    app: App,
) -> None:
    """One token's sockets on two routes share one count; the next is refused (429, on either
    route), counted and logged without the token; the open ones still get their events; another
    token has places of its own."""
    events = await app.client.ws_connect(EVENTS, headers=TOKEN_HEADERS["sup"])
    wall = await app.client.ws_connect(WALL, headers=TOKEN_HEADERS["sup"])
    await _hello(wall)
    await wait_until(lambda: app.places.open == {SUP: CAP}, timeout_s=HANG_GUARD_S)
    with capture_logs() as logs:
        for path in (EVENTS, WALL):
            await _refused_by_header(app, path)
    refusals = [entry for entry in logs if entry["event"] == "socket.too_many_for_token"]
    assert len(refusals) == 1 and refusals[0]["who"] == "sup" and refusals[0]["limit"] == CAP  # the first
    assert "sup-token" not in repr(logs)
    assert app.places.open == {SUP: CAP} and app.places.refused == 2  # a refusal takes no place
    assert await _metric(app, "hotline_websockets_token_refused_total") == 2
    assert await _metric(app, "hotline_websockets_authenticated") == CAP
    # the open ones keep working
    await wait_until(lambda: len(app.backend.bus._subscribers) == 1, timeout_s=HANG_GUARD_S)
    for queue in app.backend.bus._subscribers:
        queue.put_nowait({"type": "seat.state", "seat": "1001"})
    message = await events.receive(timeout=HANG_GUARD_S)
    assert message.type is WSMsgType.TEXT and json.loads(message.data)["seat"] == "1001"
    # another token (the admin's) has its own places
    other = await app.client.ws_connect(WALL, headers=TOKEN_HEADERS["admin"])
    await _hello(other)
    assert app.places.total == CAP + 1
    for socket in (events, wall, other):
        await socket.close()
    await wait_until(lambda: app.places.open == {}, timeout_s=HANG_GUARD_S)


async def test_a_first_message_socket_counts_and_is_closed_with_4429(app: App) -> None:
    """A browser's socket (its token as the first message) takes a place as a header one does,
    and beyond the cap is closed with 4429 and a reason naming the setting; closing one frees a
    place for the next, and nothing is leaked by the refusals."""
    header = await app.client.ws_connect(EVENTS, headers=TOKEN_HEADERS["sup"])
    browser = await _by_first_message(app, "sup-token")
    await _hello(browser)
    assert app.places.open == {SUP: CAP}
    extra = await _by_first_message(app, "sup-token")
    message = await extra.receive(timeout=HANG_GUARD_S)
    assert message.type is WSMsgType.CLOSE and extra.close_code == CLOSE_TOO_MANY_SOCKETS == 4429
    assert "max_sockets_per_token" in message.extra
    # by header: 429 before the upgrade, with the reason (a plain GET shows the body)
    refused = await app.client.get(EVENTS, headers=TOKEN_HEADERS["sup"])
    assert refused.status == 429 and "max_sockets_per_token" in (await refused.json())["error"]
    assert app.places.open == {SUP: CAP} and app.places.refused == 2
    # closing one (the browser's) frees its place: the next gets in, by header or first message
    await browser.close()
    await wait_until(lambda: app.places.open == {SUP: CAP - 1}, timeout_s=HANG_GUARD_S)
    again = await _by_first_message(app, "sup-token")
    await _hello(again)
    assert app.places.open == {SUP: CAP}
    await header.close()
    await wait_until(lambda: app.places.open == {SUP: CAP - 1}, timeout_s=HANG_GUARD_S)
    # a request that takes a place and then fails its upgrade (not a websocket) gives it back
    assert (await app.client.get(EVENTS, headers=TOKEN_HEADERS["sup"])).status == 400
    assert (await app.client.get(WALL, headers=TOKEN_HEADERS["sup"])).status == 400
    await wait_until(lambda: app.places.open == {SUP: CAP - 1}, timeout_s=HANG_GUARD_S)
    last = await app.client.ws_connect(EVENTS, headers=TOKEN_HEADERS["sup"])
    await wait_until(lambda: app.places.open == {SUP: CAP}, timeout_s=HANG_GUARD_S)
    for socket in (again, last, extra):
        await socket.close()
    await wait_until(lambda: app.places.open == {}, timeout_s=HANG_GUARD_S)
    assert await _metric(app, "hotline_websockets_authenticated") == 0


async def test_a_burst_of_opens_gets_exactly_the_cap(app: App) -> None:
    """Many opens at once (the check and the place are taken before the upgrade's await): exactly
    CAP get in, the rest are refused, and the refused ones hold nothing."""
    tries = 8

    async def attempt(index: int) -> Any:
        path = EVENTS if index % 2 else WALL
        try:
            return await app.client.ws_connect(path, headers=TOKEN_HEADERS["sup"])
        except WSServerHandshakeError as refused:
            assert refused.status == 429
            return None

    sockets = [s for s in await asyncio.gather(*(attempt(i) for i in range(tries))) if s is not None]
    assert len(sockets) == CAP and app.places.refused == tries - CAP
    assert app.places.open == {SUP: CAP}
    for socket in sockets:
        await socket.close()
    await wait_until(lambda: app.places.open == {}, timeout_s=HANG_GUARD_S)


async def test_a_vanished_client_and_a_stopping_app_give_their_places_back(app: App) -> None:
    """A client that authenticates and then never reads or answers, whose connection is then cut
    without a close, and sockets open when the app shuts down: their places come back."""
    reader, writer = await asyncio.open_connection(app.client.host, app.client.port)
    writer.write(
        b"GET /api/v1/wallboard HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Authorization: Bearer sup-token\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert b"101" in await asyncio.wait_for(reader.readline(), HANG_GUARD_S)
    await wait_until(lambda: app.places.open == {SUP: 1}, timeout_s=HANG_GUARD_S)
    writer.transport.abort()  # gone, no close frame
    await wait_until(lambda: app.places.open == {}, timeout_s=HANG_GUARD_S)
    sockets = [await app.client.ws_connect(path, headers=TOKEN_HEADERS["sup"]) for path in (EVENTS, WALL)]
    await wait_until(lambda: app.places.open == {SUP: CAP}, timeout_s=HANG_GUARD_S)
    await app.client.app.shutdown()
    for socket in sockets:
        message = await socket.receive(timeout=HANG_GUARD_S)
        if message.type is WSMsgType.TEXT:  # the wallboard's hello came first
            message = await socket.receive(timeout=HANG_GUARD_S)
        assert message.type is WSMsgType.CLOSE and socket.close_code == 1001
    await wait_until(lambda: app.places.open == {}, timeout_s=HANG_GUARD_S)


def test_the_cap_is_configured_and_at_least_one() -> None:
    assert HttpConfig().max_sockets_per_token == DEFAULT_MAX_PER_TOKEN == 16
    assert HttpConfig(max_sockets_per_token=2).max_sockets_per_token == 2
    with pytest.raises(ValidationError):
        HttpConfig(max_sockets_per_token=0)
    with pytest.raises(ValueError, match="at least 1"):
        TokenSockets(0)
    places = TokenSockets(1)
    assert places.enter(SUP) and not places.enter(SUP)
    assert places.enter(Principal("root", "admin"))  # another token: its own place
    places.leave(SUP)
    assert places.open == {Principal("root", "admin"): 1} and places.refused == 1
