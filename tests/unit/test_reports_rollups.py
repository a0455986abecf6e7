"""Report rollups against a slow recomputation from the records themselves (hypothesis), on a
real Redis: generated calls over several days around 00:00 China time, and cases whose resolve
deadlines span the 2026 Spring Festival with its 调休 make-up working day (Saturday 2026-02-14)."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.seat import Seat, SeatState
from acd.stats import queue_stats, seat_stats
from calls.model import CallOutcome, CallRecord, CallState
from calls.store import RedisCallStore
from hotline.redis_process import RedisProcess
from ivr.calendar import PlatformCalendar
from reports.buckets import Period, hour_bucket, hours_between
from reports.counting import Kind, call_increments, seat_increments
from reports.query import rows
from reports.service import ReportService
from reports.store import RedisRollups
from tickets import machine
from tickets.model import TicketCategory, TicketSource, TicketState, Visit

CHINA = ZoneInfo("Asia/Shanghai")
# 2026-03-01 20:00 China: three days of calls around two midnights
START = datetime(2026, 3, 1, 20, 0, tzinfo=CHINA)
_platforms = itertools.count()


def fresh_platform() -> str:
    return f"p{next(_platforms)}"


async def _background_now(_what: str, job: object) -> None:  # pragma: no cover - not used on these paths
    raise AssertionError("not expected")


def service(client: aioredis.Redis, platform: str) -> ReportService:
    rollups = RedisRollups(client, keep=timedelta(days=40), marker_ttl=timedelta(days=1))
    return ReportService(rollups, platform, "Asia/Shanghai", lambda what, job: None)


@st.composite
def calls(draw: st.DrawFn, platform: str = "x") -> CallRecord:
    # half the calls land within a minute of a China midnight, to test the day boundary
    near_midnight = draw(st.booleans())
    if near_midnight:
        day = draw(st.integers(0, 2))
        midnight = datetime(2026, 3, 2, tzinfo=CHINA) + timedelta(days=day)
        started = midnight + timedelta(milliseconds=draw(st.integers(-60_000, 60_000)))
    else:
        started = START + timedelta(milliseconds=draw(st.integers(0, 3 * 86_400_000)))
    queued = started + timedelta(milliseconds=draw(st.integers(0, 40_000)))
    wait = timedelta(milliseconds=draw(st.sampled_from([0, 14_999, 15_000, 15_001, 3_000, 70_000, 400_000])))
    fate = draw(st.sampled_from(["answered", "abandoned", "voicemail", "ivr_only"]))
    talk = timedelta(milliseconds=draw(st.integers(1_000, 900_000)))
    queue = draw(st.sampled_from(["general", "dialect"])) if fate != "ivr_only" else ""
    answered = queued + wait if fate == "answered" else None
    ended = (answered + talk) if answered else queued + wait
    outcome = {
        "answered": CallOutcome.ANSWERED,
        "abandoned": CallOutcome.ABANDONED,
        "voicemail": CallOutcome.VOICEMAIL,
        "ivr_only": CallOutcome.IVR_COMPLETED,
    }[fate]
    path = tuple(draw(st.lists(st.sampled_from(["greeting", "menu", "hours", "queue"]), min_size=0, max_size=4)))
    digits = tuple(f"menu={k}" for k in draw(st.lists(st.sampled_from("0129#"), max_size=3)))
    return CallRecord(
        call_id=f"c{draw(st.integers(0, 10**12))}",
        platform=platform,
        caller="13812345678",
        state=CallState.ENDED,
        started_at=started.astimezone(UTC),
        ended_at=ended.astimezone(UTC),
        queue=queue,
        queued_at=queued.astimezone(UTC) if queue else None,
        seat=draw(st.sampled_from(["1001", "1002"])) if answered else "",
        seat_answered_at=answered.astimezone(UTC) if answered else None,
        survey_score=draw(st.sampled_from([None, 1, 2, 3])) if answered else None,
        outcome=outcome,
        ivr_path=path,
        digits=digits,
    )


async def _report_keys(client: aioredis.Redis) -> dict[str, object]:
    """Every report key: a hash's fields, or a marker; and whether it expires."""
    seen: dict[str, object] = {}
    for key in sorted(await client.keys("hotline:reports:*")):
        kind = await client.type(key)
        value = await client.hgetall(key) if kind in (b"hash", "hash") else await client.get(key)
        seen[str(key)] = (value, await client.ttl(key) > 0)
    return seen


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(calls(), min_size=1, max_size=30, unique_by=lambda r: r.call_id), twice=st.booleans())
async def test_counts_sent_with_the_call_writers_round_leave_redis_as_the_listener_did(
    redis_server: RedisProcess, records: list[CallRecord], twice: bool
) -> None:
    """An ended call's roll-up rides with the call store's save (calls/store.py CountOnce):
    the same hashes, fields, amounts, markers and expiries as ``on_call_ended``, counted once
    when sent again; the records themselves are saved as before."""
    listener_way = aioredis.Redis(port=redis_server.port, db=3)
    writer_way = aioredis.Redis(port=redis_server.port, db=4)
    try:
        for db in (listener_way, writer_way):
            await db.flushdb()
        records = [r.model_copy(update={"queue": "方言" if r.queue == "dialect" else r.queue}) for r in records]
        by_listener, by_writer = service(listener_way, "x"), service(writer_way, "x")
        store = RedisCallStore(writer_way, timedelta(days=30), "x")
        for record in records:
            await by_listener.on_call_ended(record)
        counts = [count for record in records if (count := by_writer.ended_counts(record)) is not None]
        assert await store.save_many(records, counts) == {}
        if twice:  # the writer's round retried after a lost reply, or the call ended again
            assert await store.save_many([], counts) == {}
        assert await _report_keys(writer_way) == await _report_keys(listener_way)
        assert bool(await _report_keys(writer_way)) == bool(counts)  # a marker at least, for each count
        assert [r.call_id for r in await store.many([r.call_id for r in records])] == [r.call_id for r in records]
    finally:
        await listener_way.aclose()
        await writer_way.aclose()


