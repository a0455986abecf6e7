"""The case desk under attack and on a bad day (session 5's review): a seat token of another
platform whose seat id is the same as ours ("1001" is on every platform), a hung Redis during a
case registration, and a screen pop waiting on Redis while other seats' events are due."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from acd.events import EventBus
from calls.caller_index import CallerKeys
from calls.model import CallRecord, CallState
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from cases import seat_events
from cases.model import StaticKnowledge, StaticUnits
from cases.routes import CaseDesk, add_case_routes
from cases.seat_events import SeatEventHub
from cases.service import CaseService
from cases.store import CaseStore, case_by_call_key
from hotline.api import make_auth_middleware
from hotline.redis_process import RedisProcess
from ivr.calendar import PlatformCalendar
from tests.support.waiting import wait_until
from tests.unit.test_cases import CALLER, DISPATCH, NOW, Audit
from tickets.store import INDEX, RedisTicketStore, export_stream
from web.api_common import AUDIT_KEY, SERVING_KEY, UNAUTHENTICATED_KEY, Serving, Unauthenticated
from web.auth import ApiToken, Role, TokenRegistry, token_sha256
from web.socket_auth import (
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_PER_TOKEN,
    MAX_SOCKET_MESSAGE_BYTES,
    PENDING_SOCKETS_KEY,
    TOKEN_SOCKETS_KEY,
    PendingSockets,
    pending_sockets,
)

HANG_GUARD_S = 30.0  # a wait on a hung Redis (or a stalled hub) would last for ever: this ends the test


def _token(name: str, role: Role, platform: str | None = None, seat: str | None = None) -> ApiToken:
    return ApiToken(name=name, role=role, sha256=token_sha256(f"{name}-token"), platform=platform, seat=seat)


TOKENS = TokenRegistry(
    [
        _token("km-seat", "seat", seat="1001"),
        _token("km-sup", "supervisor"),
        _token("yn-seat", "seat", "province", seat="1001"),  # the province's own seat 1001
        _token("yn-sup", "supervisor", "province"),
    ]
)


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token"}


class Desk:
    def __init__(self, client: TestClient[Any, Any], tracker: CallTracker, calls: RedisCallStore) -> None:
        self.client, self.tracker, self.calls = client, tracker, calls

    async def call(self, call_id: str, seat: str = "1001") -> CallRecord:
        record = CallRecord(
            call_id=call_id,
            platform="kunming",
            caller=CALLER,
            started_at=NOW,
            state=CallState.IN_IVR,
            seat=seat,
            queue="general",
        )
        self.tracker._live[call_id] = record
        await self.calls.save(record)
        return record


async def _desk(
    client: aioredis.Redis,
    redis_for_cases: aioredis.Redis | None = None,
    max_pending: int | None = None,
    per_token: int = DEFAULT_MAX_PER_TOKEN,
) -> tuple[Desk, SeatEventHub]:
    keys = CallerKeys("test-secret")
    calendar = PlatformCalendar()
    calls = RedisCallStore(client, timedelta(days=180), "kunming", keys)
    tracker = CallTracker(calls, "kunming", lambda: NOW)
    cases_client = redis_for_cases or client
    tickets = RedisTicketStore(cases_client, lambda _p: calendar, export_stream("kunming"))
    events = EventBus(client, platform="kunming")
    service = CaseService(
        store=CaseStore(cases_client, tickets, lambda _p: calendar, keys),
        live=tracker,
        stored=calls,
        units=StaticUnits({"kunming": ["wuhua-street"]}),
        knowledge=StaticKnowledge({}),
        events=events,
        clock=lambda: NOW,
    )
    hub = SeatEventHub(events, service)
    app = web.Application(middlewares=[make_auth_middleware(TOKENS)])
    app[SERVING_KEY] = Serving("kunming", False)
    app[UNAUTHENTICATED_KEY] = Unauthenticated()
    app[AUDIT_KEY] = Audit()
    if max_pending is not None or per_token != DEFAULT_MAX_PER_TOKEN:
        pending_sockets(app, max_pending or DEFAULT_MAX_PENDING, per_token)
    add_case_routes(app, CaseDesk(service, hub, TOKENS, frozenset({"1001"})))
    http = TestClient(TestServer(app))
    await http.start_server()
    return Desk(http, tracker, calls), hub


@pytest.fixture
async def desk(client: aioredis.Redis) -> AsyncIterator[Desk]:
    made, _ = await _desk(client)
    yield made
    await made.client.close()


async def test_the_provinces_seat_1001_is_not_this_platforms_seat_1001(desk: Desk) -> None:
    """Found: a province seat token with the seat id of a prefecture's seat read that seat's
    caller history with the whole number, and followed that seat's socket (whole numbers in
    every pop), because "own" compared seat ids only."""
    await desk.call("km-1", seat="1001")
    mine = await desk.client.get("/api/v1/calls/km-1/history", headers=as_("km-seat"))
    assert mine.status == 200 and (await mine.json())["caller_number"] == CALLER
    theirs = await desk.client.get("/api/v1/calls/km-1/history", headers=as_("yn-seat"))
    assert theirs.status == 403, await theirs.text()
    # the province's supervisor still sees it, masked
    sup = await desk.client.get("/api/v1/calls/km-1/history", headers=as_("yn-sup"))
    assert sup.status == 200 and "caller_number" not in await sup.json()
    # the socket: refused before the upgrade (header) and after it (first message)
    assert (await desk.client.get("/api/v1/seats/1001/events", headers=as_("yn-seat"))).status == 403
    socket = await desk.client.ws_connect("/api/v1/seats/1001/events")
    await socket.send_json({"token": "yn-seat-token"})
    message = await socket.receive(timeout=HANG_GUARD_S)
    assert message.type is WSMsgType.CLOSE and socket.close_code == 4403
    # this platform's seat 1001 follows its own
    socket = await desk.client.ws_connect("/api/v1/seats/1001/events")
    await socket.send_json({"token": "km-seat-token"})
    message = await socket.receive(timeout=HANG_GUARD_S)
    assert message.type is WSMsgType.TEXT and "hello" in message.data
    await socket.close()


class Bus:
    """The event bus seam (acd/events.py EventBus): events put by the test."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        return self.queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        pass


