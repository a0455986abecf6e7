"""Every platform's latest board summary in the shared Redis, so that the province's wallboard
shows all 17 platforms (each controller writes its own every push; one read per push serves
every provincial viewer)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol, cast

import pydantic_core
import redis.asyncio as aioredis

MEMBERS = "hotline:wallboard:platforms"
PREFIX = "hotline:wallboard:"
STALE_AFTER_S = 15.0


class BoardStore(Protocol):
    async def publish(self, platform: str, summary: dict[str, Any]) -> None: ...

    async def summaries(self) -> list[dict[str, Any]]: ...


class RedisBoardStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def publish(self, platform: str, summary: dict[str, Any]) -> None:
        # no MULTI: nothing here needs the two together (a member without a summary shows as not
        # reporting), and behind Sentinel a transaction would wait for the replicas each time
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(MEMBERS, platform)
            # pydantic-core's serializer (Rust): every push writes it, json.dumps was most of a publish
            pipe.set(PREFIX + platform, pydantic_core.to_json(summary), ex=int(STALE_AFTER_S * 20))
            await pipe.execute()

    async def summaries(self) -> list[dict[str, Any]]:
        members = sorted(m.decode() for m in cast(set[bytes], await self._redis.smembers(MEMBERS)))
        raws = cast(list[bytes | None], await self._redis.mget([PREFIX + m for m in members])) if members else []
        return [json.loads(raw) if raw else {"platform": p} for p, raw in zip(members, raws, strict=True)]


def with_freshness(summaries: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Each summary marked ``reporting`` (false when older than STALE_AFTER_S or missing)."""
    marked = []
    for summary in summaries:
        at = summary.get("at")
        if not isinstance(at, str):
            marked.append({**summary, "reporting": False, "age_s": None})
            continue
        age = (now - datetime.fromisoformat(at)).total_seconds()
        marked.append({**summary, "reporting": age <= STALE_AFTER_S, "age_s": round(age, 1)})
    return marked
