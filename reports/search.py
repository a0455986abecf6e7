"""Call search for supervisors: by date range, caller number, seat, queue, outcome and case,
over the indexes the call store writes when it saves a record (calls/store.py, and the caller
index calls/caller_index.py). Bounded: one request reads at most ``MAX_SCANNED`` index entries
and returns at most ``limit`` calls, with a cursor to go on from."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from calls.caller_index import CallerKeys
from calls.model import CallOutcome, CallRecord
from calls.store import RedisCallStore
from common.privacy import mask_number

MAX_SCANNED = 5000  # index entries read per request
BATCH = 250
MAX_LIMIT = 200
CALLER = re.compile(r"\+?[0-9]{3,20}")
VALUE = re.compile(r"[\w.\-]{1,64}")  # ids and names (Chinese queue names too); never ":" or spaces
_CURSOR = re.compile(r"([0-9]{1,15})\.([0-9]{1,9})")


class BadQuery(ValueError):
    """A search that cannot be run (the message says which parameter)."""


@dataclass(frozen=True)
class CallQuery:
    platform: str
    since_ms: int
    until_ms: int  # inclusive upper bound of the start time
    caller: str = ""
    seat: str = ""
    queue: str = ""
    outcome: str = ""
    case: str = ""
    limit: int = 50
    offset: int = 0  # index entries already gone through below ``until_ms`` (the cursor)

    def matches(self, record: CallRecord) -> bool:
        started = int(record.started_at.timestamp() * 1000)
        return (
            record.platform == self.platform
            and self.since_ms <= started <= self.until_ms
            and (not self.caller or record.caller.strip() == self.caller)
            and (not self.seat or record.seat == self.seat)
            and (not self.queue or record.queue == self.queue)
            and (not self.outcome or (record.outcome is not None and record.outcome.value == self.outcome))
            and (not self.case or record.case_id == self.case)
        )


def checked(field: str, value: str, pattern: re.Pattern[str]) -> str:
    value = value.strip()
    if value and not pattern.fullmatch(value):
        raise BadQuery(f"{field} is not a valid value")
    return value


def parse_outcome(value: str) -> str:
    if value and value not in {o.value for o in CallOutcome}:
        raise BadQuery(f"outcome is one of {', '.join(o.value for o in CallOutcome)}")
    return value


def parse_cursor(cursor: str) -> tuple[int, int] | None:
    if not cursor:
        return None
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise BadQuery("cursor is the next_cursor of an earlier page")
    return int(match.group(1)), int(match.group(2))


def result_view(record: CallRecord) -> dict[str, Any]:
    """A found call: the caller masked (always, even when searched by the whole number: whoever
    searched knows it, and a result list copied elsewhere does not spread it)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "call_id": record.call_id, "platform": record.platform, "caller": mask_number(record.caller),
        "started_at": record.started_at.isoformat(), "ended_at": iso(record.ended_at),
        "queue": record.queue, "seat": record.seat, "seat_answered_at": iso(record.seat_answered_at),
        "outcome": record.outcome.value if record.outcome else None, "case_id": record.case_id,
        "survey_score": record.survey_score, "has_recording": bool(record.recording),
        "has_call_recording": bool(record.call_recording),
    }  # fmt: skip


Records = Callable[[list[str]], Awaitable[list[CallRecord]]]


class CallSearch:
    """Reads the narrowest index the query names, then checks every criterion on the record."""

    def __init__(self, client: aioredis.Redis, records: Records, caller_keys: CallerKeys | None) -> None:
        self._redis = client
        self._records = records
        self._caller_keys = caller_keys

    def _index(self, q: CallQuery) -> str:
        if q.caller:
            if self._caller_keys is None:
                raise BadQuery("caller search needs the caller index, which this controller does not keep")
            return self._caller_keys.calls_key(q.platform, q.caller)
        for by, value in (("case", q.case), ("seat", q.seat), ("queue", q.queue), ("outcome", q.outcome)):
            if value:
                return RedisCallStore.index_key(q.platform, by, value)
        return RedisCallStore.recent_index(q.platform)

    async def search(self, q: CallQuery) -> tuple[list[CallRecord], str | None]:
        """Matching calls, newest first, and the cursor of the next page (None: no more)."""
        key = self._index(q)
        found: list[CallRecord] = []
        offset, scanned = q.offset, 0
        while len(found) < q.limit and scanned < MAX_SCANNED:
            raw = await self._redis.zrevrangebyscore(key, q.until_ms, q.since_ms, start=offset, num=BATCH)
            ids = [i.decode() if isinstance(i, bytes) else str(i) for i in raw]
            if not ids:
                return found, None
            for record in await self._records_by_id(ids):
                offset += 1
                scanned += 1
                if record is not None and q.matches(record):
                    found.append(record)
                    if len(found) == q.limit:
                        break
            if len(ids) < BATCH and len(found) < q.limit:
                return found, None
        return found, f"{q.until_ms}.{offset}"

    async def _records_by_id(self, ids: list[str]) -> list[CallRecord | None]:
        by_id = {record.call_id: record for record in await self._records(ids)}
        return [by_id.get(call_id) for call_id in ids]
