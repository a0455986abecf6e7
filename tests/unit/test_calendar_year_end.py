"""The calendar runs out (chinesecalendar 1.11 knows no 2027): messages still become tickets, with
provisional deadlines that are counted again once the year is known; health and /metrics say how
long the calendar lasts. Real Redis; the ASR worker and ticket sink are the real ones.

The 2027 extension here is fictional: the real schedule is the State Council's to publish.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from common.metrics import Metric
from hotline.api import build_api
from hotline.calendar_watch import CalendarWatch, coverage_reason
from ivr.calendar import DayInfo, DayType, PlatformCalendar
from tests.unit.test_api import TOKEN_HEADERS, TOKENS, Backend
from tests.unit.test_tickets_export import Receiver, exporting
from tests.unit.test_voicemail_jobs import FAST, FakeTranscriber, eventually, running
from tickets.model import Ticket, TicketCategory, TicketState
from tickets.store import RedisTicketStore, export_stream, provisional_key
from voicemail.jobs import AsrQueue, AsrWorker, VoicemailMeta
from voicemail.sink import TicketStoreSink

CST = ZoneInfo("Asia/Shanghai")
DEC_11 = datetime(2026, 12, 11, 21, 0, tzinfo=CST)  # a Friday night: 15 working days reach 2027
DEC_28 = datetime(2026, 12, 28, 9, 0, tzinfo=CST)  # a Monday: even 5 working days reach 2027
FICTIONAL_2027 = PlatformCalendar(extension={date(2027, 1, 1): DayInfo(DayType.HOLIDAY, "fictional holiday")})
STREAM = export_stream("kunming")


class Calendars:
    """The running dialplan's calendar, as the controller sees it: replaced by a reload."""

    def __init__(self) -> None:
        self.current = PlatformCalendar()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def calendars() -> Calendars:
    return Calendars()


@pytest.fixture
def store(client: aioredis.Redis, calendars: Calendars) -> RedisTicketStore:
    return RedisTicketStore(client, lambda _platform: calendars.current, STREAM)


def meta(n: int, at: datetime, category: str) -> VoicemailMeta:
    return VoicemailMeta(
        platform="kunming",
        call_id=f"kunming-{n}",
        caller=f"1390000{n:04d}",
        recorded_at=at,
        tags={"category": category},
    )


async def file_through_the_worker(
    store: RedisTicketStore, client: aioredis.Redis, jobs: dict[str, VoicemailMeta]
) -> AsrQueue:
    """Queue messages and let the real ASR worker (fake speech) file them through the sink."""
    sink = TicketStoreSink(store)
    queue = AsrQueue(client, sink, "kunming")
    await queue.ensure_group()
    for recording, job_meta in jobs.items():
        assert await queue.enqueue(recording, job_meta)
    worker = AsrWorker(queue, FakeTranscriber(), sink, Path("/nonexistent"), consumer="w", settings=FAST)
    async with running(worker):
        for recording in jobs:
            await eventually(functools.partial(store.has_ticket, recording))
    return queue


async def ticket_of(store: RedisTicketStore, recording: str) -> Ticket:
    (ticket,) = [t for t in await store.list_tickets() if t.recording == recording]
    return ticket


