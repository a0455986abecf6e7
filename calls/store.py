"""Where call records are kept: the Protocol, and its Redis implementation."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol

import redis.asyncio as aioredis

from calls.caller_index import HISTORY_WINDOW, MAX_CALLS_PER_CALLER, CallerKeys
from calls.model import CallRecord

KEY_PREFIX = "hotline:"


class CallStore(Protocol):
    """Durable storage of call records."""

    async def save(self, record: CallRecord) -> None: ...

    async def get(self, call_id: str) -> CallRecord | None: ...

    async def recent(self, limit: int) -> list[CallRecord]: ...

    async def open_records(self) -> list[CallRecord]: ...


class RedisCallStore:
    """Records as JSON strings; per platform a sorted set by start time and a set of open calls
    (the platforms of a province share one Redis; each adopts and lists only its own calls).

    Each save writes the whole record, so a retry after a Redis outage is idempotent.
    """

    def __init__(
        self, client: aioredis.Redis, retention: timedelta, platform: str, caller_keys: CallerKeys | None = None
    ) -> None:
        self._redis = client
        self._retention = retention
        self._platform = platform
        self._caller_keys = caller_keys  # the caller index (calls/caller_index.py), when wired

    @staticmethod
    def _recent_key(platform: str) -> str:
        return f"{KEY_PREFIX}calls:recent:{platform}"

    @staticmethod
    def recent_index(platform: str) -> str:
        """Every call of ``platform`` scored by start (ms): the search by date alone."""
        return RedisCallStore._recent_key(platform)

    @staticmethod
    def _open_key(platform: str) -> str:
        return f"{KEY_PREFIX}calls:open:{platform}"

    @staticmethod
    def _key(call_id: str) -> str:
        return f"{KEY_PREFIX}call:{call_id}"

    @staticmethod
    def index_key(platform: str, by: str, value: str) -> str:
        """A search index (reports/search.py): the call ids of ``platform`` with that seat, queue,
        outcome or case (``by``), scored by start (ms); trimmed and expiring like the records."""
        return f"{KEY_PREFIX}calls:by-{by}:{platform}:{value}"

    @staticmethod
    def search_fields(record: CallRecord) -> dict[str, str]:
        """The indexed fields of a record that it has."""
        fields = {"seat": record.seat, "queue": record.queue, "case": record.case_id}
        fields["outcome"] = record.outcome.value if record.outcome else ""
        return {by: value for by, value in fields.items() if value}

    async def save(self, record: CallRecord) -> None:
        started_ms = int(record.started_at.timestamp() * 1000)
        cutoff_ms = started_ms - int(self._retention.total_seconds() * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            if record.is_open:
                pipe.set(self._key(record.call_id), record.model_dump_json())
                pipe.sadd(self._open_key(record.platform), record.call_id)
            else:
                pipe.set(self._key(record.call_id), record.model_dump_json(), ex=self._retention)
                pipe.srem(self._open_key(record.platform), record.call_id)
            pipe.zadd(self._recent_key(record.platform), {record.call_id: started_ms})
            pipe.zremrangebyscore(self._recent_key(record.platform), "-inf", cutoff_ms)
            for by, value in self.search_fields(record).items():
                index = self.index_key(record.platform, by, value)
                pipe.zadd(index, {record.call_id: started_ms})
                pipe.zremrangebyscore(index, "-inf", cutoff_ms)
                pipe.pexpire(index, int(self._retention.total_seconds() * 1000))
            if self._caller_keys is not None and record.caller:
                by_caller = self._caller_keys.calls_key(record.platform, record.caller)
                window_ms = int(HISTORY_WINDOW.total_seconds() * 1000)
                pipe.zadd(by_caller, {record.call_id: started_ms})
                pipe.zremrangebyscore(by_caller, "-inf", started_ms - window_ms)
                pipe.zremrangebyrank(by_caller, 0, -(MAX_CALLS_PER_CALLER + 1))
                pipe.pexpire(by_caller, window_ms)  # 90 days after its latest call
            await pipe.execute()

    async def get(self, call_id: str) -> CallRecord | None:
        raw = await self._redis.get(self._key(call_id))
        return CallRecord.model_validate_json(raw) if raw else None

    async def many(self, call_ids: list[str]) -> list[CallRecord]:
        """The records of ``call_ids`` that are still kept, in order."""
        if not call_ids:
            return []
        raws = await self._redis.mget([self._key(call_id) for call_id in call_ids])
        return [CallRecord.model_validate_json(raw) for raw in raws if raw]

    async def by_caller(self, platform: str, number: str, since_ms: int, limit: int) -> list[CallRecord]:
        """The calls of ``number`` on ``platform`` that started at or after ``since_ms``, newest
        first (at most ``limit``); [] without a caller index or a number."""
        if self._caller_keys is None or not number:
            return []
        key = self._caller_keys.calls_key(platform, number)
        ids = await self._redis.zrevrangebyscore(key, "+inf", since_ms, start=0, num=limit)
        return await self.many(_ids(ids))

    async def recent(self, limit: int) -> list[CallRecord]:
        ids = await self._redis.zrevrange(self._recent_key(self._platform), 0, limit - 1)
        return await self.many(_ids(ids))

    async def started_since(self, since_ms: int, offset: int, count: int) -> tuple[int, list[CallRecord]]:
        """A page of this platform's calls started at or after ``since_ms``, newest first: (ids
        in the page, the records still kept). The next page starts at ``offset`` + ids."""
        ids = await self._redis.zrevrangebyscore(
            self._recent_key(self._platform), "+inf", since_ms, start=offset, num=count
        )
        return len(ids), await self.many(_ids(ids))

    async def open_records(self) -> list[CallRecord]:
        ids = await self._redis.smembers(self._open_key(self._platform))
        return await self.many(sorted(_ids(ids)))


class StoreUnavailable(Exception):
    """The record store cannot be reached right now."""


def _ids(raw: Iterable[object]) -> list[str]:
    """Member names as Redis returns them (bytes, or str with decode_responses)."""
    return [i.decode() if isinstance(i, bytes) else str(i) for i in raw]
