"""Live events for supervisors (websocket fan-out), also kept on a capped Redis stream."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import structlog

log = structlog.get_logger(__name__)

EVENTS_STREAM = "hotline:events"
EVENTS_MAX = 100_000
QUEUE_DEPTH = 1000


class EventBus:
    """Publishes events to every subscriber queue and to Redis; slow subscribers lose the oldest."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
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
        try:
            await self._redis.xadd(
                EVENTS_STREAM, {"event": json.dumps(event, ensure_ascii=False)}, maxlen=EVENTS_MAX, approximate=True
            )
        except Exception as exc:  # the live fan-out happened; storage is best effort and visible
            log.warning("events.store_failed", error=str(exc) or type(exc).__name__)