async def test_messages_past_the_calendar_become_provisional_tickets_not_parked_jobs(
    store: RedisTicketStore, client: aioredis.Redis
) -> None:
    queue = await file_through_the_worker(
        store,
        client,
        {
            "voicemail/kunming-1.wav": meta(1, DEC_11, "complaint"),
            "voicemail/kunming-2.wav": meta(2, DEC_28, "consultation"),
            "voicemail/kunming-3.wav": meta(3, DEC_11, "consultation"),
        },
    )
    assert await queue.list_parked() == []
    complaint = await ticket_of(store, "voicemail/kunming-1.wav")
    assert complaint.id == "KM-20261211-0001" and complaint.category is TicketCategory.COMPLAINT
    assert complaint.deadlines_provisional
    assert complaint.deadlines.resolve_by == datetime(2027, 1, 1, 23, 59, 59, tzinfo=CST)  # Monday–Friday
    consultation = await ticket_of(store, "voicemail/kunming-2.wav")
    assert consultation.deadlines_provisional
    assert consultation.deadlines.resolve_by == datetime(2027, 1, 4, 23, 59, 59, tzinfo=CST)
    firm = await ticket_of(store, "voicemail/kunming-3.wav")
    assert not firm.deadlines_provisional  # 5 working days from 11 Dec: 18 Dec, known
    assert await store.count_provisional("kunming") == 2
    # the export says so too
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(STREAM))
    exported = {Ticket.model_validate_json(fields[b"ticket"]).id: fields for _id, fields in entries}
    assert Ticket.model_validate_json(exported[complaint.id][b"ticket"]).deadlines_provisional


async def test_adding_the_year_confirms_the_deadlines_on_the_timeline_and_in_the_export(
    store: RedisTicketStore, client: aioredis.Redis, calendars: Calendars
) -> None:
    await file_through_the_worker(
        store,
        client,
        {"voicemail/kunming-1.wav": meta(1, DEC_11, "complaint"), "voicemail/kunming-2.wav": meta(2, DEC_28, "")},
    )
    clock = Clock(datetime(2026, 12, 30, 9, 0, tzinfo=CST))
    watch = CalendarWatch("kunming", "kunming.yaml", lambda: calendars.current, store, clock)
    assert await watch.confirm_provisional() == 0  # no 2027 yet: nothing is touched
    assert await store.count_provisional("kunming") == 2
    stream_length = await client.xlen(STREAM)

    calendars.current = FICTIONAL_2027  # a calendar_extension for 2027 was added and reloaded
    assert await watch.confirm_provisional() == 2
    complaint = await ticket_of(store, "voicemail/kunming-1.wav")
    assert not complaint.deadlines_provisional
    assert complaint.deadlines.resolve_by == datetime(2027, 1, 4, 23, 59, 59, tzinfo=CST)  # 1 Jan is off
    assert complaint.timeline[-1].at == clock.now and complaint.timeline[-1].actor == "system"
    assert "confirmed" in complaint.timeline[-1].note and "was 2027-01-01" in complaint.timeline[-1].note
    consultation = await ticket_of(store, "voicemail/kunming-2.wav")
    assert consultation.deadlines.resolve_by == datetime(2027, 1, 5, 23, 59, 59, tzinfo=CST)
    assert await store.count_provisional("kunming") == 0
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(STREAM))
    recomputed = [fields for _id, fields in entries[stream_length:]]
    assert [fields[b"event"] for fields in recomputed] == [b"deadlines_recomputed"] * 2
    assert {fields[b"ticket_id"] for fields in recomputed} == {complaint.id.encode(), consultation.id.encode()}
    assert all(fields[b"idempotency_key"] != fields[b"ticket_id"] for fields in recomputed)
    assert await watch.confirm_provisional() == 0  # once only


async def test_an_extension_granted_into_the_missing_year_is_confirmed_too(
    store: RedisTicketStore, client: aioredis.Redis, calendars: Calendars
) -> None:
    await file_through_the_worker(
        store, client, {"voicemail/kunming-1.wav": meta(1, datetime(2026, 11, 16, 9, 0, tzinfo=CST), "complaint")}
    )
    ticket = await ticket_of(store, "voicemail/kunming-1.wav")
    assert not ticket.deadlines_provisional
    at = datetime(2026, 11, 17, 9, 0, tzinfo=CST)
    for state in (TicketState.DISPATCHED, TicketState.SIGNED, TicketState.IN_PROGRESS, TicketState.EXTENDED):
        ticket = await store.transition(ticket.id, state, at=at, actor="supervisor")
    assert not ticket.deadlines_provisional and await store.count_provisional("kunming") == 0
    ticket = await store.transition(ticket.id, TicketState.EXTENDED, at=at, actor="supervisor")
    assert ticket.deadlines_provisional and await store.count_provisional("kunming") == 1
    calendars.current = FICTIONAL_2027
    (confirmed,) = await store.confirm_provisional("kunming", date(2027, 12, 31), at)
    assert confirmed.deadlines.resolve_by == datetime(2027, 1, 5, 23, 59, 59, tzinfo=CST)
    assert confirmed.extensions == 2 and not confirmed.deadlines_provisional