def _day_window(day: date) -> tuple[datetime, timedelta]:
    """acd/stats.py's window as (now, window) that selects exactly the local day ``day``."""
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), CHINA)
    return end, timedelta(days=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(calls(), min_size=1, max_size=60, unique_by=lambda r: r.call_id), twice=st.booleans())
async def test_queue_and_seat_rollups_match_a_recount(
    client: aioredis.Redis, records: list[CallRecord], twice: bool
) -> None:
    platform = fresh_platform()
    records = [r.model_copy(update={"platform": platform}) for r in records]
    reports = service(client, platform)
    for record in records:
        await reports.on_call_ended(record)
        if twice:  # a listener retried, a call ended again after a restart: counted once
            await reports.on_call_ended(record)
    first, last = date(2026, 3, 1), date(2026, 3, 5)
    by_day = await reports.report(Kind.QUEUES, platform, first, last, Period.DAY)
    got = {(row["period"], row["queue"]): row for row in by_day}
    day = first
    while day <= last:
        for queue in ("general", "dialect"):
            # the slow way: acd/stats.py over the records of that local day (queued_at), now = next midnight
            now, window = _day_window(day)
            mine = [r for r in records if r.queued_at is not None and r.queued_at.astimezone(CHINA).date() == day]
            expected = queue_stats(queue, mine, now, window)
            row = got.get((day.isoformat(), queue))
            if expected.offered == 0:
                assert row is None
                continue
            assert row is not None
            assert (row["offered"], row["answered"], row["answered_within_15s"]) == (
                expected.offered,
                expected.answered,
                expected.answered_within_15s,
            )
            assert (row["abandoned"], row["overflowed"]) == (expected.abandoned, expected.overflowed)
            assert (row["surveyed"], row["satisfied"]) == (expected.surveyed, expected.satisfied)
            if expected.answered:
                assert row["asa_s"] == pytest.approx(expected.average_speed_of_answer_s, abs=0.051)
                assert row["average_talk_s"] == pytest.approx(expected.average_talk_s, abs=0.051)
            waits = sum(v for k, v in row.items() if k.startswith("abandoned_wait_le_"))
            assert waits == expected.abandoned
        for seat in ("1001", "1002"):
            now, window = _day_window(day)
            mine = [
                r
                for r in records
                if r.seat_answered_at is not None and r.seat_answered_at.astimezone(CHINA).date() == day
            ]
            expected_seat = seat_stats(seat, mine, now, window)
            seat_rows = await reports.report(Kind.SEATS, platform, day, day, Period.DAY)
            seat_row = next((r for r in seat_rows if r["seat"] == seat), None)
            if expected_seat.answered == 0:
                assert seat_row is None
            else:
                assert seat_row is not None
                assert seat_row["calls"] == expected_seat.answered
                assert seat_row["talk_s"] == pytest.approx(expected_seat.talk_s, abs=0.051)
                assert seat_row["surveyed"] == expected_seat.surveyed
        day += timedelta(days=1)
    # hour rows add up to the day rows; the month row to the sum of the days
    by_hour = await reports.report(Kind.QUEUES, platform, first, last, Period.HOUR)
    by_month = await reports.report(Kind.QUEUES, platform, first, last, Period.MONTH)
    for queue in ("general", "dialect"):
        offered = sum(r["offered"] for r in by_day if r["queue"] == queue)
        assert offered == sum(r["offered"] for r in by_hour if r["queue"] == queue)
        assert offered == sum(r["offered"] for r in by_month if r["queue"] == queue)
    # IVR: exits are the last node of each call with a path, by the local day it started
    ivr = await reports.report(Kind.IVR, platform, first, last, Period.WEEK)
    exits = Counter(r.ivr_path[-1] for r in records if r.ivr_path)
    for node, count in exits.items():
        assert sum(v for row in ivr if row["node"] == node for k, v in row.items() if k.startswith("exit.")) == count
    keys = Counter(d.rpartition("=")[2] for r in records for d in r.digits)
    for key, count in keys.items():
        assert sum(row.get(f"key.{key}", 0) for row in ivr if row["node"] == "menu") == count


