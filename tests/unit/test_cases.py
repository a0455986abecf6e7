"""The case desk on a real Redis: registering a call's case, linking a repeat call, the
caller's history (HMAC index, 90-day window), the access rules, and each seat's own socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from acd.events import EventBus
from calls.caller_index import CallerKeys
from calls.model import CallRecord, CallState
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from cases.model import StaticKnowledge, StaticUnits, parse_case
from cases.routes import CASES_KEY, CaseDesk, add_case_routes
from cases.seat_events import SeatEventHub
from cases.service import CaseService
from cases.store import CaseStore
from hotline.api import make_auth_middleware
from ivr.calendar import PlatformCalendar
from recordings.access import AuditEntry
from tickets.model import Ticket, TicketState
from tickets.store import INDEX, RedisTicketStore, export_stream, ticket_key
from web.api_common import AUDIT_KEY, SERVING_KEY, UNAUTHENTICATED_KEY, Serving, Unauthenticated
from web.auth import ApiToken, TokenRegistry, token_sha256

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in China, a Monday
CALLER = "13812345678"
TOKENS = TokenRegistry(
    [
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
        ApiToken(name="dali-sup", role="supervisor", sha256=token_sha256("dali-token"), platform="dali"),
        ApiToken(name="s1", role="seat", sha256=token_sha256("s1-token"), seat="1001"),
        ApiToken(name="s2", role="seat", sha256=token_sha256("s2-token"), seat="1002"),
    ]
)
H = {name: {"Authorization": f"Bearer {name}-token"} for name in ("sup", "dali", "s1", "s2")}
DISPATCH = {
    "category": "complaint",
    "matter_type": "路灯",
    "location": "五华区青年路",
    "request": "路灯坏了三天\n晚上很黑",
    "unit": "wuhua-street",
    "outcome": "dispatched",
}


class Audit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def audit(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


@dataclass
class Desk:
    client: TestClient[Any, Any]
    redis: aioredis.Redis
    tracker: CallTracker
    calls: RedisCallStore
    tickets: RedisTicketStore
    events: EventBus
    knowledge: StaticKnowledge
    audit: Audit
    service: CaseService

    async def call(self, call_id: str, *, seat: str = "1001", caller: str = CALLER, **extra: Any) -> CallRecord:
        """A live call answered by ``seat``, saved as the tracker would."""
        record = CallRecord(
            call_id=call_id,
            platform=extra.pop("platform", "kunming"),
            caller=caller,
            started_at=extra.pop("started_at", NOW),
            state=extra.pop("state", CallState.IN_IVR),
            seat=seat,
            queue="general",
            call_recording=f"recordings/{call_id}.wav",
            **extra,
        )
        if record.is_open:
            self.tracker._live[call_id] = record  # what channel_created + bind leave in memory
        await self.calls.save(record)
        return record

    async def ticket(self, ticket_id: str) -> Ticket:
        raw = await self.redis.get(ticket_key(ticket_id))
        assert raw
        return Ticket.model_validate_json(raw)


@pytest.fixture
async def desk(client: aioredis.Redis) -> AsyncIterator[Desk]:
    keys = CallerKeys("test-secret")
    calendar = PlatformCalendar()
    calls = RedisCallStore(client, timedelta(days=180), "kunming", keys)
    tracker = CallTracker(calls, "kunming", lambda: NOW)
    tickets = RedisTicketStore(client, lambda _p: calendar, export_stream("kunming"))
    events = EventBus(client, platform="kunming")
    knowledge = StaticKnowledge({"kunming": ["kb-42"]})
    service = CaseService(
        store=CaseStore(client, tickets, lambda _p: calendar, keys),
        live=tracker,
        stored=calls,
        units=StaticUnits({"kunming": ["wuhua-street"], "dali": ["dali-unit"]}, matter_types=["路灯", "housing_fund"]),
        knowledge=knowledge,
        events=events,
        clock=lambda: NOW,
    )
    hub = SeatEventHub(events, service)
    audit = Audit()
    app = web.Application(middlewares=[make_auth_middleware(TOKENS)])
    app[SERVING_KEY] = Serving("kunming", False)
    app[UNAUTHENTICATED_KEY] = Unauthenticated()
    app[AUDIT_KEY] = audit
    add_case_routes(app, CaseDesk(service, hub, TOKENS, frozenset({"1001", "1002"})))
    http = TestClient(TestServer(app))
    await http.start_server()
    routing = asyncio.create_task(hub.run())
    yield Desk(http, client, tracker, calls, tickets, events, knowledge, audit, service)
    routing.cancel()
    await asyncio.gather(routing, return_exceptions=True)
    await http.close()


async def post(desk: Desk, path: str, body: dict[str, Any], who: str = "s1") -> tuple[int, dict[str, Any]]:
    response = await desk.client.post(path, json=body, headers=H[who])
    return response.status, await response.json()


async def test_a_dispatched_case_is_a_phone_ticket_with_its_clocks_and_call_link(desk: Desk) -> None:
    await desk.call("c-1")
    status, body = await post(desk, "/api/v1/calls/c-1/case", DISPATCH)
    assert status == 201, body
    assert body["case_id"] == "KM-20260302-0001" and body["state"] == "dispatched"
    ticket = await desk.ticket(body["case_id"])
    assert (ticket.source.value, ticket.call_id, ticket.recording, ticket.seat) == (
        "phone",
        "c-1",
        "recordings/c-1.wav",
        "1001",
    )
    assert (ticket.caller, ticket.unit, ticket.matter_type, ticket.request) == (
        CALLER,
        "wuhua-street",
        "路灯",
        "路灯坏了三天\n晚上很黑",
    )
    # the voicemail clocks: dispatch same day, resolve 15 working days for a complaint; sign-for from dispatch
    assert ticket.deadlines.dispatch_by.isoformat() == "2026-03-02T23:59:59+08:00"
    assert ticket.deadlines.resolve_by.date().isoformat() == "2026-03-23"
    assert ticket.deadlines.sign_by == NOW + timedelta(hours=2)
    assert [e.state.value for e in ticket.timeline] == ["accepted", "dispatched"]
    # the call record follows, and the ticket is exported like any other
    live = desk.tracker.get_live("c-1")
    assert live is not None and live.case_id == ticket.id
    ((_, fields),) = cast(list[Any], await desk.redis.xrange(export_stream("kunming")))
    assert fields[b"ticket_id"] == ticket.id.encode()
    # no number in any key name: the voicemail merge key too is named by the caller's digest now
    keys = [k.decode() if isinstance(k, bytes) else k for k in await desk.redis.keys("*")]
    assert [k for k in keys if CALLER in k] == []
    (merge_key,) = [k for k in keys if k.startswith("hotline:tickets:open-by-caller:kunming:")]
    assert await desk.redis.get(merge_key) == ticket.id.encode()
    assert any(k.startswith("hotline:calls:by-caller:kunming:") for k in keys)


async def test_the_survey_after_the_seat_goes_on_the_calls_case(desk: Desk) -> None:
    """ivr's SurveySink: the caller's answer lands on the case the seat registered for the call."""
    await desk.call("c-1")
    status, body = await post(desk, "/api/v1/calls/c-1/case", DISPATCH)
    assert status == 201, body
    record = desk.tracker.get_live("c-1")
    assert record is not None and record.case_id == body["case_id"]
    await desk.service.survey_answered(record, 3)
    ticket = await desk.ticket(body["case_id"])
    assert ticket.satisfaction == 3
    assert ticket.timeline[-1].note == "survey after call c-1: 不满意" and ticket.timeline[-1].actor == "caller"
    assert ticket.state.value == "dispatched"  # an answer is no state change
    # a call without a case: nothing to put it on, nothing written
    await desk.call("c-2")
    record_2 = desk.tracker.get_live("c-2")
    assert record_2 is not None
    await desk.service.survey_answered(record_2, 1)
    assert (await desk.ticket(body["case_id"])).satisfaction == 3


async def test_provisional_calendar_years_are_handled_like_voicemail(desk: Desk, client: aioredis.Redis) -> None:
    await desk.call("c-late", started_at=NOW)
    far = datetime(2031, 12, 20, 2, 0, tzinfo=UTC)  # a year chinese-calendar does not know
    desk.client.app[CASES_KEY].service._clock = lambda: far
    status, body = await post(desk, "/api/v1/calls/c-late/case", DISPATCH)
    assert status == 201, body
    ticket = await desk.ticket(body["case_id"])
    assert ticket.deadlines_provisional
    assert await client.zscore("hotline:tickets:provisional:kunming", ticket.id) == 2032


async def test_an_answered_case_is_resolved_and_counts_the_entry(desk: Desk) -> None:
    await desk.call("c-2")
    status, body = await post(desk, "/api/v1/calls/c-2/case", {**DISPATCH, "outcome": "answered"})
    assert (status, body["field"]) == (400, "knowledge_entry")
    unknown_entry = {**DISPATCH, "outcome": "answered", "knowledge_entry": "kb-9"}
    status, body = await post(desk, "/api/v1/calls/c-2/case", unknown_entry)
    assert (status, body["field"]) == (422, "knowledge_entry")
    answered = {**DISPATCH, "category": "consultation", "outcome": "answered", "knowledge_entry": "kb-42"}
    status, body = await post(desk, "/api/v1/calls/c-2/case", answered)
    assert status == 201 and body["state"] == "resolved"
    ticket = await desk.ticket(body["case_id"])
    assert ticket.knowledge_entry == "kb-42" and not ticket.is_open
    assert desk.knowledge.uses == {("kunming", "kb-42"): 1}
    assert not await desk.redis.keys("hotline:tickets:open*")  # nothing open to merge into


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"category": None}, 400, "category"),
        ({"unit": None}, 400, "unit"),
        ({"unit": " "}, 400, "unit"),
        ({"category": "gossip"}, 400, "category"),
        ({"unit": "a:b"}, 400, "unit"),
        ({"request": None}, 400, "request"),
        ({"request": "x" * 2001}, 400, "request"),
        ({"location": "a\r\nb"}, 400, "location"),
        ({"outcome": "ignored"}, 400, "outcome"),
        ({"unit": "no-such-unit"}, 422, "unit"),
        ({"unit": "dali-unit"}, 422, "unit"),  # another platform's unit
        ({"matter_type": "no_such_type"}, 422, "matter_type"),  # not in the desk codes
    ],
)
async def test_bad_cases_are_refused_naming_the_field_and_save_nothing(
    desk: Desk, change: dict[str, Any], status: int, field: str
) -> None:
    await desk.call("c-3")
    body = {k: v for k, v in {**DISPATCH, **change}.items() if v is not None}
    got, answer = await post(desk, "/api/v1/calls/c-3/case", body)
    assert (got, answer["field"]) == (status, field), answer
    assert field in answer["error"]
    assert await desk.redis.zcard(INDEX) == 0
    assert await desk.redis.exists("hotline:case:by-call:c-3") == 0


async def test_registering_twice_gives_409_with_the_case_never_two_tickets(desk: Desk) -> None:
    await desk.call("c-4")
    answers = await asyncio.gather(*(post(desk, "/api/v1/calls/c-4/case", DISPATCH) for _ in range(4)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 409, 409, 409]
    assert len({body["case_id"] for _, body in answers}) == 1
    assert await desk.redis.zcard(INDEX) == 1
    assert await desk.redis.xlen(export_stream("kunming")) == 1


async def test_a_failure_mid_way_leaves_neither_ticket_nor_link(desk: Desk, client: aioredis.Redis) -> None:
    await desk.call("c-5")

    def broken(_platform: str) -> PlatformCalendar:
        raise RuntimeError("calendar unreadable")

    store = CaseStore(client, desk.tickets, broken, CallerKeys("test-secret"))
    record = desk.tracker.get_live("c-5")
    assert record is not None
    with pytest.raises(RuntimeError):
        await store.register(record, parse_case(DISPATCH), seat="1001", actor="s1", at=NOW)
    assert await client.zcard(INDEX) == 0
    assert await client.keys("hotline:ticket:*") == []
    assert await client.exists("hotline:case:by-call:c-5") == 0


async def test_access_other_seat_other_platform(desk: Desk) -> None:
    await desk.call("c-6", seat="1002")
    await desk.call("c-7", platform="dali", seat="1001")
    status, body = await post(desk, "/api/v1/calls/c-6/case", DISPATCH, who="s1")
    assert status == 403 and "answered" in body["error"]
    assert (await post(desk, "/api/v1/calls/c-6/case", DISPATCH, who="dali"))[0] == 403
    assert (await post(desk, "/api/v1/calls/c-7/case", DISPATCH, who="sup"))[0] == 403  # a dali call
    assert (await post(desk, "/api/v1/calls/c-7/case", DISPATCH, who="s1"))[0] == 403
    assert (await post(desk, "/api/v1/calls/nope/case", DISPATCH, who="sup"))[0] == 404
    assert (await post(desk, "/api/v1/calls/a:b/case", DISPATCH, who="sup"))[0] == 404
    assert (await desk.client.post("/api/v1/calls/c-6/case", json=DISPATCH)).status == 401
    status, body = await post(desk, "/api/v1/calls/c-6/case", DISPATCH, who="sup")  # supervisors: any of theirs
    assert status == 201
    assert (await desk.ticket(body["case_id"])).seat == "1002"
    assert await desk.redis.zcard(INDEX) == 1


async def test_a_repeat_call_links_to_the_open_case(desk: Desk) -> None:
    await desk.call("c-8")
    _, first = await post(desk, "/api/v1/calls/c-8/case", DISPATCH)
    await desk.call("c-9")
    status, body = await post(desk, "/api/v1/calls/c-9/link", {"ticket_id": first["case_id"]})
    assert status == 200 and body["linked_call_ids"] == ["c-9"]
    ticket = await desk.ticket(first["case_id"])
    assert ticket.timeline[-1].note == "repeat request by phone: call c-9, seat 1001"
    live = desk.tracker.get_live("c-9")
    assert live is not None and live.case_id == ticket.id
    # a call with a case can neither link again nor register
    assert (await post(desk, "/api/v1/calls/c-9/link", {"ticket_id": first["case_id"]}))[0] == 409
    status, body = await post(desk, "/api/v1/calls/c-9/case", DISPATCH)
    assert (status, body["case_id"]) == (409, first["case_id"])
    assert await desk.redis.zcard(INDEX) == 1


async def test_links_are_refused_for_closed_missing_and_other_platforms_tickets(desk: Desk) -> None:
    await desk.call("c-10")
    answered = {**DISPATCH, "outcome": "answered", "knowledge_entry": "kb-42"}
    _, closed = await post(desk, "/api/v1/calls/c-10/case", answered)
    await desk.call("c-11", platform="dali", caller="13900000000")
    elsewhere = await CaseStore(desk.redis, desk.tickets, lambda _p: PlatformCalendar(), CallerKeys("x")).register(
        CallRecord(call_id="c-11", platform="dali", started_at=NOW, caller="13900000000"),
        parse_case({**DISPATCH, "unit": "dali-unit"}),
        seat="",
        actor="t",
        at=NOW,
    )
    await desk.call("c-12")
    status, body = await post(desk, "/api/v1/calls/c-12/link", {"ticket_id": closed["case_id"]})
    assert status == 409 and "only open tickets" in body["error"]
    assert (await post(desk, "/api/v1/calls/c-12/link", {"ticket_id": elsewhere.id}))[0] == 403
    assert (await post(desk, "/api/v1/calls/c-12/link", {"ticket_id": "KM-20990101-0001"}))[0] == 404
    assert (await post(desk, "/api/v1/calls/c-12/link", {"ticket_id": "by-call:c-10"}))[0] == 404
    assert (await post(desk, "/api/v1/calls/c-12/link", {}))[0] == 400
    assert (await desk.ticket(elsewhere.id)).linked_call_ids == ()
    assert await desk.redis.exists("hotline:case:by-call:c-12") == 0


async def test_history_90_days_open_cases_and_who_sees_the_number(desk: Desk) -> None:
    for days, call_id in ((100, "old"), (80, "h-1"), (3, "h-2")):
        await desk.call(call_id, state=CallState.ENDED, started_at=NOW - timedelta(days=days))
    await desk.call("x-1", caller="13900000000", state=CallState.ENDED, started_at=NOW - timedelta(days=1))
    await desk.call("h-3")
    _, case = await post(desk, "/api/v1/calls/h-3/case", DISPATCH)
    await desk.call("h-4", seat="1001")
    response = await desk.client.get("/api/v1/calls/h-4/history", headers=H["s1"])
    assert response.status == 200
    body = await response.json()
    assert [c["call_id"] for c in body["calls"]] == ["h-3", "h-2", "h-1"]  # not "old", not another number
    assert {c["caller"] for c in body["calls"]} == {"138****5678"}
    assert body["calls"][0]["case_id"] == case["case_id"]
    assert [c["id"] for c in body["open_cases"]] == [case["case_id"]]
    assert body["open_cases"][0]["request"] == DISPATCH["request"]
    assert body["caller_number"] == CALLER and body["caller"] == "138****5678"  # its own call
    sup = await (await desk.client.get("/api/v1/calls/h-4/history", headers=H["sup"])).json()
    assert "caller_number" not in sup and sup["calls"] == body["calls"]
    assert (await desk.client.get("/api/v1/calls/h-4/history", headers=H["s2"])).status == 403
    assert [(e.action, e.result) for e in desk.audit.entries] == [
        ("calls.history", "allowed"),
        ("calls.history", "allowed"),
        ("calls.history", "denied"),
    ]
    # a closed case leaves the open list
    await desk.tickets.transition(case["case_id"], TicketState.SIGNED, at=NOW, actor="u")
    body = await (await desk.client.get("/api/v1/calls/h-4/history", headers=H["sup"])).json()
    assert len(body["open_cases"]) == 1  # signed is still open


async def _next(socket: Any) -> dict[str, Any]:
    message = await socket.receive(timeout=10)
    assert message.type is WSMsgType.TEXT, message
    data: dict[str, Any] = json.loads(message.data)
    return data


async def test_a_seat_socket_gets_only_its_own_pops(desk: Desk) -> None:
    await desk.call("p-0", state=CallState.ENDED, started_at=NOW - timedelta(days=2))
    await desk.call("p-1", seat="")
    await desk.call("p-2", seat="", caller="13900000000")
    mine = await desk.client.ws_connect("/api/v1/seats/1001/events")
    await mine.send_json({"token": "s1-token"})  # a browser's way: the first message
    assert (await _next(mine))["type"] == "hello"
    theirs = await desk.client.ws_connect("/api/v1/seats/1002/events", headers=H["s2"])
    assert (await _next(theirs))["type"] == "hello"
    await desk.events.publish("acd.offered", NOW, call_id="p-2", seat="1002", queue="general")
    await desk.events.publish("acd.offered", NOW, call_id="p-1", seat="1001", queue="general")
    pop = await _next(mine)
    assert (pop["type"], pop["call_id"], pop["caller_number"], pop["caller"]) == (
        "call.offered",
        "p-1",
        CALLER,
        "138****5678",
    )
    assert [c["call_id"] for c in pop["history"]["calls"]] == ["p-0"]
    other = await _next(theirs)
    assert other["call_id"] == "p-2" and other["caller_number"] == "13900000000"
    # the seat was rung for p-1: it may read its history before answering
    assert (await desk.client.get("/api/v1/calls/p-1/history", headers=H["s1"])).status == 200
    assert (await desk.client.get("/api/v1/calls/p-2/history", headers=H["s1"])).status == 403
    await desk.events.publish("acd.connected", NOW, call_id="p-1", seat="1001", waited_s=1.0)
    ended = {"old": "on_call", "new": "wrap_up", "reason": "", "cause": "call ended"}
    await desk.events.publish("seat.state", NOW, seat="1001", **ended)
    assert [(await _next(mine))["type"] for _ in range(3)] == ["call.answered", "call.ended", "seat.state"]
    await mine.close()
    await theirs.close()


async def test_seat_socket_refusals(desk: Desk) -> None:
    assert (await desk.client.get("/api/v1/seats/1002/events", headers=H["s1"])).status == 403
    assert (await desk.client.get("/api/v1/seats/1001/events", headers=H["dali"])).status == 403
    assert (await desk.client.get("/api/v1/seats/9999/events", headers=H["sup"])).status == 404
    assert (await desk.client.get("/api/v1/seats/1001/events", headers={"Authorization": "Bearer x"})).status == 401
    for first, code in (({"token": "nope"}, 4401), ({"token": "s2-token"}, 4403), ({"tok": 1}, 4401)):
        socket = await desk.client.ws_connect("/api/v1/seats/1001/events")
        await socket.send_json(first)
        message = await socket.receive(timeout=10)
        assert message.type is WSMsgType.CLOSE and socket.close_code == code
    # a supervisor may follow any seat, without the whole number
    watcher = await desk.client.ws_connect("/api/v1/seats/1001/events", headers=H["sup"])
    assert (await _next(watcher))["role"] == "supervisor"
    await desk.call("p-9", seat="")
    await desk.events.publish("acd.offered", NOW, call_id="p-9", seat="1001", queue="general")
    pop = await _next(watcher)
    assert pop["call_id"] == "p-9" and "caller_number" not in pop and pop["caller"] == "138****5678"
    await watcher.close()