async def test_a_sweep_racing_a_state_change_loses_nothing(
    store: RedisTicketStore, client: aioredis.Redis, calendars: Calendars
) -> None:
    await file_through_the_worker(store, client, {"voicemail/kunming-1.wav": meta(1, DEC_11, "complaint")})
    ticket = await ticket_of(store, "voicemail/kunming-1.wav")
    calendars.current = FICTIONAL_2027
    at = DEC_11 + timedelta(hours=13)
    await asyncio.gather(
        store.confirm_provisional("kunming", date(2027, 12, 31), at),
        store.transition(ticket.id, TicketState.DISPATCHED, at=at, actor="supervisor"),
    )
    saved = await store.get(ticket.id)
    assert saved is not None and saved.state is TicketState.DISPATCHED and not saved.deadlines_provisional
    actors = [(entry.actor, entry.state) for entry in saved.timeline]
    assert actors.count(("supervisor", TicketState.DISPATCHED)) == 1  # the state change stands
    assert sum("confirmed" in entry.note for entry in saved.timeline) == 1  # and the recount, once
    assert await client.zcard(provisional_key("kunming")) == 0


class Downstream(Receiver):
    """A webhook receiver that keeps what it was sent, with the event header."""

    def __init__(self) -> None:
        super().__init__(failures=0)
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.events.append(
            (request.headers["X-Hotline-Event"], request.headers["Idempotency-Key"], await request.json())
        )
        return web.Response(status=201)


async def test_the_webhook_gets_the_provisional_ticket_then_its_confirmed_deadlines(
    store: RedisTicketStore, client: aioredis.Redis, calendars: Calendars
) -> None:
    await file_through_the_worker(store, client, {"voicemail/kunming-1.wav": meta(1, DEC_11, "complaint")})
    calendars.current = FICTIONAL_2027
    (confirmed,) = await store.confirm_provisional("kunming", date(2027, 12, 31), DEC_11 + timedelta(days=5))
    downstream = Downstream()
    async with exporting(client, downstream, stream=STREAM) as exporter:
        await eventually(lambda: asyncio.sleep(0, exporter.delivered == 2))
    (created, created_key, first), (event, key, second) = downstream.events
    assert (created, created_key) == ("created", f"{confirmed.id}:{confirmed.uid}")
    assert first["deadlines_provisional"] is True and first["deadlines"]["resolve_by"].startswith("2027-01-01")
    assert event == "deadlines_recomputed" and key != created_key
    assert second["id"] == confirmed.id and second["deadlines_provisional"] is False
    assert second["deadlines"]["resolve_by"].startswith("2027-01-04")


def test_health_reason_from_60_days_before_the_end() -> None:
    calendar = PlatformCalendar()
    assert coverage_reason("kunming", "kunming.yaml", calendar.coverage(date(2026, 10, 31))) == ""
    reason = coverage_reason("kunming", "kunming.yaml", calendar.coverage(date(2026, 11, 1)))
    assert "2026-12-31 (60 days left)" in reason
    assert "2027" in reason and "calendar_extension in kunming.yaml" in reason
    past = coverage_reason("kunming", "kunming.yaml", calendar.coverage(date(2027, 1, 3)))
    assert "no holiday data after 2026-12-31" in past and "provisional" in past