def test_a_call_queued_a_millisecond_before_china_midnight_counts_on_the_day_before() -> None:
    before = datetime(2026, 3, 2, 15, 59, 59, 999_000, tzinfo=UTC)  # 23:59:59.999 in China
    record = CallRecord(
        call_id="x", platform="p", started_at=before, queued_at=before, queue="general",
        state=CallState.ENDED, ended_at=before + timedelta(seconds=3), outcome=CallOutcome.ABANDONED,
    )  # fmt: skip
    (offered, *_) = call_increments(record, CHINA)
    assert offered.bucket == "2026030223"
    assert hour_bucket(before + timedelta(milliseconds=1), CHINA) == "2026030300"


def test_a_pause_across_midnight_is_split_between_the_days() -> None:
    since = datetime(2026, 3, 2, 23, 30, tzinfo=CHINA)
    paused = Seat("1001", SeatState.NOT_READY, reason="lunch", since=since)
    ready = Seat("1001", SeatState.READY, since=since + timedelta(hours=1, minutes=50))
    increments = seat_increments(paused, ready, CHINA)
    pause = {i.bucket: i.amount for i in increments if i.field.startswith("pause_ms")}
    assert pause == {"2026030223": 30 * 60_000, "2026030300": 60 * 60_000, "2026030301": 20 * 60_000}
    buckets = hours_between(date(2026, 3, 2), date(2026, 3, 3))
    counters: list[dict[str, int]] = [{} for _ in buckets]
    for i in increments:
        fields = counters[buckets.index(i.bucket)]
        fields[i.field] = fields.get(i.field, 0) + i.amount
    days = {r["period"]: r for r in rows(Kind.SEATS, buckets, counters, Period.DAY)}
    assert days["2026-03-02"]["pause_s.lunch"] == 1800.0
    assert days["2026-03-03"]["pause_s.lunch"] == 4800.0
    assert days["2026-03-03"]["occupancy"] is None  # no available time: no score, not 0 %


# --- cases, over the Spring Festival 2026 (a 调休 Saturday, 2026-02-14, is a working day) ---


def test_the_calendar_has_the_adjusted_working_day_the_cases_test_relies_on() -> None:
    assert date(2026, 2, 14).weekday() == 5 and chinese_calendar.is_workday(date(2026, 2, 14))


def _nth_working_day_after(day: date, count: int) -> date:
    """The slow way, straight from chinese-calendar (not tickets/deadlines.py)."""
    while count:
        day += timedelta(days=1)
        if chinese_calendar.is_workday(day):
            count -= 1
    return day


