"""Live events for supervisors (websocket fan-out), also kept on a capped Redis stream."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.asyncio.client import Pipeline

from calls.redis_budget import RedisBudget

log = structlog.get_logger(__name__)

EVENTS_STREAM_PREFIX = "hotline:events:"  # one capped stream per platform (17 share one Redis)
EVENTS_MAX = 100_000
QUEUE_DEPTH = 1000
UNSAVED_MAX = 10_000  # events not yet written to the stream (Redis away): beyond, the oldest go


def events_stream(platform: str) -> str:
    """The Redis stream of one platform's events: another platform's never trims or mixes into it."""
    return f"{EVENTS_STREAM_PREFIX}{platform}"


class EventBus:
    """Publishes events to every subscriber queue and to Redis; slow subscribers lose the oldest.
    The Redis copy is written in the background (best effort: dropped first when Redis is away
    long enough to fill the write backlog), so publishing never waits on Redis.

    The events published while a stream write waits in the write-behind queue go with it: one
    pipeline of XADDs (in publish order) per background write, not one round trip per event —
    a seat's state change and the ACD event that caused it are usually published together —
    and with the seat and waiting-caller writes next to it in the queue (``write_staged``)."""

    def __init__(self, client: aioredis.Redis, budget: RedisBudget | None = None, *, platform: str) -> None:
        self._redis = client
        self.stream = events_stream(platform)
        self._budget = budget or RedisBudget()
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._unsaved: list[tuple[str, dict[str, str]]] = []  # (kind, XADD fields), oldest first

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
        # the live fan-out happened; storage is best effort and visible (redis.write_* logs, metrics)
        if len(self._unsaved) >= UNSAVED_MAX:  # the writer is stuck behind Redis: the oldest goes
            dropped, _ = self._unsaved.pop(0)
            self._budget.writes_dropped += 1
            log.error("redis.write_dropped", what=f"event {dropped}", why="backlog full", backlog=UNSAVED_MAX)
        self._unsaved.append((kind, {"event": json.dumps(event, ensure_ascii=False)}))
        # one queued write takes every event unsaved when it runs (a later one replaces it if not
        # started), in the same pipeline as the seat and waiting-caller writes queued next to it
        self._budget.write_staged(
            f"event {kind}", self._redis, self._stage, key=self.stream, retry=False, droppable=True
        )

    def _stage(self, pipe: Pipeline) -> None:
        batch, self._unsaved = self._unsaved, []
        for _, fields in batch:
            pipe.xadd(self.stream, fields, maxlen=EVENTS_MAX, approximate=True)  # type: ignore[arg-type]
