"""Where call records are kept: the Protocol, and its Redis implementation."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import redis.asyncio as aioredis

from calls.caller_index import HISTORY_WINDOW, MAX_CALLS_PER_CALLER, CallerKeys
from calls.model import CallRecord

KEY_PREFIX = "hotline:"

# KEYS: every key the batch touches. ARGV[1]: JSON [records, counts]; records: [[record key's
# position in KEYS, revision, expiry ms (0: none), [[command, key position, args…], …]], …];
# ARGV[1 + i]: record i's JSON. A record is written, then its index writes run, only if the stored
# record's revision is not newer (equal: the retry of a write that landed; none stored, or a
# record of before revisions: 0). Replies, per record: -1 written, else the stored revision that
# kept it out. counts (``CountOnce``): [[marker position, marker ttl s, keep s, [key position,
# field, amount, …]], …]: the HINCRBYs run only if the marker is new (SET NX), then the keys where
# they created a field expire keep s from now — a count sent again (the round retried) is not
# counted twice.
SAVE_SCRIPT = """
local writes = {SADD = true, SREM = true, ZADD = true, ZREMRANGEBYSCORE = true, ZREMRANGEBYRANK = true, PEXPIRE = true}
local replies = {}
local meta = cjson.decode(ARGV[1])
for _, count in ipairs(meta[2]) do
    if redis.call('SET', KEYS[count[1]], '1', 'NX', 'EX', count[2]) then
        local incs, touched = count[4], {}
        for j = 1, #incs, 3 do
            -- a key's expiry is set when a field of it is created (reports/store.py _APPLY)
            if redis.call('HINCRBY', KEYS[incs[j]], incs[j + 1], incs[j + 2]) == tonumber(incs[j + 2]) then
                touched[incs[j]] = true
            end
        end
        for position, _ in pairs(touched) do redis.call('EXPIRE', KEYS[position], count[3]) end
    end
end
for i, record in ipairs(meta[1]) do
    local key = KEYS[record[1]]
    local stored = redis.call('GET', key)
    local have = -1
    if stored then
        -- revision is the record's last field: read at the end, decoded whole only if not there
        have = tonumber(string.match(stored, '"revision":(%d+)}$'))
        if not have then
            local ok, old = pcall(cjson.decode, stored)
            have = (ok and type(old) == 'table' and tonumber(old['revision'])) or 0
        end
    end
    if have > record[2] then
        replies[i] = have
    else
        if record[3] > 0 then
            redis.call('SET', key, ARGV[i + 1], 'PX', record[3])
        else
            redis.call('SET', key, ARGV[i + 1])
        end
        for _, op in ipairs(record[4]) do
            if not writes[op[1]] then
                return redis.error_reply('not a write of a call record: ' .. tostring(op[1]))
            end
            redis.call(op[1], KEYS[op[2]], unpack(op, 3))
        end
        replies[i] = -1
    end