class HungPops:
    """The pop seam (CaseService.pop) on a Redis that does not answer until ``answer`` is set."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.asked: list[str] = []

    async def pop(self, call_id: str) -> dict[str, Any] | None:
        self.asked.append(call_id)
        await self.answer.wait()
        return {"call_id": call_id, "history": {"calls": [], "open_cases": []}}


async def test_a_pop_waiting_on_redis_holds_up_only_its_own_seat(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found: the hub routed events one at a time and awaited each pop (up to 3 s on a hung
    Redis) before the next event: a burst of offers delayed every seat's events, of every seat,
    by seconds each. Now a seat's events wait only for that seat's own pops, in order."""
    monkeypatch.setattr(seat_events, "POP_TIMEOUT_S", 3600.0)  # the pop waits as long as the test says
    bus, pops = Bus(), HungPops()
    hub = SeatEventHub(bus, pops)
    a, b = hub.subscribe("1001"), hub.subscribe("1002")
    running = asyncio.create_task(hub.run())
    try:
        await bus.queue.put({"type": "acd.offered", "seat": "1001", "call_id": "c-a", "queue": "general"})
        await bus.queue.put({"type": "acd.offered", "seat": "1002", "call_id": "c-b", "queue": "general"})
        await bus.queue.put({"type": "seat.state", "seat": "1002", "old": "ready", "new": "ringing"})
        await bus.queue.put({"type": "seat.state", "seat": "1001", "old": "ready", "new": "ringing"})
        # both pops are asked for at once: neither waits for the other
        await wait_until(lambda: len(pops.asked) == 2, HANG_GUARD_S)
        assert a.empty() and b.empty()  # each seat's state waits behind its own pop: order kept
        assert hub.was_offered("1001", "c-a") and hub.was_offered("1002", "c-b")
        pops.answer.set()
        got_a = [await asyncio.wait_for(a.get(), HANG_GUARD_S) for _ in range(2)]
        got_b = [await asyncio.wait_for(b.get(), HANG_GUARD_S) for _ in range(2)]
        assert [(e["type"], e.get("call_id")) for e in got_a] == [("call.offered", "c-a"), ("seat.state", None)]
        assert [(e["type"], e.get("call_id")) for e in got_b] == [("call.offered", "c-b"), ("seat.state", None)]
        assert got_a[0]["history"] == {"calls": [], "open_cases": []}
        # a seat with nothing waiting gets its events at once again
        await bus.queue.put({"type": "seat.state", "seat": "1002", "old": "ringing", "new": "ready"})
        assert (await asyncio.wait_for(b.get(), HANG_GUARD_S))["new"] == "ready"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_an_unrelated_seat_is_not_held_up_by_a_hung_pop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seat_events, "POP_TIMEOUT_S", 3600.0)
    bus, pops = Bus(), HungPops()
    hub = SeatEventHub(bus, pops)
    a, b = hub.subscribe("1001"), hub.subscribe("1002")
    running = asyncio.create_task(hub.run())
    try:
        await bus.queue.put({"type": "acd.offered", "seat": "1001", "call_id": "c-a", "queue": "general"})
        await bus.queue.put({"type": "seat.state", "seat": "1002", "old": "ready", "new": "paused"})
        # before the fix this waited for 1001's pop (for ever here)
        assert (await asyncio.wait_for(b.get(), HANG_GUARD_S))["new"] == "paused"
        assert a.empty()
        pops.answer.set()
        assert (await asyncio.wait_for(a.get(), HANG_GUARD_S))["type"] == "call.offered"
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_case_registered_while_redis_hangs_is_503_then_saved_once(redis_server: RedisProcess) -> None:
    """Redis stopped (SIGSTOP: the connection is accepted, nothing answered) while a seat
    registers: the answer is a 503 in bounded time, nothing is half-saved, and once Redis answers
    the same registration files one ticket (the connection the timeout cut is not reused with a
    stale reply on it)."""
    client = aioredis.Redis.from_url(redis_server.url)  # no socket timeout: only our bounds end waits
    await client.flushdb()
    made, _ = await _desk(client)
    try:
        await made.call("hung-1")
        redis_server.send_signal(signal.SIGSTOP)
        try:
            async with asyncio.timeout(HANG_GUARD_S):
                response = await made.client.post("/api/v1/calls/hung-1/case", json=DISPATCH, headers=as_("km-seat"))
            assert response.status == 503, await response.text()
            assert "Redis" in (await response.json())["error"]
        finally:
            redis_server.send_signal(signal.SIGCONT)
        assert await client.zcard(INDEX) == 0 and not await client.get(case_by_call_key("hung-1"))
        async with asyncio.timeout(HANG_GUARD_S):
            again = await made.client.post("/api/v1/calls/hung-1/case", json=DISPATCH, headers=as_("km-seat"))
            assert again.status == 201, await again.text()
            case_id = (await again.json())["case_id"]
            twice = await made.client.post("/api/v1/calls/hung-1/case", json=DISPATCH, headers=as_("km-seat"))
        assert twice.status == 409 and (await twice.json())["case_id"] == case_id
        assert await client.zcard(INDEX) == 1
        assert (await client.get(case_by_call_key("hung-1"))) == case_id.encode()
    finally:
        redis_server.send_signal(signal.SIGCONT)
        await made.client.close()
        await client.aclose()


