"""The province-wide view: every platform's controller publishes a snapshot of its queues and
seats to the shared Redis every few seconds; any controller can list them all
(``GET /api/v1/platforms``). A platform whose snapshot is old is shown as not reporting."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

import redis.asyncio as aioredis

from acd.seats import seats_key
from calls.redis_budget import RedisBudget

MEMBERS = "hotline:platforms"  # set of platform ids that have ever reported
PREFIX = "hotline:platform:"
PUBLISH_INTERVAL_S = 5.0
STALE_AFTER_S = 20.0


async def publish(client: aioredis.Redis, platform: str, snapshot: dict[str, Any]) -> None:
    async with client.pipeline(transaction=True) as pipe:
        pipe.sadd(MEMBERS, platform)
        pipe.set(PREFIX + platform, json.dumps(snapshot, ensure_ascii=False), ex=int(STALE_AFTER_S * 30))
        await pipe.execute()


async def list_platforms(client: aioredis.Redis, now: datetime) -> list[dict[str, Any]]:
    """Every platform that ever reported, with ``reporting`` false when its snapshot is stale."""
    members = sorted(m.decode() for m in cast(set[bytes], await client.smembers(MEMBERS)))
    raws = cast(list[bytes | None], await client.mget([PREFIX + m for m in members])) if members else []
    found = []
    for platform, raw in zip(members, raws, strict=True):
        if raw is None:
            found.append({"platform": platform, "reporting": False})
            continue
        snapshot: dict[str, Any] = json.loads(raw)
        age = (now - datetime.fromisoformat(snapshot["at"])).total_seconds()
        found.append({**snapshot, "reporting": age <= STALE_AFTER_S, "age_s": round(age, 1)})
    return found


class PlatformDirectory:
    """What the other platforms' state says, for decisions (may we transfer there now?)."""

    def __init__(self, client: aioredis.Redis, budget: RedisBudget | None = None) -> None:
        self._redis = client
        self._budget = budget or RedisBudget()

    async def has_free_seat(self, platform: str) -> bool | None:
        """Whether ``platform`` has a seat ready now, from its seats' live states (the shared
        Redis; not the 5-second snapshot, which lags behind a seat that has just hung up); None
        when that is unknown (try, and handle the failure) — also when Redis is slow: a caller
        in a transfer node does not wait for it beyond the call path's budget."""
        states = await self._budget.read(f"seats of {platform}", lambda: self._seat_states(platform), None)
        if not states:
            return None
        return any(json.loads(raw).get("state") == "ready" for raw in states.values())

    async def _seat_states(self, platform: str) -> dict[bytes, bytes]:
        return cast(dict[bytes, bytes], await self._redis.hgetall(seats_key(platform)))
