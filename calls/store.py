"""Where call records are kept: the Protocol, and its Redis implementation."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Protocol

import redis.asyncio as aioredis

from calls.caller_index import HISTORY_WINDOW, MAX_CALLS_PER_CALLER, CallerKeys
from calls.model import CallRecord

KEY_PREFIX = "hotline:"
INDEXED_CALLS_MAX = 20_000  # open calls whose index entries this store remembers having written


class CallStore(Protocol):
    """Durable storage of call records."""

    async def save(self, record: CallRecord) -> None: ...

    async def save_many(self, records: Sequence[CallRecord]) -> None:
        """Save several records at once (all or none: the writer retries the batch)."""
        ...

    async def get(self, call_id: str) -> CallRecord | None: ...

    async def recent(self, limit: int) -> list[CallRecord]: ...

    async def open_records(self) -> list[CallRecord]: ...


class RedisCallStore:
    """Records as JSON strings; per platform a sorted set by start time and a set of open calls
    (the platforms of a province share one Redis; each adopts and lists only its own calls).

    Each save writes the whole record, so a retry after a Redis outage is idempotent. The index
    entries of an open call (the open set, the by-start and search indexes, the caller's history)
    do not change between its saves: they are written with its first save and again only when
    they change, not with each of the ten or so saves of a call's IVR steps (the record's own SET
    is always written). What was written is remembered only after Redis confirmed it.
    """

    def __init__(
        self, client: aioredis.Redis, retention: timedelta, platform: str, caller_keys: CallerKeys | None = None
    ) -> None:
        self._redis = client
        self._retention = retention
        self._platform = platform
        self._caller_keys = caller_keys  # the caller index (calls/caller_index.py), when wired
        self._indexed: OrderedDict[str, frozenset[str]] = OrderedDict()  # open call → entries written

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
        await self.save_many([record])

    async def save_many(self, records: Sequence[CallRecord]) -> None:
        """Save ``records`` in one round trip, all or none: the open records' JSON in one MSET (one
        command and one reply, however many records: redis-py's per-reply work was most of the
        writer's cost), the rest beside it in one MULTI/EXEC — or the MSET alone, atomic by
        itself, when no record has anything else to write (most rounds of an IVR step)."""
        if not records:
            return
        written: list[tuple[CallRecord, frozenset[str]]] = []
        plain: dict[str, str] = {}  # open records: key → JSON (no expiry, as a plain SET)
        async with self._redis.pipeline(transaction=True) as pipe:
            for record in records:
                written.append((record, self._queue_save(pipe, record, plain)))
            if len(pipe) == 0:
                await self._redis.mset(plain)
            else:
                if plain:
                    pipe.mset(plain)
                await pipe.execute()
        for record, entries in written:
            if record.is_open:
                self._indexed[record.call_id] = entries
                self._indexed.move_to_end(record.call_id)
                while len(self._indexed) > INDEXED_CALLS_MAX:
                    self._indexed.popitem(last=False)
            else:
                self._indexed.pop(record.call_id, None)  # an amendment after the end writes them again

    def _queue_save(self, pipe: Any, record: CallRecord, plain: dict[str, str]) -> frozenset[str]:
        """Queue one record's writes on ``pipe`` (an open record's JSON goes into ``plain``, for
        one MSET); returns the index entries it then has."""
        started_ms = int(record.started_at.timestamp() * 1000)
        cutoff_ms = started_ms - int(self._retention.total_seconds() * 1000)
        done = self._indexed.get(record.call_id, frozenset())
        entries = {f"started={started_ms}"}
        if record.is_open:
            plain[self._key(record.call_id)] = record.model_dump_json()
            if "open" not in done:
                pipe.sadd(self._open_key(record.platform), record.call_id)
            entries.add("open")
        else:
            pipe.set(self._key(record.call_id), record.model_dump_json(), ex=self._retention)
            pipe.srem(self._open_key(record.platform), record.call_id)
        if f"started={started_ms}" not in done:
            pipe.zadd(self._recent_key(record.platform), {record.call_id: started_ms})
            pipe.zremrangebyscore(self._recent_key(record.platform), "-inf", cutoff_ms)
        for by, value in self.search_fields(record).items():
            entry = f"{by}={value}"
            entries.add(entry)
            if entry in done and f"started={started_ms}" in done:
                continue
            index = self.index_key(record.platform, by, value)
            pipe.zadd(index, {record.call_id: started_ms})
            pipe.zremrangebyscore(index, "-inf", cutoff_ms)
            pipe.pexpire(index, int(self._retention.total_seconds() * 1000))
        if self._caller_keys is not None and record.caller:
            entry = f"caller={record.caller}"
            entries.add(entry)
            if entry not in done or f"started={started_ms}" not in done:
                by_caller = self._caller_keys.calls_key(record.platform, record.caller)
                window_ms = int(HISTORY_WINDOW.total_seconds() * 1000)
                pipe.zadd(by_caller, {record.call_id: started_ms})
                pipe.zremrangebyscore(by_caller, "-inf", started_ms - window_ms)
                pipe.zremrangebyrank(by_caller, 0, -(MAX_CALLS_PER_CALLER + 1))
                pipe.pexpire(by_caller, window_ms)  # 90 days after its latest call
        return frozenset(entries)

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
