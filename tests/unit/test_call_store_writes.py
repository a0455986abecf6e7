"""RedisCallStore's cheaper writes (issue 20): a batch of records in one MULTI, and the index
entries of an open call written once — with the same keys, members, scores and expiries in Redis
as writing every entry with every save, one record at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calls.caller_index import CallerKeys
from calls.model import CallOutcome, CallRecord, CallState, end_call, transition
from calls.store import RedisCallStore
from hotline.redis_process import RedisProcess

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
KEYS = CallerKeys("test-secret")


def versions(call_id: str, caller: str) -> list[CallRecord]:
    """The versions a call's record goes through: IVR steps, a queue, a seat, the end, a case."""
    first = CallRecord(call_id=call_id, platform="kunming", started_at=T0, caller=caller, channel="PJSIP/trunk-1")
    steps = [transition(first, CallState.IN_IVR)]
    for node in ("caller_check", "entry", "welcome", "main_menu"):
        steps.append(steps[-1].model_copy(update={"ivr_path": (*steps[-1].ivr_path, node)}))
    steps.append(steps[-1].model_copy(update={"queue": "general", "queued_at": T0 + timedelta(seconds=9)}))
    steps.append(steps[-1].model_copy(update={"seat": "2001", "outcome": CallOutcome.ANSWERED}))
    steps.append(end_call(steps[-1], T0 + timedelta(seconds=60), "Normal Clearing"))
    steps.append(steps[-1].model_copy(update={"case_id": "KM20261130001"}))  # amended after the end
    return steps


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def snapshot(client: aioredis.Redis) -> dict[str, object]:
    """Every key with its value and whether it expires."""
    seen: dict[str, object] = {}
    for key in sorted(await client.keys("*")):
        kind = _text(await client.type(key))
        if kind == "string":
            value: object = await client.get(key)
        elif kind == "set":
            value = sorted(await client.smembers(key))
        else:
            value = await client.zrange(key, 0, -1, withscores=True)
        seen[_text(key)] = (value, await client.ttl(key) > 0)
    return seen


async def commands_processed(client: aioredis.Redis) -> int:
    return int((await client.info("stats"))["total_commands_processed"])


async def test_batched_saves_leave_redis_exactly_as_one_by_one_full_saves(redis_server: RedisProcess) -> None:
    old_way = aioredis.Redis(port=redis_server.port, db=1)
    new_way = aioredis.Redis(port=redis_server.port, db=2)
    try:
        for db in (old_way, new_way):
            await db.flushdb()
        calls = [versions(f"k-{n}.1", f"1380013800{n}") for n in range(3)]
        store = RedisCallStore(new_way, timedelta(days=30), "kunming", KEYS)
        old_cost = new_cost = 0
        for step in range(len(calls[0])):
            # before: a fresh store for every save writes every index entry every time, one by one
            start = await commands_processed(old_way)
            for call in calls:
                await RedisCallStore(old_way, timedelta(days=30), "kunming", KEYS).save(call[step])
            old_cost += await commands_processed(old_way) - start
            # after: one store remembers what it wrote; the three calls' versions go out together
            start = await commands_processed(new_way)
            await store.save_many([call[step] for call in calls])
            new_cost += await commands_processed(new_way) - start
            assert await snapshot(new_way) == await snapshot(old_way), f"after version {step}"
        assert new_cost < old_cost / 2, (new_cost, old_cost)  # far fewer commands, same data
        assert await new_way.smembers("hotline:calls:open:kunming") == set()
    finally:
        await old_way.aclose()
        await new_way.aclose()


async def test_a_failed_batch_is_written_whole_on_the_retry(redis_server: RedisProcess) -> None:
    """Nothing is remembered as written until Redis confirmed it: when a batch fails (here Redis
    refuses SADD, so the whole MULTI is discarded), the retry writes every index entry again."""
    client = aioredis.Redis(port=redis_server.port, db=3)
    await client.flushdb()
    store = RedisCallStore(client, timedelta(days=30), "kunming", KEYS)
    call = versions("k-9.1", "13800138009")
    try:
        await client.acl_setuser("default", enabled=True, nopass=True, keys="*", commands=["+@all", "-sadd"])
        try:
            await store.save_many(call[:2])
            raise AssertionError("the batch should have failed")
        except aioredis.ResponseError:
            pass
        finally:
            await client.acl_setuser("default", enabled=True, nopass=True, keys="*", commands=["+@all"])
        assert await client.keys("*") == []  # all or none
        await store.save_many([call[1]])
        assert await client.zrange("hotline:calls:recent:kunming", 0, -1) == [b"k-9.1"]
        assert await client.smembers("hotline:calls:open:kunming") == {b"k-9.1"}
        assert await client.zcard(KEYS.calls_key("kunming", "13800138009")) == 1
    finally:
        await client.aclose()


