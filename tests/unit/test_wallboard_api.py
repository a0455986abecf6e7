"""GET /api/v1/wallboard: roles, platform scope, the token as first message or header (never in
the URL), the province's view of every platform (real Redis for the platforms' summaries)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from acd.events import EventBus
from acd.model import QueuedCall
from acd.seat import Seat
from calls.model import CallRecord
from hotline.api import build_api
from tests.unit.test_api import TOKENS as API_TOKENS
from tests.unit.test_api import Backend
from wallboard.config import WallboardConfig
from wallboard.routes import add_routes
from wallboard.service import Identity, Wallboard
from wallboard.store import RedisBoardStore
from web.api_common import SERVING_KEY, UNAUTHENTICATED_KEY, Serving, Unauthenticated
from web.auth import ApiToken, TokenRegistry, token_sha256
from web.socket_auth import TOKENS_KEY

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
TOKENS = {
    "sup": ApiToken(name="值班长", role="supervisor", sha256=token_sha256("sup-token")),
    "seat": ApiToken(name="张敏", role="seat", seat="1001", sha256=token_sha256("seat-token")),
    "dali": ApiToken(name="大理", role="supervisor", platform="dali", sha256=token_sha256("dali-token")),
    "prov": ApiToken(name="省", role="supervisor", platform="province", sha256=token_sha256("prov-token")),
}
H = {k: {"Authorization": f"Bearer {k}-token"} for k in TOKENS}


class Floor:
    def queue_names(self) -> list[str]:
        return ["general"]

    def waiting(self, queue: str) -> list[QueuedCall]:
        return []

    def seats(self) -> list[Seat]:
        return [Seat("1001")]


@dataclass
class Board:
    board: Wallboard
    client: TestClient[Any, Any]


def wallboard(platform: str, client: aioredis.Redis) -> Wallboard:
    async def recent(_limit: int) -> list[CallRecord]:
        return []

    return Wallboard(
        identity=Identity(platform, platform, platform == "province"),
        config=WallboardConfig(),
        floor=Floor(),
        events=EventBus(client, platform="kunming"),
        store=RedisBoardStore(client),
        recent_calls=recent,
        clock=lambda: NOW,
    )


@pytest.fixture
async def kunming(client: aioredis.Redis) -> AsyncIterator[Board]:
    board = wallboard("kunming", client)
    app = web.Application()
    app[SERVING_KEY] = Serving("kunming", False)
    app[UNAUTHENTICATED_KEY] = Unauthenticated()
    app[TOKENS_KEY] = TokenRegistry(TOKENS.values())
    add_routes(app, board)
    test_client: TestClient[Any, Any] = TestClient(TestServer(app))
    await test_client.start_server()
    yield Board(board, test_client)
    await test_client.close()


async def _next(socket: Any) -> dict[str, Any]:
    message = await socket.receive(timeout=10)
    assert message.type is WSMsgType.TEXT, message
    data: dict[str, Any] = json.loads(message.data)
    return data


async def test_refused_before_the_upgrade_with_a_header(kunming: Board) -> None:
    get = kunming.client.get
    assert (await get("/api/v1/wallboard", headers={"Authorization": "Bearer nope"})).status == 401
    assert (await get("/api/v1/wallboard", headers=H["seat"])).status == 403  # seats do not see the board
    assert (await get("/api/v1/wallboard", headers=H["dali"])).status == 403  # another prefecture's token
    for name in ("token", "access_token"):  # a token in the URL ends up in logs: refused, even a good one
        response = await get(f"/api/v1/wallboard?{name}=sup-token")
        assert response.status == 400 and "URL" in (await response.json())["error"]


async def test_first_message_token_and_refusals(kunming: Board) -> None:
    for first, code in (
        ({"token": "nope"}, 4401),
        ({"tok": "sup-token"}, 4401),
        ({"token": "seat-token"}, 4403),
        ({"token": "dali-token"}, 4403),
    ):
        socket = await kunming.client.ws_connect("/api/v1/wallboard")
        await socket.send_json(first)
        message = await socket.receive(timeout=10)
        assert message.type is WSMsgType.CLOSE and socket.close_code == code, first
    socket = await kunming.client.ws_connect("/api/v1/wallboard")
    await socket.send_str("x" * 5000)  # too large for a token message
    assert (await socket.receive(timeout=10)).type is WSMsgType.CLOSE and socket.close_code == 4401
    socket = await kunming.client.ws_connect("/api/v1/wallboard")
    await socket.send_json({"token": "sup-token"})
    hello = await _next(socket)
    assert hello == {"type": "hello", "who": "值班长", "province": False}
    await kunming.board.push()
    board = await _next(socket)
    assert board["type"] == "board" and board["platform"] == "kunming" and "platforms" not in board
    assert board["queues"][0]["queue"] == "general" and board["totals"]["answer_rate"] is None
    await socket.close()
    for _ in range(1000):  # the server side notices the close on its own time
        if kunming.board.metrics()[-1].value == 0:
            break
        await asyncio.sleep(0.01)
    assert kunming.board.metrics()[-1].value == 0  # unsubscribed


async def test_pushes_reach_every_viewer_from_one_computation(kunming: Board) -> None:
    sockets = [await kunming.client.ws_connect("/api/v1/wallboard", headers=H["sup"]) for _ in range(3)]
    for socket in sockets:
        assert (await _next(socket))["type"] == "hello"
    pushes = kunming.board.pushes
    await kunming.board.push()
    boards = [await _next(socket) for socket in sockets]
    assert kunming.board.pushes == pushes + 1 and all(b == boards[0] for b in boards)
    for socket in sockets:
        await socket.close()


async def test_the_province_sees_every_platform(kunming: Board, client: aioredis.Redis) -> None:
    await wallboard("dali", client).push()  # another controller published its summary
    socket = await kunming.client.ws_connect("/api/v1/wallboard", headers=H["prov"])
    assert (await _next(socket))["province"] is True
    await kunming.board.push()
    board = await _next(socket)
    platforms = {p["platform"]: p for p in board["platforms"]}
    assert set(platforms) == {"dali", "kunming"}
    assert platforms["dali"]["reporting"] is True and "seats" not in platforms["dali"]
    # a prefecture's supervisor on the same controller gets no other platform
    own = await kunming.client.ws_connect("/api/v1/wallboard", headers=H["sup"])
    await _next(own)
    await kunming.board.push()
    assert "platforms" not in await _next(own)
    await socket.close()
    await own.close()


async def test_the_wall_page_and_its_assets() -> None:
    app = build_api(Backend(), API_TOKENS)
    assert app[TOKENS_KEY] is not None  # what the wallboard's socket authenticates with
    test_client: TestClient[Any, Any] = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        page = await test_client.get("/wall")
        assert page.status == 200 and page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Content-Security-Policy"] == "default-src 'self'; script-src 'self'; style-src 'self'"
        text = await page.text()
        assert "/static/wall.js" in text and "/static/wall.css" in text
        script = await test_client.get("/static/wall.js")
        assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
        source = await script.text()
        assert "/api/v1/wallboard" in source and "token=" not in source  # the token goes as the first message
        assert (await test_client.get("/static/wall.html")).status == 404  # assets are a fixed list
    finally:
        await test_client.close()
