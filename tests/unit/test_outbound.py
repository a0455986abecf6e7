"""outbound/: the scheduler on a real Redis with a fake clock and a fake dialler (our Protocol):
planning from tickets, calling hours by day type, retries and max attempts, the do-not-call
list, one call per number, inbound first, pause, restart recovery, and the ticket side (sign
by phone, 回访 with needs_review)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from ivr.calendar import PlatformCalendar
from outbound.config import KindPolicy, OutboundConfig
from outbound.model import IllegalJobMove, Job, JobState, Kind, Result, after_try, is_job_id, move, retry_gap
from outbound.policy import ChannelBudget, DncInvalid, load_dnc, may_call, next_opening
from outbound.service import OutboundService, channel_id
from outbound.store import ClaimOutcome, OutboundStore
from outbound.telephony import DialOutcome
from telephony.say_zh import SOUND_SET, clock_time, spell
from tickets import machine
from tickets.model import Ticket, TicketCategory, TicketSource, TicketState, Visit
from tickets.store import INDEX, RedisTicketStore, needs_review_key, ticket_key
from units.model import Contact, Unit

CHINA = ZoneInfo("Asia/Shanghai")
# Monday 2026-11-30 (a workday), 10:00
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=CHINA)
UNIT_NUMBER = "087100000101"
CITIZEN = "13900001111"
CALENDAR = PlatformCalendar()


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class FakeDialler:
    """Records each dial; answers with the next scripted outcome (default: no answer)."""

    outcomes: list[DialOutcome] = field(default_factory=list)
    dialled: list[tuple[str, str, str]] = field(default_factory=list)
    live: set[str] = field(default_factory=set)
    connected: bool = True

    async def dial(self, job_id: str, channel_id: str, number: str, ring_s: int, caller_id: str) -> DialOutcome:
        self.dialled.append((job_id, number, caller_id))
        return self.outcomes.pop(0) if self.outcomes else DialOutcome.NO_ANSWER

    async def live_channels(self) -> set[str]:
        return self.live


class Units:
    def lookup(self, platform: str, unit_id: str) -> Unit | None:
        if unit_id != "km_roads":
            return None
        return Unit(
            id="km_roads",
            name="昆明市道路管理处",
            contacts=(Contact(number=UNIT_NUMBER),),
            matter_types=("roads",),
        )

    def for_matter_type(self, platform: str, matter_type: str) -> list[Unit]:
        return []


@dataclass
class Rig:
    service: OutboundService
    store: OutboundStore
    tickets: RedisTicketStore
    dialler: FakeDialler
    clock: FakeClock
    waiting: list[int]

    async def tick(self) -> int:
        started = await self.service.tick()
        for _ in range(50):  # let the dial tasks settle
            await asyncio.sleep(0)
        await asyncio.gather(*list(self.service._calls))
        return started


def config(**changes: object) -> OutboundConfig:
    base = OutboundConfig(
        enabled=True,
        reminder=KindPolicy(max_attempts=3, retry_after_s=(600, 1800)),
        visit=KindPolicy(max_attempts=2, retry_after_s=(3600,), workday_hours=("09:00-12:00", "14:00-20:00")),
    )
    return base.model_copy(update=changes)


def rig(client: aioredis.Redis, cfg: OutboundConfig | None = None, dnc: frozenset[str] = frozenset()) -> Rig:
    clock = FakeClock(MONDAY_10)
    tickets = RedisTicketStore(client, lambda _p: CALENDAR)
    store = OutboundStore(client, "kunming")
    dialler = FakeDialler()
    waiting = [0]
    service = OutboundService(
        config=cfg or config(),
        platform="kunming",
        area_code="0871",
        timezone="Asia/Shanghai",
        store=store,
        tickets=tickets,
        units=Units,
        calendar=lambda: CALENDAR,
        dialler=dialler,
        inbound_waiting=lambda: waiting[0],
        dnc=dnc,
        clock=clock,
    )
    return Rig(service, store, tickets, dialler, clock, waiting)


async def save_ticket(client: aioredis.Redis, ticket: Ticket) -> Ticket:
    await client.set(ticket_key(ticket.id), ticket.model_dump_json())
    await client.zadd(INDEX, {ticket.id: ticket.accepted_at.timestamp()})
    return ticket


async def dispatched(client: aioredis.Redis, at: datetime = MONDAY_10, sequence: int = 1) -> Ticket:
    ticket = machine.accept(
        platform="kunming", sequence=sequence, source=TicketSource.PHONE, accepted_at=at,
        category=TicketCategory.SERVICE_REQUEST, calendar=CALENDAR, caller=CITIZEN,
    )  # fmt: skip
    ticket = ticket.model_copy(update={"unit": "km_roads"})
    ticket = machine.transition(ticket, TicketState.DISPATCHED, at=at, actor="seat", calendar=CALENDAR)
    return await save_ticket(client, ticket)


async def resolved(client: aioredis.Redis, at: datetime = MONDAY_10) -> Ticket:
    ticket = machine.accept(
        platform="kunming", sequence=7, source=TicketSource.PHONE, accepted_at=at,
        category=TicketCategory.CONSULTATION, calendar=CALENDAR, caller=CITIZEN,
    )  # fmt: skip
    ticket = machine.transition(ticket, TicketState.RESOLVED, at=at, actor="seat", calendar=CALENDAR)
    return await save_ticket(client, ticket)


# the pure parts


def test_the_job_state_machine_refuses_illegal_moves() -> None:
    job = Job(id="KM-20261130-0001.reminder.1.1", platform="kunming", ticket_id="KM-20261130-0001",
              kind=Kind.REMINDER, number=UNIT_NUMBER)  # fmt: skip
    with pytest.raises(IllegalJobMove):
        move(job, JobState.ANSWERED, 0)
    done = move(move(job, JobState.DIALLING, 1), JobState.DONE, 2)
    with pytest.raises(IllegalJobMove):
        move(done, JobState.QUEUED, 3)


def test_retries_follow_the_schedule_and_stop_at_max_attempts() -> None:
    job = Job(id="KM-20261130-0001.reminder.1.1", platform="kunming", ticket_id="KM-20261130-0001",
              kind=Kind.REMINDER, number=UNIT_NUMBER, state=JobState.DIALLING, tries=1)  # fmt: skip
    again = after_try(job, Result.NO_ANSWER, 1000, 3, (600, 1800))
    assert (again.state, again.due_at) == (JobState.QUEUED, 1600)
    third = after_try(replace(again, state=JobState.DIALLING, tries=3), Result.NO_KEY, 5000, 3, (600, 1800))
    assert third.state is JobState.FAILED
    assert retry_gap(5, (600, 1800)) == 1800  # the last gap repeats
    signed = after_try(job, Result.SIGNED, 1000, 3, (600,))
    assert signed.state is JobState.DONE


def test_job_ids_from_asterisk_are_checked() -> None:
    assert is_job_id("KM-20261130-0001.reminder.1.2")
    assert is_job_id("XSBN-20261130-0012.visit.1.1")
    for bad in ("", "KM-20261130-0001", "KM-20261130-0001.reminder.1.1\nAction: Originate", "../x.visit.1.1"):
        assert not is_job_id(bad)


def test_calling_hours_by_day_type_and_the_next_opening() -> None:
    visit = config().visit
    assert may_call(visit, CALENDAR, MONDAY_10)
    assert not may_call(visit, CALENDAR, MONDAY_10.replace(hour=12, minute=30))  # lunch
    assert not may_call(visit, CALENDAR, MONDAY_10.replace(hour=22))  # night
    saturday = datetime(2026, 12, 5, 10, 0, tzinfo=CHINA)
    assert not may_call(visit, CALENDAR, saturday)  # no 回访 on a rest day unless configured
    assert next_opening(visit, CALENDAR, saturday) == datetime(2026, 12, 7, 9, 0, tzinfo=CHINA)
    # 2026-10-01 (National Day) is a holiday
    national_day = datetime(2026, 10, 1, 10, 0, tzinfo=CHINA)
    assert not may_call(visit, CALENDAR, national_day)
    weekend = visit.model_copy(update={"restday_hours": ("10:00-16:00",)})
    assert may_call(weekend, CALENDAR, saturday)
    never = KindPolicy(workday_hours=(), restday_hours=(), holiday_hours=())
    assert next_opening(never, CALENDAR, MONDAY_10) is None


def test_inbound_first_budget() -> None:
    assert ChannelBudget(2, 0, 0, False).free == 2
    assert ChannelBudget(2, 0, 1, False).free == 0
    assert ChannelBudget(2, 0, 1, False).held_by == "inbound_waiting"
    assert ChannelBudget(2, 2, 0, False).held_by == "channels_full"
    assert ChannelBudget(2, 0, 0, True).free == 0


def test_the_do_not_call_file_is_checked(tmp_path: Path) -> None:
    good = tmp_path / "dnc.yaml"
    good.write_text('numbers:\n  - "13900001111"\n  - "+8613900002222"\n', encoding="utf-8")
    assert load_dnc(good) == {"13900001111", "+8613900002222"}
    bad = tmp_path / "bad.yaml"
    bad.write_text('numbers:\n  - "13900001111"\n  - "139 0000"\n', encoding="utf-8")
    with pytest.raises(DncInvalid, match=r"bad.yaml:3: error: numbers.1"):
        load_dnc(bad)
    unquoted = tmp_path / "unquoted.yaml"
    unquoted.write_text("numbers:\n  - 13900001111\n", encoding="utf-8")
    with pytest.raises(DncInvalid, match="quoted"):
        load_dnc(unquoted)
    other = tmp_path / "other.yaml"
    other.write_text("people: []\n", encoding="utf-8")
    with pytest.raises(DncInvalid):
        load_dnc(other)


# on Redis


async def test_a_dispatched_case_is_planned_once_and_dialled_with_the_platform_number(
    client: aioredis.Redis,
) -> None:
    r = rig(client)
    ticket = await dispatched(client)
    assert await r.service.sweep() == 1
    assert await r.service.sweep() == 0  # idempotent (a restart sweeps again)
    assert await r.tick() == 1
    assert r.dialler.dialled == [(f"{ticket.id}.reminder.1.1", UNIT_NUMBER, "087112345")]
    job = await r.store.get(f"{ticket.id}.reminder.1.1")
    assert job is not None
    assert (job.state, job.tries, job.last_result) == (JobState.QUEUED, 1, "no_answer")
    assert job.due_at == pytest.approx(MONDAY_10.timestamp() + 600)
    stored = await r.tickets.get(ticket.id)
    assert stored is not None
    notes = [e.note for e in stored.timeline if e.actor == "outbound"]
    assert notes[0] == "outbound reminder: try 1/3 to 087******101"
    assert notes[1].startswith("outbound reminder: try 1 to 087******101: no_answer; next try 2026-11-30 10:10")
    assert UNIT_NUMBER not in stored.model_dump_json().replace(stored.caller, "")  # masked in notes
    # not due yet: nothing; due: the second try
    assert await r.tick() == 0
    r.clock.advance(600)
    assert await r.tick() == 1
    r.clock.advance(1800)
    assert await r.tick() == 1
    job = await r.store.get(f"{ticket.id}.reminder.1.1")
    assert job is not None and (job.state, job.tries) == (JobState.FAILED, 3)
    r.clock.advance(86_400)
    assert await r.tick() == 0
    assert len(r.dialler.dialled) == 3
    assert (await r.store.results())["reminder:no_answer"] == 3


async def test_the_second_reminder_comes_near_the_sign_for_deadline(client: aioredis.Redis) -> None:
    r = rig(client)
    ticket = await dispatched(client)
    await r.service.sweep()
    assert ticket.deadlines.sign_by is not None
    r.clock.now = ticket.deadlines.sign_by - timedelta(minutes=29)
    assert await r.service.sweep() == 1
    assert await r.store.get(f"{ticket.id}.reminder.1.2") is not None


async def test_a_ticket_signed_otherwise_cancels_its_reminder(client: aioredis.Redis) -> None:
    r = rig(client)
    ticket = await dispatched(client)
    await r.service.sweep()
    await r.tickets.transition(ticket.id, TicketState.SIGNED, at=MONDAY_10, actor="unit")
    assert await r.tick() == 0
    job = await r.store.get(f"{ticket.id}.reminder.1.1")
    assert job is not None and (job.state, job.last_result) == (JobState.CANCELLED, "not_needed")
    assert r.dialler.dialled == []


async def test_inbound_callers_waiting_stop_new_calls(client: aioredis.Redis) -> None:
    r = rig(client)
    await dispatched(client)
    await r.service.sweep()
    r.waiting[0] = 1
    assert await r.tick() == 0
    assert r.service.held_by == "inbound_waiting"
    assert r.dialler.dialled == []
    r.waiting[0] = 0
    assert await r.tick() == 1


async def test_pause_stops_and_resume_restarts(client: aioredis.Redis) -> None:
    r = rig(client)
    await dispatched(client)
    await r.service.sweep()
    await r.store.set_paused(True)
    assert await r.tick() == 0
    assert (await r.service.status())["paused"] is True
    await r.store.set_paused(False)
    assert await r.tick() == 1


async def test_max_channels_caps_calls_at_once(client: aioredis.Redis) -> None:
    r = rig(client, config(max_channels=1))
    await dispatched(client, sequence=1)
    await dispatched(client, sequence=2)
    await r.service.sweep()
    r.dialler.outcomes = [DialOutcome.ANSWERED, DialOutcome.ANSWERED]  # the AGI would settle them
    assert await r.tick() == 1
    assert await r.tick() == 0  # one channel in use
    assert (await r.service.status())["channels"] == {"in_use": 1, "max": 1}


async def test_one_call_at_a_time_per_number(client: aioredis.Redis) -> None:
    r = rig(client, config(max_channels=5))
    one = await dispatched(client, sequence=1)
    two = await dispatched(client, sequence=2)  # the same unit: the same number
    await r.service.sweep()
    r.dialler.outcomes = [DialOutcome.ANSWERED]
    assert await r.tick() == 1
    assert len(r.dialler.dialled) == 1
    waiting = [await r.store.get(f"{t.id}.reminder.1.1") for t in (one, two)]
    assert sorted(str(j.state) for j in waiting if j) == ["dialling", "queued"]


async def test_a_claim_is_atomic(client: aioredis.Redis) -> None:
    r = rig(client)
    ticket = await dispatched(client)
    await r.service.sweep()
    job = await r.store.get(f"{ticket.id}.reminder.1.1")
    assert job is not None
    now = MONDAY_10.timestamp()
    outcomes = await asyncio.gather(*(r.store.claim(job, now, 60) for _ in range(10)))
    assert outcomes.count(ClaimOutcome.CLAIMED) == 1


async def test_calling_hours_postpone_a_visit_to_the_next_opening(client: aioredis.Redis) -> None:
    r = rig(client)
    r.clock.now = datetime(2026, 12, 4, 20, 30, tzinfo=CHINA)  # Friday evening
    ticket = await resolved(client, at=r.clock.now)
    await r.service.sweep()
    assert await r.tick() == 0
    job = await r.store.get(f"{ticket.id}.visit.1.1")
    assert job is not None
    assert job.due_at == datetime(2026, 12, 7, 9, 0, tzinfo=CHINA).timestamp()  # Monday, not the weekend


async def test_a_number_on_the_do_not_call_list_is_never_dialled(client: aioredis.Redis) -> None:
    r = rig(client, dnc=frozenset({CITIZEN}))
    ticket = await resolved(client)
    await r.service.sweep()
    assert await r.tick() == 0
    job = await r.store.get(f"{ticket.id}.visit.1.1")
    assert job is not None and (job.state, job.last_result) == (JobState.CANCELLED, "dnc")
    stored = await r.tickets.get(ticket.id)
    assert stored is not None and "do-not-call" in stored.timeline[-1].note


async def test_a_restart_neither_loses_nor_repeats_a_try(client: aioredis.Redis) -> None:
    r = rig(client)
    ticket = await dispatched(client)
    await r.service.sweep()
    r.dialler.outcomes = [DialOutcome.UNKNOWN]  # the controller dies with the call unsettled
    assert await r.tick() == 1
    job_id = f"{ticket.id}.reminder.1.1"
    # a new controller (same Redis): the call is still on in Asterisk → left to its AGI
    again = rig(client)
    again.clock.now = r.clock.now
    job = await again.store.get(job_id)
    assert job is not None
    again.dialler.live = {channel_id(job)}
    assert await again.service.recover() == 0
    assert await again.tick() == 0 and again.dialler.dialled == []
    # gone from Asterisk: settled as interrupted and retried per policy, not at once
    again.dialler.live = set()
    assert await again.service.recover() == 1
    job = await again.store.get(job_id)
    assert job is not None and (job.state, job.last_result, job.tries) == (JobState.QUEUED, "interrupted", 1)
    assert await again.tick() == 0
    again.clock.advance(600)
    assert await again.tick() == 1
    assert len(again.dialler.dialled) == 1


async def test_key_1_signs_the_ticket_for_the_unit(client: aioredis.Redis) -> None:
    r = rig(client)
    ticket = await dispatched(client)
    await r.service.sweep()
    r.dialler.outcomes = [DialOutcome.ANSWERED]
    await r.tick()
    job = await r.service.answered(f"{ticket.id}.reminder.1.1")
    assert job is not None and job.state is JobState.ANSWERED
    assert await r.service.answered(job.id) is None  # a second AGI for the same try is refused
    assert await r.service.signed_by_phone(job)
    done = await r.service.finish(job.id, Result.SIGNED, expected=(JobState.ANSWERED,))
    assert done is not None and done.state is JobState.DONE
    stored = await r.tickets.get(ticket.id)
    assert stored is not None and stored.state is TicketState.SIGNED
    signed = next(e for e in stored.timeline if e.state is TicketState.SIGNED)
    assert signed.actor == "unit by phone" and "2026-11-30 10:00" in signed.note
    assert await client.get(f"hotline:outbound:lock:{UNIT_NUMBER}") is None  # the number is free again


async def test_a_visit_not_satisfied_flags_the_ticket(client: aioredis.Redis) -> None:
    r = rig(client)
    ticket = await resolved(client)
    await r.service.sweep()
    r.dialler.outcomes = [DialOutcome.ANSWERED]
    await r.tick()
    job = await r.service.answered(f"{ticket.id}.visit.1.1")
    assert job is not None
    assert await r.service.visited(job, Visit(at=MONDAY_10, resolved=True, satisfaction=3))
    stored = await r.tickets.get(ticket.id)
    assert stored is not None and stored.state is TicketState.VISITED
    assert stored.visit is not None and stored.visit.satisfaction == 3
    assert stored.needs_review
    assert await r.tickets.needs_review("kunming") == [ticket.id]
    assert await client.zcard(needs_review_key("kunming")) == 1


async def test_a_satisfied_visit_is_not_flagged(client: aioredis.Redis) -> None:
    r = rig(client)
    ticket = await resolved(client)
    await r.service.sweep()
    r.dialler.outcomes = [DialOutcome.ANSWERED]
    await r.tick()
    job = await r.service.answered(f"{ticket.id}.visit.1.1")
    assert job is not None
    assert await r.service.visited(job, Visit(at=MONDAY_10, resolved=True, satisfaction=1))
    stored = await r.tickets.get(ticket.id)
    assert stored is not None and not stored.needs_review
    assert await r.tickets.needs_review("kunming") == []


async def test_metrics_count_tries_by_kind_and_result(client: aioredis.Redis) -> None:
    r = rig(client)
    await dispatched(client)
    await r.service.sweep()
    r.dialler.outcomes = [DialOutcome.BUSY]
    await r.tick()
    samples = {(m.name, m.labels): m.value for m in await r.service.metrics()}
    key = ("hotline_outbound_attempts_total", (("platform", "kunming"), ("kind", "reminder"), ("result", "busy")))
    assert samples[key] == 1


def test_the_retry_schedule_is_checked() -> None:
    with pytest.raises(ValueError):
        KindPolicy(retry_after_s=())
    with pytest.raises(ValueError):
        KindPolicy(workday_hours=("21:00-08:00",))
    with pytest.raises(ValueError):
        OutboundConfig(max_channels=0)


async def test_only_a_plain_number_gets_a_visit(client: aioredis.Redis) -> None:
    r = rig(client)
    for sequence, caller in ((11, ""), (12, "anonymous"), (13, "١٣٩٠٠٠٠١١١١"), (14, "139000011;x")):
        ticket = machine.accept(
            platform="kunming", sequence=sequence, source=TicketSource.PHONE, accepted_at=MONDAY_10,
            category=TicketCategory.CONSULTATION, calendar=CALENDAR, caller=caller,
        )  # fmt: skip
        await save_ticket(
            client, machine.transition(ticket, TicketState.RESOLVED, at=MONDAY_10, actor="seat", calendar=CALENDAR)
        )
    assert await r.service.sweep() == 0


class ScriptedSession:
    """The AGI session of an answered reminder: what was played, and a unit pressing 1."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.played: list[str] = []

    async def get_variable(self, name: str) -> str:
        return self.job_id

    async def stream_file(self, path: str) -> None:
        self.played.append(Path(path).name)

    async def get_data(self, path: str, timeout_s: float) -> str:
        self.played.append(Path(path).name)
        return "1"

    async def hangup(self) -> None:
        self.played.append("hangup")