async def test_a_token_in_the_seat_sockets_url_is_refused(desk: Desk) -> None:
    """Found: ``/api/v1/seats/1001/events?token=…`` was upgraded (the token ignored) and so
    taught clients nothing, while the URL with the token went to access logs and browser
    history. Refused as the wallboard's socket refuses it."""
    for name in ("token", "access_token", "auth"):
        response = await desk.client.get(f"/api/v1/seats/1001/events?{name}=km-seat-token", headers=as_("km-seat"))
        assert response.status == 400 and "URL" in (await response.json())["error"]


async def test_sockets_waiting_for_their_token_are_capped(client: aioredis.Redis) -> None:
    """Found (session 5, left open): every socket may wait 10 s for its first-message token and
    nothing capped how many did, so anyone who reached the port could hold the controller's
    connections. Now at most ``max_pending`` wait; the next is closed at once with 4429 (a
    browser sees no HTTP status on a refused upgrade), counted in /metrics; a desk with a token
    in its header never waits and still gets in, and a freed place takes a socket again."""
    cap = 3
    desk, _ = await _desk(client, max_pending=cap)
    pending = desk.client.app[PENDING_SOCKETS_KEY]
    try:
        idle = [await desk.client.ws_connect("/api/v1/seats/1001/events") for _ in range(cap)]
        await wait_until(lambda: pending.waiting == cap, timeout_s=HANG_GUARD_S)
        # one more, even with a good token ready to send: refused at once, not after 10 s
        extra = await desk.client.ws_connect("/api/v1/seats/1001/events")
        message = await extra.receive(timeout=HANG_GUARD_S)
        assert message.type is WSMsgType.CLOSE and extra.close_code == 4429
        assert pending.refused == 1 and pending.waiting == cap
        # another platform's seat token, or an unknown one, in the header: refused before the
        # upgrade as before, taking no place either
        for who, status in (("yn-seat", 403), ("nobody", 401)):
            assert (await desk.client.get("/api/v1/seats/1001/events", headers=as_(who))).status == status
        assert pending.waiting == cap and pending.refused == 1
        # a desk authenticated by its header still works beside the idle ones
        mine = await desk.client.ws_connect("/api/v1/seats/1001/events", headers=as_("km-seat"))
        hello = await mine.receive(timeout=HANG_GUARD_S)
        assert hello.type is WSMsgType.TEXT and "hello" in hello.data
        await mine.close()
        # one idle socket sends its token: its place is free again, and the next one gets it
        await idle[0].send_json({"token": "km-seat-token"})
        assert "hello" in (await idle[0].receive(timeout=HANG_GUARD_S)).data
        await wait_until(lambda: pending.waiting == cap - 1, timeout_s=HANG_GUARD_S)
        late = await desk.client.ws_connect("/api/v1/seats/1001/events")
        await late.send_json({"token": "km-seat-token"})
        assert "hello" in (await late.receive(timeout=HANG_GUARD_S)).data
        # a socket that gives up (closes) frees its place too; none is leaked
        for socket in (*idle, late):
            await socket.close()
        await wait_until(lambda: pending.waiting == 0, timeout_s=HANG_GUARD_S)
        assert pending.refused == 1
    finally:
        await desk.client.close()


