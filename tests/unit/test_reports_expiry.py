"""A report key gets its expiry when a count creates one of its fields, not with every count
(reports/store.py ``_APPLY``, and the call writer's counts in calls/store.py): on a real Redis,
the commands each count sends (MONITOR) and the keys' TTLs after it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import redis.asyncio as aioredis

from calls.store import CountOnce, RedisCallStore
from hotline.redis_process import RedisProcess
from reports.counting import Increment
from reports.store import RedisRollups, rollup_key
from tests.support.redis_monitor import command_words_during

KEEP = timedelta(days=40)


async def commands_of(url: str, client: aioredis.Redis, job: Callable[[], Awaitable[object]]) -> list[tuple[str, str]]:
    """(command, first argument) of each command Redis ran for ``job`` (scripts' too)."""
    return [(words[0], words[1] if len(words) > 1 else "") for words in await command_words_during(url, client, job)]


def expired(commands: list[tuple[str, str]]) -> list[str]:
    return sorted(key for command, key in commands if command == "EXPIRE")


async def test_only_counts_that_create_a_field_set_the_expiry(redis_server: RedisProcess) -> None:
    client = aioredis.Redis.from_url(redis_server.url, db=0)
    try:
        await client.flushdb()
        rollups = RedisRollups(client, keep=KEEP, marker_ttl=timedelta(days=1))
        hour, day = rollup_key("seats", "p", "2026030112"), rollup_key("seats", "p", "20260301")
        ready = [Increment("seats", "2026030112", "state_ms.ready\x1f1001", 1500)]

        first = await commands_of(redis_server.url, client, lambda: rollups.apply("p", "e1", ready))
        assert expired(first) == sorted([hour, day])  # a new key: its expiry with its first count
        assert await client.ttl(hour) > 0 and await client.ttl(day) > 0

        again = await commands_of(redis_server.url, client, lambda: rollups.apply("p", "e2", ready))
        assert expired(again) == [] and [c for c, _ in again].count("HINCRBY") == 2  # counted, no EXPIRE
        assert await client.hget(hour, "state_ms.ready\x1f1001") == b"3000"

        ringing = [*ready, Increment("seats", "2026030112", "state_ms.ringing\x1f1001", 900)]
        new_field = await commands_of(redis_server.url, client, lambda: rollups.apply("p", "e3", ringing))
        assert expired(new_field) == sorted([hour, day])  # a field created: the expiry moves on

        await client.persist(hour)  # a key that lost its expiry (say, written before) …
        await rollups.apply("p", "e4", ready)
        assert await client.ttl(hour) == -1  # … keeps none while counts only add to its fields
        await rollups.apply("p", "e5", [Increment("seats", "2026030112", "state_ms.paused\x1f1001", 10)])
        assert await client.ttl(hour) > 0  # … and gets one with its next new field

        assert await rollups.apply("p", "e5", ready) is False  # e5 again: not counted twice
        assert await client.hget(hour, "state_ms.ready\x1f1001") == b"6000"
    finally:
        await client.aclose()


async def test_the_call_writers_counts_set_the_expiry_the_same_way(redis_server: RedisProcess) -> None:
    client = aioredis.Redis.from_url(redis_server.url, db=1)
    try:
        await client.flushdb()
        store = RedisCallStore(client, timedelta(days=30), "p")
        hour = rollup_key("queues", "p", "2026030112")
        keep_s = int(KEEP.total_seconds())

        def count(marker: str, field: str) -> CountOnce:
            return CountOnce(marker, 3600, keep_s, ((hour, field, 1),))

        first = await commands_of(
            redis_server.url, client, lambda: store.save_many([], [count("m1", "offered\x1fgeneral")])
        )
        assert expired(first) == [hour] and await client.ttl(hour) > 0
        again = await commands_of(
            redis_server.url, client, lambda: store.save_many([], [count("m2", "offered\x1fgeneral")])
        )
        assert expired(again) == [] and await client.hget(hour, "offered\x1fgeneral") == b"2"
        other = await commands_of(
            redis_server.url, client, lambda: store.save_many([], [count("m3", "answered\x1fgeneral")])
        )
        assert expired(other) == [hour]
    finally:
        await client.aclose()