@st.composite
def cases(draw: st.DrawFn) -> tuple[datetime, int, int, int, str, TicketCategory]:
    accepted = datetime(2026, 2, 9, 8, 0, tzinfo=CHINA) + timedelta(minutes=draw(st.integers(0, 5 * 24 * 60)))
    return (
        accepted,
        draw(st.integers(1, 30 * 60)),  # minutes to dispatch
        draw(st.integers(1, 4 * 60)),  # then to sign
        draw(st.integers(60, 30 * 24 * 60)),  # then to resolve
        draw(st.sampled_from(["water", "roads"])),
        draw(st.sampled_from([TicketCategory.CONSULTATION, TicketCategory.COMPLAINT])),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(cases(), min_size=1, max_size=25))
async def test_case_rollups_match_a_recount_with_working_days(
    client: aioredis.Redis, specs: list[tuple[datetime, int, int, int, str, TicketCategory]]
) -> None:
    platform = fresh_platform()
    reports = service(client, platform)
    calendar = PlatformCalendar()
    expected: Counter[tuple[str, str, str]] = Counter()  # (local day, unit, metric)
    for n, (when, to_dispatch, to_sign, to_resolve, unit, category) in enumerate(specs):
        accepted = when.replace(second=0, microsecond=0)
        ticket = machine.accept(
            platform=platform, sequence=n + 1, source=TicketSource.PHONE, accepted_at=accepted,
            category=category, calendar=calendar, uid=f"u{n}",
        ).model_copy(update={"unit": unit})  # fmt: skip
        await reports.count_ticket(ticket)
        dispatched = accepted + timedelta(minutes=to_dispatch)
        signed = dispatched + timedelta(minutes=to_sign)
        resolved = signed + timedelta(minutes=to_resolve)
        for state, at in (
            (TicketState.DISPATCHED, dispatched),
            (TicketState.SIGNED, signed),
            (TicketState.IN_PROGRESS, signed + timedelta(seconds=30)),
            (TicketState.RESOLVED, resolved),
        ):
            ticket = machine.transition(ticket, state, at=at, actor="test", calendar=calendar)
            await reports.count_ticket(ticket)
            await reports.count_ticket(ticket)  # a save notified twice: each step counted once
        # the recount, from the rules of the seed, not from the ticket's stored deadlines
        day = accepted.date().isoformat()
        expected[(day, "*", "accepted")] += 1
        expected[(day, "*", "cohort_resolved")] += 1
        dispatch_by = (
            datetime.combine(accepted.date(), datetime.max.time(), CHINA)
            if accepted.hour < 18
            else datetime.combine(accepted.date() + timedelta(days=1), datetime.min.time(), CHINA) + timedelta(hours=10)
        )
        expected[(dispatched.date().isoformat(), unit, "dispatched")] += 1
        expected[(dispatched.date().isoformat(), unit, "dispatched_on_time")] += dispatched <= dispatch_by
        expected[(signed.date().isoformat(), unit, "signed_on_time")] += to_sign <= 120
        limit = _nth_working_day_after(accepted.date(), 5 if category is TicketCategory.CONSULTATION else 15)
        expected[(resolved.date().isoformat(), unit, "resolved")] += 1
        expected[(resolved.date().isoformat(), unit, "resolved_on_time")] += resolved.date() <= limit
    report = await reports.report(Kind.CASES, platform, date(2026, 2, 9), date(2026, 4, 30), Period.DAY)
    got: Counter[tuple[str, str, str]] = Counter()
    for row in report:
        for metric in ("accepted", "cohort_resolved", "dispatched", "dispatched_on_time", "signed_on_time",
                       "resolved", "resolved_on_time"):  # fmt: skip
            if row["unit"] != "*" or metric in ("accepted", "cohort_resolved"):
                got[(row["period"], row["unit"], metric)] += row.get(metric, 0)
    assert +got == +expected
    whole = [r for r in report if r["unit"] == "*"]
    assert sum(r["accepted"] for r in whole) == len(specs)
    for row in whole:
        if row["accepted"]:
            assert row["resolution_rate"] == 1.0  # every case of the generated days was resolved