async def test_a_seat_token_holds_at_most_its_cap_of_desk_sockets(client: aioredis.Redis) -> None:
    """Found (session 9): once authenticated, nothing capped a token's sockets: one seat token (or
    a leaked one) held any number of desks, each a subscriber every screen pop is copied to. Now
    the seat's desk sockets count against http.max_sockets_per_token: the next is refused (429 with
    the header, 4429 after a first-message token), another token is not, a closed one frees its
    place, and a refused one holds none."""
    desk, _ = await _desk(client, per_token=1)
    places = desk.client.app[TOKEN_SOCKETS_KEY]
    try:
        mine = await desk.client.ws_connect("/api/v1/seats/1001/events", headers=as_("km-seat"))
        assert "hello" in (await mine.receive(timeout=HANG_GUARD_S)).data
        assert (await desk.client.get("/api/v1/seats/1001/events", headers=as_("km-seat"))).status == 429
        second = await desk.client.ws_connect("/api/v1/seats/1001/events")
        await second.send_json({"token": "km-seat-token"})
        message = await second.receive(timeout=HANG_GUARD_S)
        assert message.type is WSMsgType.CLOSE and message.data == 4429
        assert places.total == 1 and places.refused == 2
        watcher = await desk.client.ws_connect("/api/v1/seats/1001/events", headers=as_("km-sup"))
        assert "hello" in (await watcher.receive(timeout=HANG_GUARD_S)).data  # its own place
        await mine.close()
        await wait_until(lambda: places.total == 1, timeout_s=HANG_GUARD_S)
        again = await desk.client.ws_connect("/api/v1/seats/1001/events")
        await again.send_json({"token": "km-seat-token"})
        assert "hello" in (await again.receive(timeout=HANG_GUARD_S)).data
        for socket in (again, watcher):
            await socket.close()
        await wait_until(lambda: places.open == {}, timeout_s=HANG_GUARD_S)
    finally:
        await desk.client.close()


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PendingSockets(0)