end
return replies
"""
INDEXED_CALLS_MAX = 20_000  # open calls whose index entries this store remembers having written


@dataclass(frozen=True)
class CountOnce:
    """Counters to add once, in the writer's round with the records (a report's roll-up of an
    ended call: one round trip for many calls instead of one each): the ``increments`` (key,
    field, amount) are added only if ``marker`` is new (``SET NX``, expiring ``marker_ttl_s``),
    together with it; the keys counted then expire ``keep_s`` from now. Sent again (the round
    retried while Redis fails, a call ended again by a restarted controller): counted once."""

    marker: str
    marker_ttl_s: int
    keep_s: int
    increments: tuple[tuple[str, str, int], ...]


class CallStore(Protocol):
    """Durable storage of call records."""

    async def save(self, record: CallRecord) -> bool: ...

    async def save_many(self, records: Sequence[CallRecord], counts: Sequence[CountOnce] = ()) -> dict[str, int]:
        """Save several records at once (the writer retries the batch when it fails), and add
        ``counts`` in the same round (one script: a refusal midway, e.g. a report key of the wrong
        type, is not rolled back — Redis scripts are not transactions — and fails the round; the
        tracker then sends the records again without the counts). A record whose stored
        revision is newer than its own is left as stored: the ones left so come back, call id →
        the stored revision."""
        ...

    async def get(self, call_id: str) -> CallRecord | None: ...

    async def recent(self, limit: int) -> list[CallRecord]: ...

    async def open_records(self) -> list[CallRecord]: ...


class RedisCallStore:
    """Records as JSON strings; per platform a sorted set by start time and a set of open calls
    (the platforms of a province share one Redis; each adopts and lists only its own calls).

    Each save writes the whole record, so a retry after a Redis outage is idempotent. Writes
    are compare-and-set on the record's ``revision`` (``SAVE_SCRIPT``): a version lands, with its
    index entries, only where the stored one is not newer, so a write that Redis takes late (a
    hung Redis whose kernel held the bytes of a timed-out write, then took its retry of a newer
    version first) can never take a record back in time. The index
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

    async def save(self, record: CallRecord) -> bool:
        """Save ``record``; False when the store has a newer revision of it (nothing written)."""
        return record.call_id not in await self.save_many([record])

    async def save_many(self, records: Sequence[CallRecord], counts: Sequence[CountOnce] = ()) -> dict[str, int]:
        """Save ``records`` in one round trip (one MULTI/EXEC around one script), with
        ``counts``. A record is written, with its index entries, only where the store's revision
        of it is not newer; returns the ones that were not: call id → the revision the store has."""
        if not records and not counts:
            return {}
        batch = _Batch()
        for count in counts:
            batch.count(count)
        planned = [(record, self._plan(batch, record)) for record in records]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.eval(SAVE_SCRIPT, len(batch.keys), *batch.keys, batch.meta(), *batch.bodies)
            (replies,) = await pipe.execute()
        stale: dict[str, int] = {}
        for (record, entries), reply in zip(planned, replies, strict=True):
            if int(reply) >= 0:
                stale[record.call_id] = int(reply)
                self._indexed.pop(record.call_id, None)  # written by another version: all again next time
            elif record.is_open:
                self._indexed[record.call_id] = entries
                self._indexed.move_to_end(record.call_id)
                while len(self._indexed) > INDEXED_CALLS_MAX:
                    self._indexed.popitem(last=False)
            else:
                self._indexed.pop(record.call_id, None)  # an amendment after the end writes them again
        return stale

    def _plan(self, batch: _Batch, record: CallRecord) -> frozenset[str]:
        """Add one record's writes to ``batch``; returns the index entries it then has."""
        started_ms = int(record.started_at.timestamp() * 1000)
        cutoff_ms = started_ms - int(self._retention.total_seconds() * 1000)
        retention_ms = int(self._retention.total_seconds() * 1000)
        done = self._indexed.get(record.call_id, frozenset())
        entries = {f"started={started_ms}"}
        ops: list[list[object]] = []
        if record.is_open:
            expire_ms = 0
            if "open" not in done:
                ops.append(["SADD", batch.key(self._open_key(record.platform)), record.call_id])
            entries.add("open")
        else:
            expire_ms = retention_ms
            ops.append(["SREM", batch.key(self._open_key(record.platform)), record.call_id])
        if f"started={started_ms}" not in done:
            recent = batch.key(self._recent_key(record.platform))
            ops.append(["ZADD", recent, str(started_ms), record.call_id])
            ops.append(["ZREMRANGEBYSCORE", recent, "-inf", str(cutoff_ms)])
        for by, value in self.search_fields(record).items():
            entry = f"{by}={value}"
            entries.add(entry)
            if entry in done and f"started={started_ms}" in done:
                continue
            index = batch.key(self.index_key(record.platform, by, value))
            ops.append(["ZADD", index, str(started_ms), record.call_id])
            ops.append(["ZREMRANGEBYSCORE", index, "-inf", str(cutoff_ms)])
            ops.append(["PEXPIRE", index, str(retention_ms)])
        if self._caller_keys is not None and record.caller:
            entry = f"caller={record.caller}"
            entries.add(entry)
            if entry not in done or f"started={started_ms}" not in done:
                by_caller = batch.key(self._caller_keys.calls_key(record.platform, record.caller))
                window_ms = int(HISTORY_WINDOW.total_seconds() * 1000)
                ops.append(["ZADD", by_caller, str(started_ms), record.call_id])
                ops.append(["ZREMRANGEBYSCORE", by_caller, "-inf", str(started_ms - window_ms)])
                ops.append(["ZREMRANGEBYRANK", by_caller, "0", str(-(MAX_CALLS_PER_CALLER + 1))])
                ops.append(["PEXPIRE", by_caller, str(window_ms)])  # 90 days after its latest call
        batch.add(batch.key(self._key(record.call_id)), record.revision, expire_ms, record.model_dump_json(), ops)
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


class _Batch:
    """One script call's keys (each once, referred to by position), records and their writes."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._positions: dict[str, int] = {}
        self._records: list[list[object]] = []
        self._counts: list[list[object]] = []
        self.bodies: list[str] = []

    def key(self, key: str) -> int:
        """The position (from 1, as in Lua) of ``key`` in KEYS."""
        if key not in self._positions:
            self.keys.append(key)
            self._positions[key] = len(self.keys)
        return self._positions[key]

    def add(self, key: int, revision: int, expire_ms: int, body: str, ops: list[list[object]]) -> None:
        self._records.append([key, revision, expire_ms, ops])
        self.bodies.append(body)

    def count(self, count: CountOnce) -> None:
        incs: list[object] = []
        for key, field, amount in count.increments:
            incs += [self.key(key), field, str(amount)]
        self._counts.append([self.key(count.marker), count.marker_ttl_s, count.keep_s, incs])

    def meta(self) -> str:
        return json.dumps([self._records, self._counts], separators=(",", ":"))


def _ids(raw: Iterable[object]) -> list[str]:
    """Member names as Redis returns them (bytes, or str with decode_responses)."""
    return [i.decode() if isinstance(i, bytes) else str(i) for i in raw]
