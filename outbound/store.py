"""The outbound jobs in Redis: restart-safe scheduling, atomic claims, one call per number.

Keys (``P`` = ``hotline:outbound:<platform>``):

- ``P:due``      ZSET job id → epoch of its next try (queued jobs only)
- ``P:jobs``     ZSET job id → creation epoch (every job, for lists and counts)
- ``P:active``   SET of job ids on a channel (dialling or answered): the channels in use
- ``P:paused``   present while an admin has paused outbound calling
- ``P:results``  HASH ``<kind>:<result>`` → tries that ended so (for /metrics)
- ``hotline:outbound:job:<id>``     HASH: the job (outbound/model.py's Job)
- ``hotline:outbound:lock:<number>`` the number's call lock (value: the job id, TTL)

A job is created once (a second create of the same id is a no-op, so the sweep that plans
jobs may run again after a restart), claimed by one Lua script that checks it is due and
queued, takes the number's lock and moves it to ``active`` in one step (two dialler loops or a
restarted controller never dial it twice), and finished by another that applies only when the
job is in the state the caller expects (the AGI and the dialler never both settle one try).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import redis.asyncio as aioredis

from outbound.model import Job, JobState, Kind

JOB_TTL_S = 60 * 86_400  # a finished job is kept this long (its ticket's timeline keeps it forever)

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"""

# KEYS: job, due, active, lock; ARGV: id, now, lock ttl
_CLAIM = """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'EX', ARGV[3]) then return -1 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'tries', 1)
redis.call('HSET', KEYS[1], 'state', 'dialling', 'updated_at', ARGV[2])
return 1
"""

# KEYS: job, due, active, lock, results; ARGV: id, expected states (comma list), new state,
# due (0: none), result counter field ('' : none), ttl, then field/value pairs
_SAVE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local ok = false
for s in string.gmatch(ARGV[2], '[^,]+') do if s == state then ok = true end end
if not ok then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
local new = ARGV[3]
if new == 'queued' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1]) else redis.call('ZREM', KEYS[2], ARGV[1]) end
if new == 'dialling' or new == 'answered' then
  redis.call('SADD', KEYS[3], ARGV[1])
else
  redis.call('SREM', KEYS[3], ARGV[1])
  if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
end
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[5], 1) end
if new == 'done' or new == 'failed' or new == 'cancelled' then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def job_key(job_id: str) -> str:
    return f"hotline:outbound:job:{job_id}"


def lock_key(number: str) -> str:
    return f"hotline:outbound:lock:{number}"


def _fields(job: Job) -> dict[str, str]:
    return {
        "id": job.id,
        "platform": job.platform,
        "ticket_id": job.ticket_id,
        "kind": str(job.kind),
        "number": job.number,
        "state": str(job.state),
        "tries": str(job.tries),
        "due_at": repr(job.due_at),
        "created_at": repr(job.created_at),
        "updated_at": repr(job.updated_at),
        "last_result": job.last_result,
        "history": "\n".join(job.history),
    }


def _job(raw: Mapping[bytes | str, bytes | str]) -> Job | None:
    data = {_text(k): _text(v) for k, v in raw.items()}
    if "id" not in data:
        return None
    return Job(
        id=data["id"],
        platform=data["platform"],
        ticket_id=data["ticket_id"],
        kind=Kind(data["kind"]),
        number=data["number"],
        state=JobState(data["state"]),
        tries=int(data.get("tries", "0")),
        due_at=float(data.get("due_at", "0")),
        created_at=float(data.get("created_at", "0")),
        updated_at=float(data.get("updated_at", "0")),
        last_result=data.get("last_result", ""),
        history=tuple(line for line in data.get("history", "").split("\n") if line),
    )


