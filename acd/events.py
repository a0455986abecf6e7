"""Live events for supervisors (websocket fan-out), also kept on a capped Redis stream."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import structlog

from calls.redis_budget import RedisBudget

log = structlog.get_logger(__name__)

EVENTS_STREAM = "hotline:events"
EVENTS_MAX = 100_000
QUEUE_DEPTH = 1000


class EventBus:
    """Publishes events to every subscriber queue and to Redis; slow subscribers lose the oldest.
    The Redis copy is written in the background (best effort: dropped first when Redis is away
    long enough to fill the write backlog), so publishing never waits on Redis."""

    def __init__(self, client: aioredis.Redis, budget: RedisBudget | None = None) -> None:
        self._redis = client
        self._budget = budget or RedisBudget()
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_DEPTH)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    async def publish(self, kind: str, at: datetime, **fields: Any) -> None:
        event = {"type": kind, "at": at.isoformat(), **fields}
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # drop the oldest: a stalled browser must not stall calls
            queue.put_nowait(event)
        fields = {"event": json.dumps(event, ensure_ascii=False)}
        # the live fan-out happened; storage is best effort and visible (redis.write_* logs, metrics)
        self._budget.write(
            f"event {kind}",
            lambda: self._redis.xadd(EVENTS_STREAM, fields, maxlen=EVENTS_MAX, approximate=True),  # type: ignore[arg-type]
            retry=False,
            droppable=True,
        )
