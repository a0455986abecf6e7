"""Where the report counters live: a Redis hash per kind, platform and local hour, and the same
sums per local day (written together; a report by day, week or month reads the days).

``hotline:reports:<kind>:<platform>:<YYYYMMDDHH>`` and ``…:<YYYYMMDD>`` — field
``metric\\x1fdimension`` → integer.
An event (an ended call, a seat's state, a ticket's step) is applied by one Lua script that first
sets its marker ``hotline:reports:counted:<platform>:<event id>`` (``SET NX``, with a TTL) and
increments only when the marker is new: a listener retried after a Redis failure, or a call
ended again by a restarted controller, is never counted twice, and the marker and the counts are
written together or not at all. An ended call's counts (``count_once``) are written the same way
by the call writer, inside its save script (calls/store.py ``CountOnce``), with the call's record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from calls.store import CountOnce
from reports.counting import Increment

KEY_PREFIX = "hotline:reports:"
READ_CHUNK = 2000  # HGETALLs per pipeline round trip

# A key's expiry is (re)set when a count creates one of its fields (HINCRBY answers the amount
# itself): so a new key always gets one, and a key's expiry is keep s after its last new field —
# within the key's own hour or day of its last count — instead of an EXPIRE with every count.
_APPLY = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local i, fresh = 3, {}
while i <= #ARGV do
  local k = tonumber(ARGV[i])
  if redis.call('HINCRBY', KEYS[k], ARGV[i + 1], ARGV[i + 2]) == tonumber(ARGV[i + 2]) then fresh[k] = true end
  i = i + 3
end
for k, _ in pairs(fresh) do redis.call('EXPIRE', KEYS[k], ARGV[2]) end
return 1
"""


def rollup_key(kind: str, platform: str, bucket: str) -> str:
    return f"{KEY_PREFIX}{kind}:{platform}:{bucket}"


def marker_key(platform: str, event_id: str) -> str:
    return f"{KEY_PREFIX}counted:{platform}:{event_id}"


class Rollups(Protocol):
    """The counters: apply an event's increments once; read hours back."""

    async def apply(self, platform: str, event_id: str, increments: Sequence[Increment]) -> bool: ...

    def count_once(self, platform: str, event_id: str, increments: Sequence[Increment]) -> CountOnce: ...

    def stage(self, pipe: Pipeline, platform: str, event_id: str, increments: Sequence[Increment]) -> None: ...

    async def read(self, kind: str, platform: str, buckets: Sequence[str]) -> list[dict[str, int]]: ...


class RedisRollups:
    """The counters in Redis (see the module docstring)."""

    def __init__(self, client: aioredis.Redis, *, keep: timedelta, marker_ttl: timedelta) -> None:
        self._redis = client
        self._keep_s = int(keep.total_seconds())
        self._marker_s = max(int(marker_ttl.total_seconds()), 1)
        self._script = client.register_script(_APPLY)

    def _keys_and_args(
        self, platform: str, event_id: str, increments: Sequence[Increment]
    ) -> tuple[list[str], list[str | int]]:
        keys: dict[str, int] = {}
        args: list[str | int] = [self._marker_s, self._keep_s]
        for inc in increments:
            # the hour, and its day: a day / week / month report reads 24 times fewer fields
            for bucket in (inc.bucket, inc.bucket[:8]):
                key = rollup_key(inc.kind, platform, bucket)
                index = keys.setdefault(key, len(keys) + 2)  # Lua's KEYS is 1-based; KEYS[1] is the marker
                args += [index, inc.field, inc.amount]
        return [marker_key(platform, event_id), *keys], args

    async def apply(self, platform: str, event_id: str, increments: Sequence[Increment]) -> bool:
        """Add ``increments`` unless ``event_id`` was counted already; True when counted now."""
        keys, args = self._keys_and_args(platform, event_id, increments)
        return bool(await self._script(keys=keys, args=args))

    def stage(self, pipe: Pipeline, platform: str, event_id: str, increments: Sequence[Increment]) -> None:
        """``apply`` put on a pipeline (the write-behind's staged writes: calls/redis_budget.py),
        so a seat's count goes in the round trip that saves the seat's state. The script's text
        (EVAL, cached by Redis): a pipeline's EVALSHA would need a SCRIPT EXISTS per pipeline."""
        keys, args = self._keys_and_args(platform, event_id, increments)
        pipe.eval(_APPLY, len(keys), *keys, *args)

    def count_once(self, platform: str, event_id: str, increments: Sequence[Increment]) -> CountOnce:
        """What ``apply`` writes, for the call writer to send with its round (calls/store.py):
        the same marker, keys, fields and expiries."""
        writes = tuple(
            (rollup_key(inc.kind, platform, bucket), inc.field, inc.amount)
            for inc in increments
            for bucket in (inc.bucket, inc.bucket[:8])
        )
        return CountOnce(marker_key(platform, event_id), self._marker_s, self._keep_s, writes)

    async def read(self, kind: str, platform: str, buckets: Sequence[str]) -> list[dict[str, int]]:
        """The counters of each bucket, in order ({} for an hour with none)."""
        out: list[dict[str, int]] = []
        for start in range(0, len(buckets), READ_CHUNK):
            async with self._redis.pipeline(transaction=False) as pipe:
                for bucket in buckets[start : start + READ_CHUNK]:
                    pipe.hgetall(rollup_key(kind, platform, bucket))
                for raw in await pipe.execute():
                    out.append({_text(k): int(v) for k, v in raw.items()})
        return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
