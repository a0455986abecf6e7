"""The wallboard's copy in the shared Redis (the province's view) is written at most once per
push interval and at once when the alerts change, while local viewers get every push; a failed
write is tried again on the next push. On a real Redis: one plain pipeline (no MULTI/EXEC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from acd.events import EventBus
from acd.model import QueuedCall
from acd.seat import Seat, SeatState
from calls.model import CallRecord
from hotline.redis_process import RedisProcess
from tests.support.redis_monitor import commands_during
from wallboard.config import AlertRule, WallboardConfig
from wallboard.service import Identity, Wallboard
from wallboard.store import MEMBERS, PREFIX, RedisBoardStore

NOW = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)


class Floor:
    def __init__(self) -> None:
        self.waiters: list[QueuedCall] = []

    def queue_names(self) -> list[str]:
        return ["general"]

    def waiting(self, queue: str) -> list[QueuedCall]:
        return [c for c in self.waiters if c.queue == queue]

    def seats(self) -> list[Seat]:
        return [Seat("1001", SeatState.READY, since=NOW)]


class Store:
    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []
        self.fail = False

    async def publish(self, platform: str, summary: dict[str, Any]) -> None:
        if self.fail:
            raise RedisConnectionError("away")
        self.writes.append(summary)

    async def summaries(self) -> list[dict[str, Any]]:
        return self.writes[-1:]


async def _no_calls(_limit: int) -> list[CallRecord]:
    return []


def board(store: Any, clock: list[datetime], floor: Floor) -> Wallboard:
    rule = AlertRule(name="long_wait", figure="longest_wait_s", above=60)
    return Wallboard(
        identity=Identity("kunming", "昆明", False),
        config=WallboardConfig(push_interval_s=2.0, alerts=(rule,)),
        floor=floor,
        events=EventBus(aioredis.Redis(port=1), platform="kunming"),
        store=store,
        recent_calls=_no_calls,
        clock=lambda: clock[0],
    )


async def test_the_shared_copy_is_written_once_per_interval_and_at_once_on_an_alert() -> None:
    store, clock, floor = Store(), [NOW], Floor()
    wallboard = board(store, clock, floor)
    viewer = wallboard.subscribe(province=False)
    await wallboard.push()
    for step in (0.2, 0.5, 1.0):  # pushes after events, inside the interval: viewers only
        clock[0] = NOW + timedelta(seconds=step)
        await wallboard.push()
        assert (await viewer.boards.get())["at"] == clock[0].isoformat()
    assert [w["at"] for w in store.writes] == [NOW.isoformat()]
    clock[0] = NOW + timedelta(seconds=2.0)  # the interval is over: the latest board is written
    await wallboard.push()
    assert [w["at"] for w in store.writes] == [NOW.isoformat(), clock[0].isoformat()]
    # an alert raised inside the interval is written at once, and so is its clearing
    floor.waiters = [QueuedCall("w1", "PJSIP/x", "general", (), 0, (NOW - timedelta(seconds=90)).timestamp())]
    clock[0] = NOW + timedelta(seconds=2.3)
    await wallboard.push()
    assert len(store.writes) == 3 and {a["queue"] for a in store.writes[-1]["alerts"]} == {"all", "general"}
    floor.waiters = []
    clock[0] = NOW + timedelta(seconds=2.5)
    await wallboard.push()
    assert len(store.writes) == 4 and store.writes[-1]["alerts"] == []
    assert wallboard.pushes == 7 and wallboard.published == 4


async def test_a_failed_write_is_tried_again_on_the_next_push() -> None:
    store, clock = Store(), [NOW]
    wallboard = board(store, clock, Floor())
    store.fail = True
    await wallboard.push()
    store.fail = False
    clock[0] = NOW + timedelta(seconds=0.2)  # inside the interval, but nothing was written yet
    await wallboard.push()
    assert [w["at"] for w in store.writes] == [clock[0].isoformat()]


async def test_the_redis_store_writes_member_and_summary_without_a_transaction(redis_server: RedisProcess) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.delete(MEMBERS, PREFIX + "kunming")
        summary = {"platform": "kunming", "at": NOW.isoformat()}
        commands = await commands_during(
            redis_server.url, client, lambda: RedisBoardStore(client).publish("kunming", summary)
        )
        assert commands == ["SADD", "SET", "ECHO"]
        assert await client.smembers(MEMBERS) == {b"kunming"}
        assert json.loads(await client.get(PREFIX + "kunming") or b"{}")["platform"] == "kunming"
        assert await client.ttl(PREFIX + "kunming") > 0
    finally:
        await client.aclose()
