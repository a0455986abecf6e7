"""The callback list's one-round-trip add (compare and set in Redis) leaves the list as the
old read-then-write did, for any sequence of misses, served calls and seats' tries (hypothesis,
on a real redis-server)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calls.callbacks import RedisCallbackList
from calls.model import CallOutcome, CallRecord, CallState
from hotline.redis_process import RedisProcess
from tests.support.redis_monitor import commands_during

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


_OLD_CLEAR = """
local missed = redis.call('ZSCORE', KEYS[2], ARGV[1])
if missed and tonumber(missed) > tonumber(ARGV[2]) then
    return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class OldAdd(RedisCallbackList):
    """The add as it was: HGET, merge, then HSET and ZADD in one MULTI (two round trips); and the
    clear as it was (HDEL and ZREM even for a number not on the list)."""

    async def _clear(self, record: CallRecord) -> None:
        served = (record.ended_at or record.started_at).timestamp()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.eval(_OLD_CLEAR, 2, self._entries, self._order, record.caller, repr(served))
            await pipe.execute()

    async def _add(self, record: CallRecord) -> None:
        raw = await self._redis.hget(self._entries, record.caller)
        when = record.ended_at or record.started_at
        previous = json.loads(raw) if raw else None
        if previous and previous.get("last_call_id") == record.call_id:
            return
        entry = {
            **(previous or {}),
            "caller": record.caller,
            "platform": record.platform,
            "first_missed_at": previous["first_missed_at"] if previous else when.isoformat(),
            "last_missed_at": when.isoformat(),
            "attempts": (previous["attempts"] if previous else 0) + 1,
            "last_call_id": record.call_id,
            "last_ivr_path": list(record.ivr_path),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._entries, record.caller, json.dumps(entry, ensure_ascii=False))
            pipe.zadd(self._order, {record.caller: when.timestamp()})
            await pipe.execute()


def ended(call_id: str, caller: str, outcome: CallOutcome, seconds: float, path: tuple[str, ...]) -> CallRecord:
    at = T0 + timedelta(seconds=seconds)
    return CallRecord(
        call_id=call_id, platform="kunming", caller=caller, state=CallState.ENDED, started_at=at, ended_at=at,
        outcome=outcome, ivr_path=path,
    )  # fmt: skip


_STEP = st.tuples(
    st.sampled_from(["missed", "failed", "served", "try"]),
    st.sampled_from(["13800000001", "13800000002", "+8613900000003"]),
    st.integers(0, 5),  # call ids repeat: a listener run twice counts once
    st.floats(0, 86400, allow_nan=False),
    st.lists(st.sampled_from(["entry", "menu", "收件", "q"]), max_size=3).map(tuple),
)


async def _replay(url: str, steps: list[tuple[str, str, int, float, tuple[str, ...]]]) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
        lists = [OldAdd(client, "old"), RedisCallbackList(client, "new")]
        for kind, caller, call, seconds, path in steps:
            for board in lists:
                if kind == "try":
                    await board.note_try(caller, T0 + timedelta(seconds=seconds), "noanswer")
                    continue
                outcome = {
                    "missed": CallOutcome.ABANDONED, "failed": CallOutcome.VOICEMAIL_FAILED,
                    "served": CallOutcome.ANSWERED,
                }[kind]  # fmt: skip
                await board.on_call_ended(ended(f"k-{call}", caller, outcome, seconds, path))
        entries = [await client.hgetall(f"hotline:callbacks:{p}") for p in ("old", "new")]
        order = [await client.zrange(f"hotline:callbacks:order:{p}", 0, -1, withscores=True) for p in ("old", "new")]
        assert entries[0] == entries[1]  # the same JSON, byte for byte
        assert order[0] == order[1]
        assert await lists[0].pending(10) == await lists[1].pending(10)
    finally:
        await client.aclose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_STEP, max_size=12))
def test_the_one_round_trip_add_keeps_the_list_as_before(
    redis_server: RedisProcess, steps: list[tuple[str, str, int, float, tuple[str, ...]]]
) -> None:
    asyncio.run(_replay(redis_server.url, steps))


def test_a_try_noted_between_the_read_and_the_write_is_kept(redis_server: RedisProcess) -> None:
    """Compare and set: an entry that changed after it was read is read again, not overwritten."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            await client.flushdb()
            board = RedisCallbackList(client, "kunming")
            await board.on_call_ended(ended("k-1", "13800000001", CallOutcome.ABANDONED, 0, ("entry",)))
            stale = await client.hget("hotline:callbacks:kunming", "13800000001")
            assert isinstance(stale, bytes)
            await board.note_try("13800000001", T0 + timedelta(minutes=1), "busy")
            # what the script is told when the add merged from the entry before the try
            reply = await board._add_script(
                keys=["hotline:callbacks:kunming", "hotline:callbacks:order:kunming"],
                args=["13800000001", stale, "{}", 1.0],
            )
            assert isinstance(reply, bytes) and json.loads(reply)["tries"] == 1  # not written
            await board.on_call_ended(ended("k-2", "13800000001", CallOutcome.ABANDONED, 120, ("entry",)))
            (entry,) = await board.pending(10)
            assert (entry.attempts, entry.tries, entry.last_try_result, entry.last_call_id) == (2, 1, "busy", "k-2")
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_served_number_not_on_the_list_costs_one_zscore(redis_server: RedisProcess) -> None:
    """Most served calls' numbers were never missed: the clear reads, and writes nothing."""

    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            await client.flushdb()
            board = RedisCallbackList(client, "kunming")
            call = ended("k-1", "13800000001", CallOutcome.ANSWERED, 0, ())
            seen = await commands_during(redis_server.url, client, lambda: board.on_call_ended(call))
            assert seen == ["MULTI", "EVAL", "ZSCORE", "EXEC", "ECHO"]
        finally:
            await client.aclose()

    asyncio.run(scenario())
