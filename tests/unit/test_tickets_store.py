"""The Redis ticket store on a real redis-server: idempotency, numbering, repeats, transitions."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from ivr.calendar import PlatformCalendar
from tickets.machine import IllegalTicketTransition
from tickets.model import Ticket, TicketCategory, TicketState, Transcript
from tickets.store import EXPORT_STREAM, CreateOutcome, CreateResult, RedisTicketStore, TicketNotFound

CST = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday
CALLER = "13812345678"
S = TicketState


@pytest.fixture
def store(client: aioredis.Redis) -> RedisTicketStore:
    calendar = PlatformCalendar()
    return RedisTicketStore(client, lambda _platform: calendar)


async def message(
    store: RedisTicketStore,
    recording: str,
    *,
    caller: str = CALLER,
    platform: str = "kunming",
    at: datetime = T0,
    category: TicketCategory = TicketCategory.CONSULTATION,
) -> CreateResult:
    return await store.create_from_voicemail(
        recording=recording,
        platform=platform,
        caller=caller,
        call_id=recording.removesuffix(".wav"),
        accepted_at=at,
        transcript=Transcript(text="路灯坏了"),
        category=category,
        tags={"menu": "1"},
    )


async def test_a_message_becomes_one_ticket_however_often_it_is_processed(
    store: RedisTicketStore, client: aioredis.Redis
) -> None:
    first = await message(store, "kunming-1.1.wav")
    assert first.outcome is CreateOutcome.CREATED
    assert first.ticket.id == "KM-20260302-0001"
    assert first.ticket.recording == "kunming-1.1.wav" and first.ticket.tags == {"menu": "1"}
    again = await message(store, "kunming-1.1.wav")
    assert again.outcome is CreateOutcome.DUPLICATE and again.ticket == first.ticket
    assert await store.has_ticket("kunming-1.1.wav")
    assert await store.get(first.ticket.id) == first.ticket
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(EXPORT_STREAM))
    assert [fields[b"idempotency_key"] for _id, fields in entries] == [f"KM-20260302-0001:{first.ticket.uid}".encode()]


async def test_concurrent_workers_on_one_message_make_one_ticket(
    store: RedisTicketStore, client: aioredis.Redis
) -> None:
    results = await asyncio.gather(*(message(store, "kunming-2.2.wav") for _ in range(10)))
    outcomes = sorted(result.outcome for result in results)
    assert outcomes == [CreateOutcome.CREATED] + [CreateOutcome.DUPLICATE] * 9
    assert len({result.ticket.id for result in results}) == 1
    assert await client.xlen(EXPORT_STREAM) == 1


async def test_numbers_run_per_platform_and_day(store: RedisTicketStore) -> None:
    ids = [
        (await message(store, "a.wav", caller="13800000001")).ticket.id,
        (await message(store, "b.wav", caller="13800000002")).ticket.id,
        (await message(store, "c.wav", caller="13800000003", platform="dali")).ticket.id,
        (await message(store, "d.wav", caller="13800000004", at=T0 + timedelta(days=1))).ticket.id,
        # 23:30 UTC on 2 March is 07:30 on 3 March in Kunming: the local date numbers it
        (
            await message(store, "e.wav", caller="13800000005", at=datetime(2026, 3, 2, 23, 30, tzinfo=ZoneInfo("UTC")))
        ).ticket.id,
    ]
    assert ids == ["KM-20260302-0001", "KM-20260302-0002", "DL-20260302-0001", "KM-20260303-0001", "KM-20260303-0002"]


async def test_a_repeat_request_joins_the_open_ticket(store: RedisTicketStore, client: aioredis.Redis) -> None:
    first = await message(store, "kunming-3.3.wav")
    repeats = await asyncio.gather(*(message(store, f"kunming-3.{n}.wav") for n in range(4, 7)))
    assert {result.outcome for result in repeats} == {CreateOutcome.LINKED}
    merged = await store.get(first.ticket.id)
    assert merged is not None
    assert sorted(merged.linked_call_ids) == ["kunming-3.4", "kunming-3.5", "kunming-3.6"]
    assert sum("repeat request" in entry.note for entry in merged.timeline) == 3
    assert (await message(store, "kunming-3.4.wav")).outcome is CreateOutcome.DUPLICATE
    assert (await message(store, "other.wav", caller="13900000000")).outcome is CreateOutcome.CREATED
    assert (await message(store, "elsewhere.wav", platform="dali")).outcome is CreateOutcome.CREATED
    assert await client.xlen(EXPORT_STREAM) == 3
    # once resolved, the caller's next message is a new matter
    await store.transition(first.ticket.id, S.RESOLVED, at=T0 + timedelta(hours=1), actor="seat 1001")
    later = await message(store, "kunming-3.9.wav", at=T0 + timedelta(hours=2))
    assert later.outcome is CreateOutcome.CREATED and later.ticket.id != first.ticket.id


async def test_anonymous_callers_are_never_merged(store: RedisTicketStore) -> None:
    assert (await message(store, "x.wav", caller="")).outcome is CreateOutcome.CREATED
    assert (await message(store, "y.wav", caller="")).outcome is CreateOutcome.CREATED


async def test_transitions_are_saved_and_illegal_ones_change_nothing(store: RedisTicketStore) -> None:
    ticket = (await message(store, "kunming-4.4.wav")).ticket
    dispatched = await store.transition(ticket.id, S.DISPATCHED, at=T0 + timedelta(hours=1), actor="seat 1001")
    assert dispatched.deadlines.sign_by == T0 + timedelta(hours=3)
    with pytest.raises(IllegalTicketTransition, match="dispatched → resolved"):
        await store.transition(ticket.id, S.RESOLVED, at=T0 + timedelta(hours=2), actor="seat 1001")
    assert await store.get(ticket.id) == dispatched
    with pytest.raises(TicketNotFound):
        await store.transition("KM-20260302-9999", S.DISPATCHED, at=T0, actor="seat 1001")


async def test_racing_transitions_apply_once(store: RedisTicketStore) -> None:
    ticket = (await message(store, "kunming-5.5.wav")).ticket
    at = T0 + timedelta(hours=1)
    results = await asyncio.gather(
        *(store.transition(ticket.id, S.DISPATCHED, at=at, actor=f"seat {n}") for n in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(result, Exception) for result in results) == 1
    assert sum(isinstance(result, IllegalTicketTransition) for result in results) == 4
    saved = await store.get(ticket.id)
    assert saved is not None and [entry.state for entry in saved.timeline] == [S.ACCEPTED, S.DISPATCHED]


async def test_lists_filter_by_platform_state_day_and_overdue(store: RedisTicketStore) -> None:
    monday = (await message(store, "m.wav", caller="13800000001")).ticket
    tuesday = (await message(store, "t.wav", caller="13800000002", at=T0 + timedelta(days=1))).ticket
    dali = (await message(store, "d.wav", caller="13800000003", platform="dali", at=T0 + timedelta(hours=1))).ticket
    await store.transition(tuesday.id, S.DISPATCHED, at=T0 + timedelta(days=1, hours=1), actor="seat 1001")

    assert ids(await store.list_tickets()) == [tuesday.id, dali.id, monday.id]  # newest first
    assert ids(await store.list_tickets(platform="kunming")) == [tuesday.id, monday.id]
    assert ids(await store.list_tickets(state=S.DISPATCHED)) == [tuesday.id]
    assert ids(await store.list_tickets(day=date(2026, 3, 2))) == [dali.id, monday.id]
    # Tuesday 13:00: Monday's tickets missed their dispatch; Tuesday's missed sign-for (by 12:00)
    assert ids(await store.list_tickets(overdue_at=T0 + timedelta(days=1, hours=4))) == [tuesday.id, dali.id, monday.id]
    assert ids(await store.list_tickets(overdue_at=T0 + timedelta(hours=1))) == []
    assert len(await store.list_tickets(limit=2)) == 2


def ids(tickets: list[Ticket]) -> list[str]:
    return [ticket.id for ticket in tickets]


@pytest.mark.parametrize("recording", ["../voicemail/x.wav", "/etc/passwd", "voicemail/../x.wav", ""])
async def test_a_recording_must_be_a_path_inside_the_spool(store: RedisTicketStore, recording: str) -> None:
    with pytest.raises(ValueError, match="inside the spool"):
        await message(store, recording)


# Ticket numbers never repeat and a new ticket never replaces another (issue 11, defect 2).


def sequence_key(platform: str, day: str) -> str:
    return f"hotline:tickets:seq:{platform}:{day}"


async def test_the_days_counter_never_expires(store: RedisTicketStore, client: aioredis.Redis) -> None:
    await message(store, "a.wav")
    assert await client.ttl(sequence_key("kunming", "20260302")) == -1  # kept, not expiring


async def test_a_message_of_that_day_handled_after_its_counter_is_gone_gets_a_new_number(
    store: RedisTicketStore, client: aioredis.Redis
) -> None:
    first = await message(store, "voicemail/a.wav", caller="13800000001")
    second = await message(store, "voicemail/b.wav", caller="13800000002")
    # the counter is gone (an older version let it expire after 3 days; or Redis lost it) and a
    # parked message of that day is retried days later
    await client.delete(sequence_key("kunming", "20260302"))
    late = await message(store, "voicemail/c.wav", caller="13800000003")
    assert late.outcome is CreateOutcome.CREATED
    assert late.ticket.id == "KM-20260302-0003"
    # the first cases are intact, each message still leads to its own ticket
    assert await store.get(first.ticket.id) == first.ticket
    assert await store.get(second.ticket.id) == second.ticket
    assert (await message(store, "voicemail/a.wav", caller="13800000001")).ticket == first.ticket
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(EXPORT_STREAM))
    exported = [fields[b"ticket_id"] for _id, fields in entries]
    assert exported == [b"KM-20260302-0001", b"KM-20260302-0002", b"KM-20260302-0003"]
    assert await client.ttl(sequence_key("kunming", "20260302")) == -1


async def test_an_older_versions_expiring_counter_is_kept_from_now_on(
    store: RedisTicketStore, client: aioredis.Redis
) -> None:
    await client.set(sequence_key("kunming", "20260302"), 5, ex=3 * 86400)  # as the old code left it
    ticket = (await message(store, "a.wav")).ticket
    assert ticket.id == "KM-20260302-0006"
    assert await client.ttl(sequence_key("kunming", "20260302")) == -1


async def test_racing_messages_after_a_lost_counter_get_distinct_numbers_and_replace_nothing(
    store: RedisTicketStore, client: aioredis.Redis
) -> None:
    earlier = [(await message(store, f"e{n}.wav", caller=f"1380000000{n}")).ticket for n in range(3)]
    await client.delete(sequence_key("kunming", "20260302"))
    results = await asyncio.gather(*(message(store, f"r{n}.wav", caller=f"1390000000{n}") for n in range(8)))
    new_ids = [result.ticket.id for result in results]
    assert len(set(new_ids)) == 8
    assert not set(new_ids) & {ticket.id for ticket in earlier}
    for ticket in earlier:
        assert await store.get(ticket.id) == ticket
    for result in results:
        assert await store.get(result.ticket.id) == result.ticket
    assert await client.zcard("hotline:tickets:by-accepted") == 11


@pytest.mark.parametrize(
    "not_an_id", ["by-recording:a.wav", "by-recording:voicemail/a.wav", "", "KM-1", "km-20260302-0001"]
)
async def test_only_ticket_ids_reach_the_ticket_keys(store: RedisTicketStore, not_an_id: str) -> None:
    await message(store, "a.wav")
    await message(store, "voicemail/a.wav", caller="13900000000")
    assert await store.get(not_an_id) is None
    with pytest.raises(TicketNotFound):
        await store.transition(not_an_id, S.DISPATCHED, at=T0, actor="seat 1001")


async def test_a_number_given_out_again_after_a_restore_is_never_taken_for_the_first_case(
    store: RedisTicketStore, client: aioredis.Redis
) -> None:
    """Redis restored from a backup older than its last ticket: the number comes round again,
    but the export's idempotency key differs, so the case system does not drop the new case as a
    copy of the first."""
    first = await message(store, "kunming-1.1.wav")
    (first_export,) = [fields for _, fields in await exports(client)]
    await client.flushdb()  # the backup knew nothing of it
    second = await message(store, "kunming-2.2.wav", caller="13900001111")
    (second_export,) = [fields for _, fields in await exports(client)]
    assert first.ticket.id == second.ticket.id == "KM-20260302-0001"
    assert first.ticket.uid and second.ticket.uid and first.ticket.uid != second.ticket.uid
    assert first_export[b"idempotency_key"] != second_export[b"idempotency_key"]
    assert second_export[b"idempotency_key"] == f"{second.ticket.id}:{second.ticket.uid}".encode()


async def exports(client: aioredis.Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(EXPORT_STREAM))
