"""The missed-call callback list (national rule: call back missed calls).

One entry per caller number: a caller who gave up (abandoned) is added or counted again; the
entry goes away when that number later reaches a seat, leaves a message or is transferred.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import redis.asyncio as aioredis

from calls.model import CallOutcome, CallRecord

# served, or (CALLBACK) the ACD keeps the caller's place and calls back itself
SERVED = frozenset({CallOutcome.ANSWERED, CallOutcome.VOICEMAIL, CallOutcome.TRANSFERRED, CallOutcome.CALLBACK})


@dataclass(frozen=True)
class Callback:
    """A number to call back."""

    caller: str
    platform: str
    first_missed_at: datetime
    last_missed_at: datetime
    attempts: int
    last_call_id: str
    last_ivr_path: tuple[str, ...]


class RedisCallbackList:
    """The callback list in Redis."""

    def __init__(self, client: aioredis.Redis, platform: str) -> None:
        self._redis = client
        self._entries = f"hotline:callbacks:{platform}"  # hash: caller → JSON
        self._order = f"hotline:callbacks:order:{platform}"  # zset: caller → last missed time

    async def on_call_ended(self, record: CallRecord) -> None:
        """Listener for ended calls: add missed ones, clear numbers that were served."""
        if not record.caller:
            return
        # a message too short to be a ticket (a caller cut off, or who hung up at the beep)
        # is a missed call: someone calls back
        short_message = record.outcome is CallOutcome.VOICEMAIL and record.tags.get("voicemail") == "too_short"
        if record.outcome in SERVED and not short_message:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._entries, record.caller)
                pipe.zrem(self._order, record.caller)
                await pipe.execute()
        elif record.outcome is CallOutcome.ABANDONED or short_message:
            await self.add_missed(record)

    async def add_missed(self, record: CallRecord) -> None:
        """Put the caller of ``record`` on the list (or count one more miss)."""
        if not record.caller:
            return
        raw = await self._redis.hget(self._entries, record.caller)
        when = record.ended_at or record.started_at
        previous = json.loads(raw) if raw else None
        entry = {
            "caller": record.caller,
            "platform": record.platform,
            "first_missed_at": previous["first_missed_at"] if previous else when.isoformat(),
            "last_missed_at": when.isoformat(),
            "attempts": (previous["attempts"] if previous else 0) + 1,
            "last_call_id": record.call_id,
            "last_ivr_path": list(record.ivr_path),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._entries, record.caller, json.dumps(entry, ensure_ascii=False))
            pipe.zadd(self._order, {record.caller: when.timestamp()})
            await pipe.execute()

    async def pending(self, limit: int) -> list[Callback]:
        """Numbers to call back, most recently missed first."""
        # redis-py's stubs allow str or bytes; this client is created without decode_responses
        callers = cast(list[bytes], await self._redis.zrevrange(self._order, 0, limit - 1))
        if not callers:
            return []
        raws = cast(list[bytes | None], await self._redis.hmget(self._entries, callers))
        result = []
        for raw in raws:
            if not raw:
                continue
            data = json.loads(raw)
            result.append(
                Callback(
                    caller=data["caller"],
                    platform=data["platform"],
                    first_missed_at=datetime.fromisoformat(data["first_missed_at"]),
                    last_missed_at=datetime.fromisoformat(data["last_missed_at"]),
                    attempts=int(data["attempts"]),
                    last_call_id=data["last_call_id"],
                    last_ivr_path=tuple(data["last_ivr_path"]),
                )
            )
        return result
