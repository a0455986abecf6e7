"""The event bus (acd/events.py): every event to the subscribers at once and to the Redis stream
in publish order, the events of one moment in one background write."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import cast

import pytest
import redis.asyncio as aioredis

from acd import events as events_module
from acd.events import EventBus, events_stream
from calls.redis_budget import RedisBudget

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


async def stream(client: aioredis.Redis, platform: str = "kunming") -> list[dict[str, object]]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(events_stream(platform)))
    return [json.loads(fields[b"event"]) for _, fields in entries]


async def test_events_of_one_moment_go_in_one_write_in_publish_order(client: aioredis.Redis) -> None:
    budget = RedisBudget()
    bus = EventBus(client, budget, platform="kunming")
    queue = bus.subscribe()
    await bus.publish("seat.state", AT, seat="2001", old="ready", new="ringing")
    await bus.publish("acd.offered", AT, call_id="c1", seat="2001", queue="general")
    await bus.publish("acd.connected", AT, call_id="c1", seat="2001", waited_s=1.5)
    assert budget.backlog == 1  # one queued write for the three (not one round trip each)
    assert [queue.get_nowait()["type"] for _ in range(3)] == ["seat.state", "acd.offered", "acd.connected"]
    assert await budget.drain(5)
    await bus.publish("seat.state", AT, seat="2001", old="on_call", new="ready")  # a later moment: its own write
    assert await budget.drain(5)
    assert await stream(client) == [
        {"type": "seat.state", "at": AT.isoformat(), "seat": "2001", "old": "ready", "new": "ringing"},
        {"type": "acd.offered", "at": AT.isoformat(), "call_id": "c1", "seat": "2001", "queue": "general"},
        {"type": "acd.connected", "at": AT.isoformat(), "call_id": "c1", "seat": "2001", "waited_s": 1.5},
        {"type": "seat.state", "at": AT.isoformat(), "seat": "2001", "old": "on_call", "new": "ready"},
    ]
    await budget.close()


async def test_events_published_while_a_write_is_in_flight_follow_in_the_next(client: aioredis.Redis) -> None:
    budget = RedisBudget()
    bus = EventBus(client, budget, platform="kunming")
    for n in range(50):
        await bus.publish("acd.queued", AT, call_id=f"c{n}", queue="general", priority=0)
        if n % 7 == 0:
            await budget.drain(0)  # let the writer start now and then, mid-burst
    assert await budget.drain(5)
    assert [e["call_id"] for e in await stream(client)] == [f"c{n}" for n in range(50)]
    await budget.close()


async def test_unsaved_events_beyond_the_cap_lose_the_oldest_and_count_it(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_module, "UNSAVED_MAX", 3)
    budget = RedisBudget()
    bus = EventBus(client, budget, platform="kunming")
    for n in range(5):  # no await yields to the writer in between: it is 'stuck'
        await bus.publish("acd.queued", AT, call_id=f"c{n}", queue="general", priority=0)
    assert budget.writes_dropped == 2
    assert await budget.drain(5)
    assert [e["call_id"] for e in await stream(client)] == ["c2", "c3", "c4"]
    await budget.close()


async def test_each_platform_keeps_its_own_stream_on_a_shared_redis(client: aioredis.Redis) -> None:
    budget = RedisBudget()
    kunming, dali = EventBus(client, budget, platform="kunming"), EventBus(client, budget, platform="dali")
    await kunming.publish("acd.queued", AT, call_id="kunming-1", queue="general", priority=0)
    await dali.publish("acd.queued", AT, call_id="dali-1", queue="general", priority=0)
    await dali.publish("acd.queued", AT, call_id="dali-2", queue="general", priority=0)
    assert await budget.drain(5)
    assert [e["call_id"] for e in await stream(client, "kunming")] == ["kunming-1"]
    assert [e["call_id"] for e in await stream(client, "dali")] == ["dali-1", "dali-2"]
    await budget.close()
