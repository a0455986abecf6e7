"""Issue 13's open points on a real Redis with fakes behind our Protocols: the 回访 comment is
transcribed by the ASR workers onto the EXISTING case (never a new ticket), and inbound first
holds new outbound calls and seats' callbacks while the 15 s service level is low."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from acd.seat import Seat, SeatState
from acd.stats import service_level_holds
from dialback.model import refusal
from outbound.policy import ChannelBudget
from outbound.service import OutboundService
from outbound.store import OutboundStore
from outbound.telephony import DialOutcome
from tickets import machine
from tickets.model import TicketState, Transcript, Visit
from tickets.store import RedisTicketStore
from voicemail.asr import NoTranscription
from voicemail.jobs import VoicemailMeta
from voicemail.queue import QUEUED, STREAM, AsrQueue
from voicemail.sink import TicketStoreSink
from voicemail.worker import AsrWorker, Transcriber, WorkerSettings

from .test_outbound import CALENDAR, MONDAY_10, FakeClock, FakeDialler, Units, config, dispatched, resolved
from .test_voicemail_jobs import FakeTranscriber

FAST = WorkerSettings(visibility_timeout_s=0.3, max_attempts=2, batch=2, block_ms=50, drain_timeout_s=5)
PLATFORM = "kunming"


class Rig:
    def __init__(self, client: aioredis.Redis, level: list[float | None], **cfg: object) -> None:
        self.clock = FakeClock(MONDAY_10)
        self.tickets = RedisTicketStore(client, lambda _p: CALENDAR)
        self.sink = TicketStoreSink(self.tickets, clock=self.clock)
        self.queue = AsrQueue(client, self.sink, PLATFORM)
        self.dialler = FakeDialler()
        self.service = OutboundService(
            config=config(**cfg), platform=PLATFORM, area_code="0871", timezone="Asia/Shanghai",
            store=OutboundStore(client, PLATFORM), tickets=self.tickets, units=Units, calendar=lambda: CALENDAR,
            dialler=self.dialler, inbound_waiting=lambda: 0, comments=self.queue, service_level=lambda: level[0],
            clock=self.clock,
        )  # fmt: skip

    async def tick(self) -> int:
        started = await self.service.tick()
        for _ in range(50):
            await asyncio.sleep(0)
        await asyncio.gather(*list(self.service._calls))
        return started

    def worker(self, transcriber: Transcriber, spool: Path) -> AsrWorker:
        return AsrWorker(self.queue, transcriber, self.sink, spool, consumer="w1", settings=FAST)


@contextlib.asynccontextmanager
async def running(worker: AsrWorker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        await task


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - polling Redis written by the worker task
            await asyncio.sleep(0.02)


async def visit_with_comment(r: Rig, client: aioredis.Redis, spool: Path) -> tuple[str, str]:
    """A 回访 answered with a comment recorded: the ticket id and the comment's spool name."""
    ticket = await resolved(client)
    await r.service.sweep()
    r.dialler.outcomes = [DialOutcome.ANSWERED]
    assert await r.tick() == 1
    job = await r.service.answered(f"{ticket.id}.visit.1.1")
    assert job is not None
    (spool / "outbound").mkdir(parents=True, exist_ok=True)
    (spool / "outbound" / f"{job.id}.wav").write_bytes(b"RIFF")  # the fake transcriber never reads it
    visit = Visit(at=MONDAY_10, resolved=True, satisfaction=2, comment_recording=f"{job.id}.wav")
    assert await r.service.visited(job, visit)
    return ticket.id, f"outbound/{job.id}.wav"


# item 1: the 回访 comment onto the existing case


async def test_the_visit_comment_is_transcribed_onto_its_case_not_a_new_ticket(
    client: aioredis.Redis, tmp_path: Path
) -> None:
    r = Rig(client, [None])
    ticket_id, recording = await visit_with_comment(r, client, tmp_path)
    assert await client.xlen(f"{STREAM}:{PLATFORM}") == 1  # queued by the 回访 itself
    assert not await r.queue.enqueue(recording, VoicemailMeta(platform=PLATFORM, onto_ticket=ticket_id))  # once
    transcriber = FakeTranscriber()
    async with running(r.worker(transcriber, tmp_path)):
        await eventually(lambda: r.tickets.has_visit_comment_transcript(ticket_id))
    assert transcriber.calls == [Path(recording).name]
    stored = await r.tickets.get(ticket_id)
    assert stored is not None and stored.state is TicketState.VISITED and stored.visit is not None
    assert stored.visit.comment_transcript == Transcript(text=f"text of {Path(recording).name}")
    assert stored.visit.satisfaction == 2  # the answers are kept
    last = stored.timeline[-1]
    assert (last.actor, last.state) == ("asr", TicketState.VISITED)
    assert last.note.startswith("回访 comment transcribed: text of ")
    assert [t.id for t in await r.tickets.list_tickets()] == [ticket_id]  # no new ticket
    assert await client.scard(f"{QUEUED}:{PLATFORM}") == 0
    # a job run twice (a worker died before its ack) changes nothing
    meta = VoicemailMeta(platform=PLATFORM, onto_ticket=ticket_id)
    assert not await r.queue.enqueue(recording, meta)
    assert await r.sink.attach(ticket_id, recording, Transcript(text="other")) == ticket_id
    again = await r.tickets.get(ticket_id)
    assert again is not None and again.timeline == stored.timeline and again.visit == stored.visit


