"""The callers waiting for a seat: in memory (with the router's index) and mirrored in Redis,
so a restarted controller finds them again (Asterisk still holds them)."""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from typing import cast

import redis.asyncio as aioredis
import structlog

from acd.model import QueuedCall, waiting_key
from acd.router import CallerIndex
from calls.redis_budget import RedisBudget

log = structlog.get_logger(__name__)

RESYNC_READ_S = 3.0  # after an AMI (re)connect, not while a caller waits on it

_Key = tuple[int, float, int, str]  # (-priority, entered_at, arrival sequence, call id): rank order


class WaitingCallers:
    """Who waits, in rank order per queue; ``best_for`` is the router's choice for a seat.

    Each queue keeps its callers in a list sorted by rank (priority, then arrival, then the
    order they were added here), updated on every add and take: no sort per dispatch. Callers
    of several queues come out in rank order by merging those lists (``in_order``).
    """

    def __init__(self, client: aioredis.Redis, platform: str, budget: RedisBudget | None = None) -> None:
        self._redis = client
        self._budget = budget or RedisBudget()
        self._key = waiting_key(platform)
        self._calls: dict[str, QueuedCall] = {}
        self._index = CallerIndex()
        self.best_for = self._index.best_for
        self._queues: dict[str, list[_Key]] = {}  # queue → its callers' keys, sorted
        self._keys: dict[str, _Key] = {}
        self._sequence = itertools.count()
        self._gone: set[str] = set()  # taken since ``departed()`` was last asked

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, call_id: str) -> QueuedCall | None:
        return self._calls.get(call_id)

    def ordered(self, queue: str | None = None) -> list[QueuedCall]:
        """Waiting callers (of ``queue``, or all) best first: priority, then arrival."""
        return list(self.in_order(None if queue is None else (queue,)))

    def in_order(self, queues: Iterable[str] | None = None) -> Iterator[QueuedCall]:
        """The callers of ``queues`` (or all), best first, lazily: take only what you need, and
        do not add or take callers before you are done with it (no await in between)."""
        names = self._queues if queues is None else set(queues)
        lists = [self._queues[name] for name in names if name in self._queues]
        keys = lists[0] if len(lists) == 1 else heapq.merge(*lists)
        for key in keys:
            yield self._calls[key[3]]

    def ordered_by_sort(self) -> list[QueuedCall]:
        """The reference: every caller sorted on the spot (what ``ordered()`` must agree with)."""
        return sorted(self._calls.values(), key=lambda c: c.rank)

    def ahead_of(self, call: QueuedCall) -> int:
        """How many callers of its queue rank strictly before ``call`` (a binary search)."""
        return bisect_left(self._queues.get(call.queue, []), call.rank)

    def add(self, call: QueuedCall) -> bool:
        """Known here from now on; False if it already was."""
        if call.call_id in self._calls:
            return False
        self._calls[call.call_id] = call
        self._index.add(call.waiting())
        key = (-call.priority, call.entered_at, next(self._sequence), call.call_id)
        self._keys[call.call_id] = key
        insort(self._queues.setdefault(call.queue, []), key)
        return True

    def take(self, call_id: str) -> QueuedCall | None:
        """No longer waiting (bound to a seat, left, gone from Asterisk); Redis is separate."""
        self._index.remove(call_id)
        call = self._calls.pop(call_id, None)
        key = self._keys.pop(call_id, None)
        if call is not None and key is not None:
            self._gone.add(call_id)
            keys = self._queues[call.queue]
            del keys[bisect_left(keys, key)]
            if not keys:
                del self._queues[call.queue]
        return call

    def departed(self) -> set[str]:
        """The callers taken since the last time this was asked (some may be back since): the
        only ones whose ringing offers may need another caller (``Distribution.rebalance``)."""
        gone, self._gone = self._gone, set()
        return gone

    def queues(self) -> list[str]:
        """The queues somebody waits in now."""
        return list(self._queues)

    def save(self, call: QueuedCall) -> None:
        """Mirror a waiting caller in Redis, in the background (retried while Redis fails). The
        caller is held by Asterisk and known here; only a restart before the write is done
        would forget it — and then max wait still takes it to the overflow node."""
        text = call.to_json()
        self._budget.write_staged(
            f"waiting {call.call_id}",
            self._redis,
            lambda pipe: pipe.hset(self._key, call.call_id, text),
            key=self._entry(call.call_id),
        )

    def forget(self, call_id: str) -> None:
        """No longer waiting: removed from Redis in the background (after any pending save)."""
        self._budget.write_staged(
            f"not waiting {call_id}", self._redis, lambda pipe: pipe.hdel(self._key, call_id), key=self._entry(call_id)
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
