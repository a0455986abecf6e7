"""Is Redis up, slow (it accepts connections but does not answer: hung) or down, and what the
controller does when it comes back; reads for the API that never wait on a hung Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from acd.seats import SeatService
from calls.callbacks import RedisCallbackList
from calls.redis_budget import RedisBudget
from calls.store import StoreUnavailable
from calls.tracker import CallTracker

log = structlog.get_logger(__name__)

T = TypeVar("T")
READ_TIMEOUT_S = 2.0  # an API or /metrics read of Redis; the call path has its own budget (redis.op_timeout_ms)


class RedisWatch:
    """Pinged every 2 s by the controller; ``up`` and ``slow`` feed health and /metrics."""

    def __init__(
        self,
        client: aioredis.Redis,
        budget: RedisBudget,
        tracker: CallTracker,
        seats: SeatService,
        callback_list: RedisCallbackList,
    ) -> None:
        self._client = client
        self._budget = budget
        self._tracker = tracker
        self._seats = seats
        self._callback_list = callback_list
        self.up = False
        self.slow = False  # it accepts connections but does not answer in time (hung)
        self._seats_loaded = False

    async def check(self) -> None:
        try:
            async with asyncio.timeout(max(self._budget.op_timeout_s, 1.0)):
                await self._client.ping()
        except TimeoutError:
            if not self.slow:
                log.error("controller.redis_slow", note="Redis does not answer in time (hung?); calls go on without it")
            self.up, self.slow = False, True
            raise
        except RedisError:
            self.up, self.slow = False, False
            raise
        self.slow = False
        self._budget.answered()
        if not self.up:
            log.info("controller.redis_back")
            await self._tracker.flush_dirty()  # first: a record that ended meanwhile is not adopted as open
            await self.load_state()
            await self._callback_list.flush()

    async def load_state(self) -> None:
        """Adopt open call records (always safe: known ones are kept) and, once, seat states."""
        await self._tracker.load_open()
        if not self._seats_loaded:
            await self._seats.load()
            self._seats_loaded = True
        self.up = True

    async def bounded_read(self, what: str, read: Callable[[], Awaitable[T]]) -> T:
        """A read for the API or a scrape: StoreUnavailable at once while Redis is known hung,
        else after at most READ_TIMEOUT_S (a console or /metrics never waits on a hung Redis)."""
        if self.slow:
            raise StoreUnavailable(f"{what} are unavailable: Redis does not answer (hung?)")
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                return await read()
        except (RedisError, TimeoutError) as exc:
            raise StoreUnavailable(f"{what} are unavailable: Redis: {exc or 'timed out'}") from None