class CalendarBackend(Backend):
    """The API's fake backend, with the calendar part of health and metrics from a real watch."""

    def __init__(self, client: aioredis.Redis, watch: CalendarWatch) -> None:
        super().__init__(client)
        self.watch = watch

    async def health(self) -> dict[str, Any]:
        calendar, reasons = self.watch.health()
        return {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "calendar": calendar,
            "components": {"ami": "up"},
        }

    async def metrics(self) -> list[Metric]:
        return await self.watch.metrics()


@pytest.fixture
async def api(
    client: aioredis.Redis, store: RedisTicketStore, calendars: Calendars
) -> AsyncIterator[tuple[Clock, TestClient[Any, Any]]]:
    clock = Clock(DEC_11)
    backend = CalendarBackend(client, CalendarWatch("kunming", "kunming.yaml", lambda: calendars.current, store, clock))
    backend.tickets = store
    test_client = TestClient(TestServer(build_api(backend, TOKENS)))
    await test_client.start_server()
    yield clock, test_client
    await test_client.close()


async def test_health_metrics_and_tickets_show_the_calendar(
    api: tuple[Clock, TestClient[Any, Any]], store: RedisTicketStore, client: aioredis.Redis, calendars: Calendars
) -> None:
    clock, http = api
    await file_through_the_worker(store, client, {"voicemail/kunming-1.wav": meta(1, DEC_11, "complaint")})
    response = await http.get("/api/v1/health")
    health = await response.json()
    assert health["status"] == "degraded"
    assert response.status == 200  # a warning: every component is up, calls are served
    assert health["calendar"] == {"covered_through": "2026-12-31", "days_left": 20}
    assert "20 days left" in health["reasons"][0]
    text = await (await http.get("/metrics")).text()
    assert "# TYPE hotline_calendar_days_left gauge" in text
    assert 'hotline_calendar_days_left{platform="kunming"} 20.0\n' in text
    assert 'hotline_tickets_provisional{platform="kunming"} 1.0\n' in text
    (listed,) = (await (await http.get("/api/v1/tickets", headers=TOKEN_HEADERS["sup"])).json())["tickets"]
    assert listed["deadlines_provisional"] is True

    clock.now = datetime(2026, 10, 1, 10, 0, tzinfo=CST)  # HOTLINE_TEST_NOW, as drills set it
    health = await (await http.get("/api/v1/health")).json()
    assert health["status"] == "ok" and health["reasons"] == [] and health["calendar"]["days_left"] == 91
    clock.now = DEC_11
    calendars.current = FICTIONAL_2027
    health = await (await http.get("/api/v1/health")).json()
    assert health["status"] == "ok" and health["calendar"]["covered_through"] == "2027-12-31"
    assert 'hotline_calendar_days_left{platform="kunming"} 385.0\n' in await (await http.get("/metrics")).text()


async def test_the_console_marks_provisional_deadlines(api: tuple[Clock, TestClient[Any, Any]]) -> None:
    """The console's own rendering of a ticket's resolve deadline, run in Node.js on the page served."""
    _, http = api
    page = await (await http.get("/")).text()
    assert "/api/v1/tickets?limit=30" in page and "health.reasons" in page
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    helpers = "\n".join(re.findall(r"^const (?:when|resolveBy) = .*$", page, re.MULTILINE))
    ticket = {"deadlines": {"resolve_by": "2027-01-01T23:59:59+08:00"}, "deadlines_provisional": True}
    script = f"{helpers}\nconst t = {json.dumps(ticket)};\nconsole.log(resolveBy(t));\n"
    script += "t.deadlines_provisional = false; console.log(resolveBy(t));\n"
    run = functools.partial(subprocess.run, [node, "-e", script], capture_output=True, text=True, check=True)
    shown = (await asyncio.to_thread(run)).stdout.splitlines()
    assert shown[0].startswith("2027") and shown[0].endswith("暂定 (provisional)")
    assert shown[1].startswith("2027") and "provisional" not in shown[1]