class OldStore(RedisCallStore):
    """The save as the third round left it: every record's own SET queued in the MULTI."""

    async def save_many(self, records: Sequence[CallRecord]) -> None:
        written: list[tuple[CallRecord, frozenset[str]]] = []
        async with self._redis.pipeline(transaction=True) as pipe:
            for record in records:
                plain: dict[str, str] = {}
                written.append((record, self._queue_save(pipe, record, plain)))
                for key, value in plain.items():
                    pipe.set(key, value)
            await pipe.execute()
        for record, entries in written:
            if record.is_open:
                self._indexed[record.call_id] = entries
            else:
                self._indexed.pop(record.call_id, None)


# a writer round: which calls had changed, and how many versions each moved on (0: none)
_ROUNDS = st.lists(st.lists(st.integers(0, 3), min_size=3, max_size=3), min_size=1, max_size=12)


async def _replay_rounds(url: str, rounds: list[list[int]]) -> None:
    old_way, new_way = aioredis.Redis.from_url(url, db=4), aioredis.Redis.from_url(url, db=5)
    try:
        for db in (old_way, new_way):
            await db.flushdb()
        old = OldStore(old_way, timedelta(days=30), "kunming", KEYS)
        new = RedisCallStore(new_way, timedelta(days=30), "kunming", KEYS)
        calls = [versions(f"k-{n}.1", f"1390013900{n}") for n in range(3)]
        at = [-1, -1, -1]
        for moves in rounds:
            batch = []
            for n, move in enumerate(moves):
                if move and at[n] < len(calls[n]) - 1:
                    at[n] = min(at[n] + move, len(calls[n]) - 1)  # the writer saves the latest version
                    batch.append(calls[n][at[n]])
            if not batch:
                continue
            old_count, new_count = await commands_processed(old_way), await commands_processed(new_way)
            await old.save_many(batch)
            await new.save_many(batch)
            old_count = await commands_processed(old_way) - old_count
            new_count = await commands_processed(new_way) - new_count
            assert await snapshot(new_way) == await snapshot(old_way), (rounds, batch)
            assert new_count <= old_count  # one MSET for the open records' JSON, MULTI only when needed
    finally:
        await old_way.aclose()
        await new_way.aclose()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_ROUNDS)
def test_open_records_in_one_mset_leave_redis_as_the_sets_in_a_multi_did(
    redis_server: RedisProcess, rounds: list[list[int]]
) -> None:
    """Any sequence of writer rounds over three calls (versions skipped, as a round saves only a
    record's latest one; a call ended, then amended): the same keys, values and expiries as the
    old MULTI of SETs, after every round, and never more commands."""
    asyncio.run(_replay_rounds(redis_server.url, rounds))


async def test_a_round_of_open_records_alone_is_one_mset(redis_server: RedisProcess) -> None:
    client = aioredis.Redis.from_url(redis_server.url, db=6)
    try:
        await client.flushdb()
        store = RedisCallStore(client, timedelta(days=30), "kunming", KEYS)
        calls = [versions(f"k-{n}.1", f"1370013700{n}") for n in range(3)]
        await store.save_many([call[0] for call in calls])  # first saves: index entries in a MULTI
        start = await commands_processed(client)
        await store.save_many([call[2] for call in calls])  # IVR steps: the JSON only
        assert await commands_processed(client) - start == 2  # one MSET (and the first INFO), no MULTI/EXEC
        assert await client.get("hotline:call:k-1.1") == calls[1][2].model_dump_json().encode()
        assert await client.ttl("hotline:call:k-1.1") == -1
    finally:
        await client.aclose()
