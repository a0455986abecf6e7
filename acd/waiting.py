"""The callers waiting for a seat: in memory (with the router's index) and mirrored in Redis,
so a restarted controller finds them again (Asterisk still holds them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import redis.asyncio as aioredis
import structlog

from acd.model import QueuedCall, waiting_key
from acd.router import CallerIndex
from calls.redis_budget import RedisBudget

log = structlog.get_logger(__name__)

RESYNC_READ_S = 3.0  # after an AMI (re)connect, not while a caller waits on it


class WaitingCallers:
    """Who waits, in rank order per queue; ``best_for`` is the router's choice for a seat."""

    def __init__(self, client: aioredis.Redis, platform: str, budget: RedisBudget | None = None) -> None:
        self._redis = client
        self._budget = budget or RedisBudget()
        self._key = waiting_key(platform)
        self._calls: dict[str, QueuedCall] = {}
        self._index = CallerIndex()
        self.best_for = self._index.best_for

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, call_id: str) -> QueuedCall | None:
        return self._calls.get(call_id)

    def ordered(self, queue: str | None = None) -> list[QueuedCall]:
        """Waiting callers (of ``queue``, or all) best first: priority, then arrival."""
        calls = (c for c in self._calls.values() if queue is None or c.queue == queue)
        return sorted(calls, key=lambda c: c.rank)

    def ahead_of(self, call: QueuedCall) -> int:
        return sum(1 for other in self._calls.values() if other.queue == call.queue and other.rank < call.rank)

    def add(self, call: QueuedCall) -> bool:
        """Known here from now on; False if it already was."""
        if call.call_id in self._calls:
            return False
        self._calls[call.call_id] = call
        self._index.add(call.waiting())
        return True

    def take(self, call_id: str) -> QueuedCall | None:
        """No longer waiting (bound to a seat, left, gone from Asterisk); Redis is separate."""
        self._index.remove(call_id)
        return self._calls.pop(call_id, None)

    def save(self, call: QueuedCall) -> None:
        """Mirror a waiting caller in Redis, in the background (retried while Redis fails). The
        caller is held by Asterisk and known here; only a restart before the write is done
        would forget it — and then max wait still takes it to the overflow node."""
        text = call.to_json()
        self._budget.write(
            f"waiting {call.call_id}",
            lambda: self._redis.hset(self._key, call.call_id, text),
            key=self._entry(call.call_id),
        )

    def forget(self, call_id: str) -> None:
        """No longer waiting: removed from Redis in the background (after any pending save)."""
        self._budget.write(
            f"not waiting {call_id}", lambda: self._redis.hdel(self._key, call_id), key=self._entry(call_id)
        )

    def _entry(self, call_id: str) -> str:
        return f"{self._key}/{call_id}"

    async def saved(self) -> list[QueuedCall]:
        """What Redis remembers (after a restart); empty, with a warning, when Redis is away."""
        raw = await self._budget.read("waiting callers", self._all, None, timeout_s=RESYNC_READ_S)
        if raw is None:
            log.warning("acd.resync_without_redis")
            return []
        return [QueuedCall.from_json(value) for value in raw.values()]

    async def _all(self) -> dict[bytes, bytes]:
        return cast(dict[bytes, bytes], await self._redis.hgetall(self._key))

    def keep_only(self, present: Iterable[str], saved: Iterable[QueuedCall]) -> None:
        """After a resync: forget callers Asterisk no longer has (callbacks have no channel and
        stay), and drop from Redis what is not waiting here."""
        present_ids = set(present)
        for call_id in [c for c, call in self._calls.items() if c not in present_ids and not call.is_callback]:
            self.take(call_id)
        for call in saved:
            if call.call_id not in self._calls:
                self.forget(call.call_id)