async def test_a_stopping_controller_closes_its_sockets_instead_of_waiting_for_the_browsers(
    client: aioredis.Redis,
) -> None:
    """Found (session 7): a SIGTERM waited 17–30 s for the desks' and wallboards' sockets (the
    browsers keep them open all day). Shutdown now closes every open socket with 1001 "going
    away" — authenticated or still waiting for its token — and the browsers reconnect."""
    desk, _ = await _desk(client)
    try:
        mine = await desk.client.ws_connect("/api/v1/seats/1001/events", headers=as_("km-seat"))
        assert "hello" in (await mine.receive(timeout=HANG_GUARD_S)).data
        idle = await desk.client.ws_connect("/api/v1/seats/1001/events")
        await wait_until(lambda: desk.client.app[PENDING_SOCKETS_KEY].waiting == 1, timeout_s=HANG_GUARD_S)
        await desk.client.app.shutdown()
        for socket in (mine, idle):
            message = await socket.receive(timeout=HANG_GUARD_S)
            assert message.type is WSMsgType.CLOSE and socket.close_code == 1001
    finally:
        await desk.client.close()


async def test_sockets_refused_before_their_token_stay_within_the_cap(client: aioredis.Redis) -> None:
    """Found (session 7 review): the cap counted a socket only until its token was read. A
    client that sent a bad token and never answered the 4401 close held its connection for
    aiohttp's 10 s close wait outside the cap, and so did every socket refused with 4429: at
    any rate of such clients the cap bounded nothing. Now a 4401 socket keeps its place until
    its close is done, a 4429 one is dropped without the 10 s wait, and a frame larger than
    a token ever is (aiohttp takes 4 MiB by default, buffered before the token is looked at)
    is refused by size."""
    desk, _ = await _desk(client, max_pending=1)
    pending = desk.client.app[PENDING_SOCKETS_KEY]
    try:
        # a bad token, then silence: the server's close waits for a reply that never comes
        silent = await desk.client.ws_connect("/api/v1/seats/1001/events", autoclose=False)
        await silent.send_json({"token": "not-a-token"})
        message = await silent.receive(timeout=HANG_GUARD_S)
        assert message.type is WSMsgType.CLOSE and message.data == 4401
        assert pending.waiting == 1  # still counted while its close hangs
        # the next is refused (4429) and, silent too, dropped without waiting for its reply:
        # its connection is gone while the first one's close still waits (aiohttp's 10 s)
        received = await asyncio.wait_for(_silent_socket(desk.client), HANG_GUARD_S)
        assert b"HTTP/1.1 101" in received and (4429).to_bytes(2, "big") in received  # refused, then dropped
        assert pending.waiting == 1 and pending.refused == 1
        await silent.close()
        await wait_until(lambda: pending.waiting == 0, timeout_s=HANG_GUARD_S)
        # a huge first frame is refused by its size, not buffered whole
        huge = await desk.client.ws_connect("/api/v1/seats/1001/events")
        await huge.send_str("x" * (MAX_SOCKET_MESSAGE_BYTES + 1))
        message = await huge.receive(timeout=HANG_GUARD_S)
        assert message.type is WSMsgType.CLOSE and message.data == WSCloseCode.MESSAGE_TOO_BIG
        await wait_until(lambda: pending.waiting == 0, timeout_s=HANG_GUARD_S)
        # a desk with a good token still gets in
        mine = await desk.client.ws_connect("/api/v1/seats/1001/events")
        await mine.send_json({"token": "km-seat-token"})
        assert "hello" in (await mine.receive(timeout=HANG_GUARD_S)).data
        await mine.close()
    finally:
        await desk.client.close()


async def _silent_socket(client: TestClient[Any, Any]) -> bytes:
    """Open a websocket by hand, send nothing, never answer a close: what came until the server
    dropped the connection."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"GET /api/v1/seats/1001/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        return await reader.read(-1)  # until EOF
    finally:
        writer.close()
