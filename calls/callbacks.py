"""The missed-call callback list (national rule: call back missed calls).

One entry per caller number: a caller who gave up (abandoned), or whose message could not be
kept (``voicemail_failed``), is added or counted again; the entry goes away when that number
later reaches a seat, leaves a message or is transferred.

No change is lost to a Redis outage: changes queue in memory, in the order calls ended, and are
written when Redis answers again (``flush``, retried by the controller like the call records).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, WatchError

from calls.model import CallOutcome, CallRecord
from common.privacy import mask_number

log = structlog.get_logger(__name__)

# served, or (CALLBACK) the ACD keeps the caller's place and calls back itself
SERVED = frozenset({CallOutcome.ANSWERED, CallOutcome.VOICEMAIL, CallOutcome.TRANSFERRED, CallOutcome.CALLBACK})
MISSED = frozenset({CallOutcome.ABANDONED, CallOutcome.VOICEMAIL_FAILED})

_Change = tuple[Literal["add", "clear"], CallRecord]

# ARGV: caller, the entry the new one was merged from ("" = none), the new entry, its score.
# Writes (1) only if the caller's entry is still that one; else returns what is there (0: none).
_ADD = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current or '') ~= ARGV[2] then
    return current or 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
"""

# ARGV: caller, when the served call ended (epoch s). Takes the number off the list unless its
# last miss is later (ordered by its ``order`` score): a clear Redis takes late (a hung Redis, a
# write and its retry on two connections) never undoes the miss of a later call. A number not
# on the list (most served calls: every entry has its ``order`` score, written with it by
# ``_ADD``) costs the one ZSCORE.
_CLEAR = """
local missed = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not missed then
    return 1
end
if tonumber(missed) > tonumber(ARGV[2]) then
    return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


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
    tries: int = 0  # times a seat called back and the citizen did not answer (dialback/)
    last_try_at: datetime | None = None
    last_try_result: str = ""  # Asterisk's DIALSTATUS of that try, lower case (noanswer, busy …)


class RedisCallbackList:
    """The callback list in Redis, with the changes Redis could not take yet in memory."""

    def __init__(self, client: aioredis.Redis, platform: str) -> None:
        self._redis = client
        self._entries = f"hotline:callbacks:{platform}"  # hash: caller → JSON
        self._order = f"hotline:callbacks:order:{platform}"  # zset: caller → last missed time
        self._unsaved: deque[_Change] = deque()
        self._add_script = client.register_script(_ADD)
        self._flushing = asyncio.Lock()
        self.write_failures = 0

    @property
    def unsaved(self) -> int:
        """Changes waiting for Redis."""
        return len(self._unsaved)

    async def on_call_ended(self, record: CallRecord) -> None:
        """Listener for ended calls: add missed ones, clear numbers that were served."""
        if not record.caller:
            return
        # a message too short to be a ticket (a caller cut off, or who hung up at the beep)
        # is a missed call: someone calls back
        short_message = record.outcome is CallOutcome.VOICEMAIL and record.tags.get("voicemail") == "too_short"
        if record.outcome in SERVED and not short_message:
            await self._submit(("clear", record))
        elif record.outcome in MISSED or short_message:
            await self._submit(("add", record))

    async def add_missed(self, record: CallRecord) -> None:
        """Put the caller of ``record`` on the list (or count one more miss)."""
        if record.caller:
            await self._submit(("add", record))

    async def _submit(self, change: _Change) -> None:
        # behind earlier changes that wait for Redis: a later "served" must not be undone by an
        # older "missed" written after it. Written at once only when nothing waits: during an
        # outage (or while a slow Redis is being tried) the controller's flusher writes it, so
        # a hung Redis stalls no second hang-up
        waiting = bool(self._unsaved) or self._flushing.locked()
        self._unsaved.append(change)
        if not waiting:
            await self.flush()

    async def flush(self) -> int:
        """Write the waiting changes in order; stops at the first Redis error. Returns how many
        still wait."""
        async with self._flushing:
            while self._unsaved:
                kind, record = self._unsaved[0]
                try:
                    await (self._add(record) if kind == "add" else self._clear(record))
                except RedisError as exc:
                    self.write_failures += 1
                    log.warning(
                        "callbacks.write_deferred", call_id=record.call_id, caller=mask_number(record.caller),
                        waiting=len(self._unsaved), error=str(exc) or type(exc).__name__,
                    )  # fmt: skip
                    return len(self._unsaved)
                except Exception as exc:  # not an outage: this change can never be written, do not block the rest
                    log.error("callbacks.change_dropped", call_id=record.call_id, kind=kind, error=repr(exc))
                self._unsaved.popleft()
        return 0

    async def _clear(self, record: CallRecord) -> None:
        """A served call takes its number off the list, unless a later call of it was missed
        (``_CLEAR``; in a MULTI, so that behind Sentinel WAIT follows it)."""
        served = (record.ended_at or record.started_at).timestamp()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.eval(_CLEAR, 2, self._entries, self._order, record.caller, repr(served))
            await pipe.execute()

    async def _add(self, record: CallRecord) -> None:
        """One round trip for a number not on the list (most missed calls): the entry is written
        only if there is none (``_ADD``). Otherwise the entry Redis has comes back, is merged
        as before, and written only if it is still that entry (compare and set: a seat's try
        noted meanwhile is merged, not lost), again until it sticks."""
        when = record.ended_at or record.started_at
        current: bytes | None = None  # None: written only where no entry is
        while True:
            previous = json.loads(current) if current else None
            if previous and previous.get("last_call_id") == record.call_id:
                return  # written before (its reply was lost): counted once
            entry = {
                **(previous or {}),  # a seat's tries at calling back stay counted
                "caller": record.caller,
                "platform": record.platform,
                "first_missed_at": previous["first_missed_at"] if previous else when.isoformat(),
                "last_missed_at": when.isoformat(),
                "attempts": (previous["attempts"] if previous else 0) + 1,
                "last_call_id": record.call_id,
                "last_ivr_path": list(record.ivr_path),
            }
            reply = await self._add_script(
                keys=[self._entries, self._order],
                args=[record.caller, current or b"", json.dumps(entry, ensure_ascii=False), when.timestamp()],
            )
            if reply == 1:
                return
            current = reply if isinstance(reply, bytes) else None  # 0: gone meanwhile (served)

    async def note_try(self, caller: str, at: datetime, result: str) -> bool:
        """A seat called ``caller`` back and nobody answered: one more try on the entry (kept on
        the list). False when the number is no longer listed (served meanwhile)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self._entries)
                    raw = await pipe.hget(self._entries, caller)
                    if not raw:
                        await pipe.reset()  # type: ignore[no-untyped-call]
                        return False
                    entry = json.loads(raw)
                    entry.update(
                        tries=int(entry.get("tries", 0)) + 1, last_try_at=at.isoformat(), last_try_result=result
                    )
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(self._entries, caller, json.dumps(entry, ensure_ascii=False))
                    await pipe.execute()
                    return True
                except WatchError:
                    continue  # the entry changed meanwhile (a new miss, or served): read it again

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
                    tries=int(data.get("tries", 0)),
                    last_try_at=datetime.fromisoformat(data["last_try_at"]) if data.get("last_try_at") else None,
                    last_try_result=str(data.get("last_try_result", "")),
                )
            )
        return result