async def test_without_a_model_the_case_notes_no_transcript(client: aioredis.Redis, tmp_path: Path) -> None:
    r = Rig(client, [None])
    ticket_id, _recording = await visit_with_comment(r, client, tmp_path)
    async with running(r.worker(NoTranscription(), tmp_path)):
        await eventually(lambda: r.tickets.has_visit_comment_transcript(ticket_id))
    stored = await r.tickets.get(ticket_id)
    assert stored is not None and stored.visit is not None
    assert stored.visit.comment_transcript == Transcript()
    assert stored.timeline[-1].note == "回访 comment: no transcript (listen to the recording)"
    assert await client.xlen(f"{STREAM}:{PLATFORM}") == 0  # the job was consumed


async def test_a_comment_for_a_case_without_that_comment_is_refused_and_parked(
    client: aioredis.Redis, tmp_path: Path
) -> None:
    r = Rig(client, [None])
    ticket = await dispatched(client)  # no visit at all
    meta = VoicemailMeta(platform=PLATFORM, onto_ticket=ticket.id)
    assert await r.queue.enqueue("outbound/forged.wav", meta)
    with pytest.raises(ValueError, match="no 回访 comment"):
        machine.visit_comment(ticket, "forged.wav", Transcript(text="x"), at=MONDAY_10, actor="asr")
    async with running(r.worker(FakeTranscriber(), tmp_path)):
        await eventually(lambda: _parked(r.queue))
    stored = await r.tickets.get(ticket.id)
    assert stored is not None and stored.timeline == ticket.timeline and stored.visit is None
    assert [t.id for t in await r.tickets.list_tickets()] == [ticket.id]


async def _parked(queue: AsrQueue) -> bool:
    return bool(await queue.list_parked())


# item 3: the 15 s service level holds new outbound and callbacks


def test_the_service_level_rule() -> None:
    assert service_level_holds(None, 0.8)  # nobody offered lately: no score is not a bad one
    assert service_level_holds(0.8, 0.8)
    assert not service_level_holds(0.79, 0.8)
    assert service_level_holds(0.1, 0.0)  # 0: the rule is off
    low = ChannelBudget(2, 0, 0, False, service_level=0.5, min_service_level=0.8)
    assert (low.free, low.held_by) == (0, "service_level")
    assert ChannelBudget(2, 0, 1, False, service_level=0.5, min_service_level=0.8).held_by == "inbound_waiting"
    assert ChannelBudget(2, 0, 0, False, service_level=0.9, min_service_level=0.8).free == 2


async def test_a_low_service_level_holds_new_outbound_calls(client: aioredis.Redis) -> None:
    level: list[float | None] = [0.6]
    r = Rig(client, level)
    await dispatched(client)
    await r.service.sweep()
    assert await r.tick() == 0
    assert r.service.held_by == "service_level"
    status = await r.service.status()
    assert status["held_by"] == "service_level"
    assert status["service_level"] == {"last_15min": 0.6, "min": 0.8}
    assert r.dialler.dialled == []
    level[0] = 0.85
    assert await r.tick() == 1
    off = Rig(client, [0.1], min_service_level=0.0)
    assert (await off.service.budget()).held_by != "service_level"


def test_click_to_call_is_refused_with_the_reason_while_the_level_is_low() -> None:
    seat = Seat("1001", SeatState.READY)
    ok = {"seat": seat, "inbound_waiting": 0, "number": "13900001111", "numbers_in_progress": set(),
          "seats_in_progress": set(), "connected": True}  # fmt: skip
    assert refusal(**ok, service_level=0.9, min_service_level=0.8) is None  # type: ignore[arg-type]
    low = refusal(**ok, service_level=0.5, min_service_level=0.8)  # type: ignore[arg-type]
    assert low is not None and (low.status, low.held_by) == (409, "service_level")
    assert "50%" in low.reason and "80%" in low.reason
    waiting = refusal(**{**ok, "inbound_waiting": 2}, service_level=0.5, min_service_level=0.8)  # type: ignore[arg-type]
    assert waiting is not None and waiting.held_by == "inbound_waiting"
