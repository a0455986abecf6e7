"""How often each entry answered a case, per platform: a Redis hash, so ranking by use survives
restarts. Searching never depends on it: while Redis is away the last counts read are used and
new uses wait in memory until it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

REFRESH_S = 10.0  # how stale the counts a search ranks by may be (another controller's uses)


def uses_key(platform: str) -> str:
    return f"hotline:knowledge:uses:{platform}"


class UseStore(Protocol):
    """Where the counts live (Redis in production)."""

    async def add(self, platform: str, counts: dict[str, int]) -> None: ...

    async def read(self, platform: str) -> dict[str, int]: ...


class RedisUseStore:
    """One hash per platform: entry id → uses. Every call is bounded by ``timeout_s``."""

    def __init__(self, client: aioredis.Redis, timeout_s: float = 0.5) -> None:
        self._client = client
        self._timeout_s = timeout_s

    async def add(self, platform: str, counts: dict[str, int]) -> None:
        async with asyncio.timeout(self._timeout_s):
            pipe = self._client.pipeline(transaction=True)
            for entry_id, count in counts.items():
                pipe.hincrby(uses_key(platform), entry_id, count)
            await pipe.execute()

    async def read(self, platform: str) -> dict[str, int]:
        async with asyncio.timeout(self._timeout_s):
            raw = await self._client.hgetall(uses_key(platform))
        counts: dict[str, int] = {}
        for key, value in raw.items():
            try:
                counts[key.decode() if isinstance(key, bytes) else str(key)] = int(value)
            except (ValueError, UnicodeDecodeError):
                continue  # not ours to repair; an entry without a count ranks as unused
        return counts


class UseCounts:
    """The counts of one platform, cached; increments not yet in the store are kept and sent
    with the next successful access (never counted twice: the cache is replaced by the store's
    counts only after they were added)."""

    def __init__(self, store: UseStore, platform: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._platform = platform
        self._clock = clock
        self._counts: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._read_at: float | None = None
        self.store_failures = 0

    @property
    def unsaved(self) -> int:
        return sum(self._pending.values())

    async def current(self) -> dict[str, int]:
        """The counts (refreshed from the store at most every REFRESH_S; the cached ones when
        the store fails)."""
        now = self._clock()
        if self._read_at is None or now - self._read_at >= REFRESH_S:
            self._read_at = now  # also on failure: a dead Redis is not asked on every search
            await self._sync()
        return self._counts

    async def record(self, entry_id: str) -> None:
        """One more use of ``entry_id`` (an id the caller has checked)."""
        self._counts[entry_id] = self._counts.get(entry_id, 0) + 1
        self._pending[entry_id] = self._pending.get(entry_id, 0) + 1
        await self._flush()

    async def _flush(self) -> bool:
        if not self._pending:
            return True
        pending, self._pending = self._pending, {}
        try:
            await self._store.add(self._platform, pending)
        except (RedisError, OSError, TimeoutError) as exc:
            for entry_id, count in pending.items():
                self._pending[entry_id] = self._pending.get(entry_id, 0) + count
            self.store_failures += 1
            log.warning("knowledge.uses_unsaved", unsaved=self.unsaved, error=str(exc) or type(exc).__name__)
            return False
        return True

    async def _sync(self) -> None:
        if not await self._flush():
            return
        try:
            counts = await self._store.read(self._platform)
        except (RedisError, OSError, TimeoutError) as exc:
            self.store_failures += 1
            log.warning("knowledge.uses_unread", error=str(exc) or type(exc).__name__)
            return
        # uses recorded while the read was under way are pending again: keep them on top
        self._counts = {k: counts.get(k, 0) + self._pending.get(k, 0) for k in counts.keys() | self._pending.keys()}