def _pairs(fields: Mapping[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


class ClaimOutcome:
    CLAIMED = 1
    NOT_DUE = 0  # taken by someone else, no longer queued, or not due yet
    NUMBER_BUSY = -1  # another call to the same number is on


class OutboundStore:
    def __init__(self, client: aioredis.Redis, platform: str) -> None:
        self._redis = client
        self.platform = platform
        prefix = f"hotline:outbound:{platform}"
        self.due_key = f"{prefix}:due"
        self.jobs_key = f"{prefix}:jobs"
        self.active_key = f"{prefix}:active"
        self.paused_key = f"{prefix}:paused"
        self.results_key = f"{prefix}:results"
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)
        self._save = client.register_script(_SAVE)

    async def create(self, job: Job) -> bool:
        """Add ``job`` (queued, due at ``job.due_at``); False when a job of that id exists."""
        keys = [job_key(job.id), self.due_key, self.jobs_key]
        created = await self._create(keys=keys, args=[job.id, job.due_at, job.created_at, *_pairs(_fields(job))])
        return bool(created)

    async def get(self, job_id: str) -> Job | None:
        raw = await self._redis.hgetall(job_key(job_id))
        return _job(raw) if raw else None

    async def due(self, now: float, limit: int) -> list[str]:
        ids = cast(list[bytes | str], await self._redis.zrangebyscore(self.due_key, "-inf", now, start=0, num=limit))
        return [_text(i) for i in ids]

    async def postpone(self, job_id: str, due_at: float) -> None:
        """A queued job waits for calling hours (or a busy number): its next try moves later."""
        await self._redis.zadd(self.due_key, {job_id: due_at}, xx=True)
        await self._redis.hset(job_key(job_id), "due_at", repr(due_at))

    async def claim(self, job: Job, now: float, lock_ttl_s: int) -> int:
        """Take ``job`` for a try (ClaimOutcome): atomically due + queued → dialling, number locked."""
        keys = [job_key(job.id), self.due_key, self.active_key, lock_key(job.number)]
        return int(await self._claim(keys=keys, args=[job.id, now, lock_ttl_s]))

    async def save(self, job: Job, expected: Iterable[JobState], counted: str = "", ttl_s: int = JOB_TTL_S) -> bool:
        """Write ``job`` if its stored state is one of ``expected`` (False: someone else settled
        it); keeps ``due``, ``active`` and the number's lock in step with its new state;
        ``counted``: a results counter to add one to (``<kind>:<result>``)."""
        keys = [job_key(job.id), self.due_key, self.active_key, lock_key(job.number), self.results_key]
        expected_text = ",".join(str(s) for s in expected)
        args: list[str | int | float] = [
            job.id,
            expected_text,
            str(job.state),
            repr(job.due_at),
            counted,
            ttl_s,
            *_pairs(_fields(job)),
        ]
        return bool(await self._save(keys=keys, args=args))

    async def active(self) -> list[str]:
        return sorted(_text(i) for i in await self._redis.smembers(self.active_key))

    async def jobs(self, limit: int) -> list[Job]:
        """The newest ``limit`` jobs (finished ones expire after JOB_TTL_S)."""
        ids = cast(list[bytes | str], await self._redis.zrevrange(self.jobs_key, 0, limit - 1))
        async with self._redis.pipeline(transaction=False) as pipe:
            for raw_id in ids:
                pipe.hgetall(job_key(_text(raw_id)))
            rows = cast(list[Mapping[bytes | str, bytes | str]], await pipe.execute())
        found = [_job(row) for row in rows if row]
        return [job for job in found if job is not None]

    async def forget_expired(self, before: float) -> None:
        """Drop the list entries of jobs created before ``before`` (their hashes expired)."""
        await self._redis.zremrangebyscore(self.jobs_key, "-inf", before)

    async def results(self) -> dict[str, int]:
        raw = await self._redis.hgetall(self.results_key)
        return {_text(k): int(v) for k, v in raw.items()}

    async def paused(self) -> bool:
        return bool(await self._redis.exists(self.paused_key))

    async def set_paused(self, paused: bool) -> None:
        if paused:
            await self._redis.set(self.paused_key, "1")
        else:
            await self._redis.delete(self.paused_key)