class ReminderService:
    """The service as the AGI script sees it, for one dispatched ticket."""

    def __init__(self, job: Job, ticket: Ticket) -> None:
        self.job, self._ticket = job, ticket
        self.finished: list[Result] = []

    async def answered(self, job_id: str) -> Job | None:
        return self.job if job_id == self.job.id else None

    async def ticket(self, ticket_id: str) -> Ticket | None:
        return self._ticket

    async def signed_by_phone(self, job: Job) -> bool:
        return True

    async def finish(self, job_id: str, result: Result, *, expected: object, detail: str) -> None:
        self.finished.append(result)


@pytest.mark.parametrize(("matter", "built", "heard"), [("housing_fund", True, True), ("housing_fund", False, False)])
async def test_a_reminder_names_the_case_its_matter_and_the_deadline(
    tmp_path: Path, matter: str, built: bool, heard: bool
) -> None:
    from outbound.agi import MATTER_PROMPT_PREFIX, OutboundCall

    ticket = machine.accept(
        platform="kunming", sequence=7, source=TicketSource.PHONE, accepted_at=MONDAY_10,
        category=TicketCategory.SERVICE_REQUEST, calendar=CALENDAR, caller=CITIZEN,
    ).model_copy(update={"unit": "km_housing_fund", "matter_type": matter})  # fmt: skip
    ticket = machine.transition(ticket, TicketState.DISPATCHED, at=MONDAY_10, actor="seat", calendar=CALENDAR)
    job = Job(
        id=f"{ticket.id}.reminder.1.1",
        platform="kunming",
        ticket_id=ticket.id,
        kind=Kind.REMINDER,
        number="087100000101",
    )
    if built:  # prepare() builds one prompt per matter type of the platform's desk codes
        (tmp_path / f"{MATTER_PROMPT_PREFIX}{matter}.wav").write_bytes(b"RIFF")
    service = ReminderService(replace(job, state=JobState.ANSWERED), ticket)
    session = ScriptedSession(job.id)
    sounds = tmp_path / "zh"
    sounds.mkdir()
    for name in SOUND_SET:  # the built Mandarin sound set
        (sounds / f"{name}.wav").write_bytes(b"RIFF")
    call = OutboundCall(service, tmp_path, tmp_path, "Asia/Shanghai", sounds_dir=sounds)  # type: ignore[arg-type]
    await call(session)  # type: ignore[arg-type]
    spoken = "".join(ch for ch in ticket.id if ch.isalnum())
    expected = ["reminder_intro", *spell(spoken)]
    expected += [f"{MATTER_PROMPT_PREFIX}{matter}"] if heard else []
    assert ticket.deadlines.sign_by is not None
    deadline = clock_time(ticket.deadlines.sign_by.astimezone(ZoneInfo("Asia/Shanghai")))  # in Mandarin, local time
    expected += ["reminder_deadline", *deadline, "reminder_keys", "reminder_signed", "hangup"]
    assert session.played == expected
    assert service.finished == [Result.SIGNED]