async def test_a_case_resolved_on_the_adjusted_saturday_is_on_time_and_after_the_holiday_late(
    client: aioredis.Redis,
) -> None:
    """Accepted Monday 2026-02-09, a consultation: its 5th working day is the 调休 Saturday
    2026-02-14 (a calendar of weekdays alone would give Tuesday 2026-02-24, after the holiday)."""
    platform = fresh_platform()
    reports = service(client, platform)
    calendar = PlatformCalendar()
    accepted = datetime(2026, 2, 9, 9, 0, tzinfo=CHINA)
    for n, (unit, resolved) in enumerate(
        (("water", datetime(2026, 2, 14, 17, 0, tzinfo=CHINA)), ("roads", datetime(2026, 2, 24, 9, 0, tzinfo=CHINA)))
    ):
        ticket = machine.accept(
            platform=platform, sequence=n + 1, source=TicketSource.PHONE, accepted_at=accepted,
            category=TicketCategory.CONSULTATION, calendar=calendar, uid=f"u{n}",
        ).model_copy(update={"unit": unit})  # fmt: skip
        for state, at in (
            (TicketState.DISPATCHED, accepted + timedelta(hours=1)),
            (TicketState.SIGNED, accepted + timedelta(hours=2)),
            (TicketState.IN_PROGRESS, accepted + timedelta(hours=3)),
            (TicketState.RESOLVED, resolved),
        ):
            ticket = machine.transition(ticket, state, at=at, actor="test", calendar=calendar)
        await reports.count_ticket(ticket)  # every step of the timeline, once
    report = await reports.report(Kind.CASES, platform, date(2026, 2, 1), date(2026, 2, 28), Period.MONTH)
    by_unit = {row["unit"]: row for row in report}
    assert (by_unit["water"]["resolved_on_time"], by_unit["water"]["resolved_late"]) == (1, 0)
    assert (by_unit["roads"]["resolved_on_time"], by_unit["roads"]["resolved_late"]) == (0, 1)
    assert by_unit["*"]["resolve_on_time_rate"] == 0.5 and by_unit["*"]["resolution_rate"] == 1.0
    assert by_unit["*"]["dispatch_on_time_rate"] == 1.0 and by_unit["*"]["sign_on_time_rate"] == 1.0


async def test_the_visits_answers_give_their_own_satisfaction_rate_and_the_resolution_rate_after_visit(
    client: aioredis.Redis,
) -> None:
    """Four cases accepted and resolved in March, three visited: 满意, 基本满意 with "resolved",
    不满意 with "not resolved". The 回访满意率 is 2/3 (beside, never mixed with, the after-seat
    survey's satisfaction_rate of the queue report); 办结率 is 4/4, after 回访 3/4."""
    platform = fresh_platform()
    reports = service(client, platform)
    calendar = PlatformCalendar()
    accepted = datetime(2026, 3, 2, 9, 0, tzinfo=CHINA)
    answers: list[tuple[bool | None, int | None] | None] = [(True, 1), (True, 2), (False, 3), None]
    for n, answer in enumerate(answers):
        ticket = machine.accept(
            platform=platform, sequence=n + 1, source=TicketSource.PHONE, accepted_at=accepted,
            category=TicketCategory.CONSULTATION, calendar=calendar, uid=f"v{n}",
        ).model_copy(update={"unit": "water"})  # fmt: skip
        ticket = machine.transition(ticket, TicketState.RESOLVED, at=accepted + timedelta(hours=1), actor="t",
                                    calendar=calendar)  # fmt: skip
        if answer is not None:
            visit = Visit(at=accepted + timedelta(days=1), resolved=answer[0], satisfaction=answer[1])
            ticket = machine.visited(ticket, visit, actor="outbound", calendar=calendar)
        await reports.count_ticket(ticket)
        await reports.count_ticket(ticket)  # notified twice: counted once
    report = await reports.report(Kind.CASES, platform, date(2026, 3, 1), date(2026, 3, 31), Period.MONTH)
    by_unit = {row["unit"]: row for row in report}
    water, whole = by_unit["water"], by_unit["*"]
    assert (water["visited"], water["visit_surveyed"], water["visit_satisfied"]) == (3, 3, 2)
    assert water["visit_satisfaction_rate"] == 0.6667  # rates are rounded to 4 places
    assert water["visit_resolved_rate"] == 0.6667  # rates are rounded to 4 places
    assert "satisfaction_rate" not in water  # the after-seat survey's 满意率 is the queues' and seats'
    assert whole["resolution_rate"] == 1.0
    assert whole["cohort_visit_not_resolved"] == 1
    assert whole["resolution_rate_after_visit"] == 0.75
    empty = await reports.report(Kind.CASES, platform, date(2026, 4, 1), date(2026, 4, 30), Period.MONTH)
    assert all(row.get("visit_satisfaction_rate") is None for row in empty)  # no answer: no rate
