"""The transcription job queue: callers' messages → text → tickets, on Redis Streams.

- ``hotline:asr:jobs`` (stream, consumer group ``asr``): one entry per message to transcribe.
- ``hotline:asr:queued`` (set): messages that have a job, queued, running or parked; enqueueing
  is a no-op for them, so a message is never queued twice.
- ``hotline:asr:attempts`` (hash): how many times each job was started, crashes included.
- ``hotline:asr:parked`` (hash): jobs that failed for good, with their error, until an
  operator retries them.

A job is acknowledged only after its ticket exists. A worker that dies mid-job leaves it
pending; after the visibility timeout another worker claims it (XAUTOCLAIM). The ticket store
turns a message into at most one ticket, so a job run twice is harmless. The spool stays the
source of truth: ``rescan_spool`` queues every message that has neither a ticket nor a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, cast

import redis.asyncio as aioredis
import structlog
from pydantic import BaseModel, ConfigDict
from redis.exceptions import RedisError, ResponseError

from common.clock import Clock, system_clock
from common.privacy import mask_fallback_names, mask_number
from tickets.model import Transcript
from voicemail.asr import AudioUnreadable

log = structlog.get_logger(__name__)

STREAM = "hotline:asr:jobs"
GROUP = "asr"
QUEUED = "hotline:asr:queued"
ATTEMPTS = "hotline:asr:attempts"
PARKED = "hotline:asr:parked"

# Atomic "queue unless already queued": a crash between the SADD and the XADD would otherwise
# leave a message marked queued with no job, and the rescan would never pick it up again.
_ENQUEUE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'recording', ARGV[1], 'meta', ARGV[2])
return 1
"""
_RETRY = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[2], '*', 'recording', ARGV[1], 'meta', cjson.decode(raw)['meta'])
return 1
"""


class VoicemailMeta(BaseModel):
    """What the IVR knew about a message. ``tags['category']`` may name a ticket category."""

    model_config = ConfigDict(frozen=True)

    platform: str
    call_id: str = ""
    caller: str = ""
    recorded_at: datetime | None = None
    tags: dict[str, str] = {}


@dataclass(frozen=True)
class AsrJob:
    entry_id: str
    recording: str  # file name in the voicemail spool
    meta: VoicemailMeta


@dataclass(frozen=True)
class ParkedJob:
    recording: str
    meta: VoicemailMeta
    error: str
    attempts: int
    parked_at: datetime


class Transcriber(Protocol):
    """Speech to text (``voicemail.asr.VoskTranscriber``); ``AudioUnreadable`` for a bad file."""

    async def transcribe(self, path: Path) -> Transcript: ...


class TicketSink(Protocol):
    """Where transcripts go (``voicemail.sink.TicketStoreSink``); both calls are idempotent."""

    async def has_ticket(self, recording: str) -> bool: ...

    async def accept(self, recording: str, meta: VoicemailMeta, transcript: Transcript) -> str: ...


MetaFor = Callable[[Path], Awaitable[VoicemailMeta | None]]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class AsrQueue:
    """The Redis side of the queue, shared by producers (IVR, rescans) and workers."""

    def __init__(self, client: aioredis.Redis, sink: TicketSink, platform: str = "") -> None:
        # one queue per platform: each has its own spool, and its workers read only that spool
        suffix = f":{platform}" if platform else ""
        self._stream, self._queued = STREAM + suffix, QUEUED + suffix
        self._attempts, self._parked = ATTEMPTS + suffix, PARKED + suffix
        self._redis = client
        self._sink = sink
        self._enqueue = client.register_script(_ENQUEUE)
        self._retry = client.register_script(_RETRY)

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(self, recording: str, meta: VoicemailMeta) -> bool:
        """Queue a message; False when it already has a ticket or a job."""
        if await self._sink.has_ticket(recording):
            return False
        added = await self._enqueue(keys=[self._queued, self._stream], args=[recording, meta.model_dump_json()])
        if added:
            log.info("asr.enqueued", recording=recording, caller=mask_number(meta.caller))
        return bool(added)

    async def rescan_spool(
        self, root: Path, folder: str, meta_for: MetaFor, min_age_s: float = 300.0, now: float | None = None
    ) -> int:
        """Queue every ``root/folder/*.wav`` with neither a ticket nor a job; returns how many.

        Jobs name messages by their path under ``root`` (``voicemail/<call>.wav``). Files younger
        than ``min_age_s`` are left alone: Asterisk may still be writing them (the IVR queues
        those itself when the recording ends). ``meta_for`` returning None skips a file (a
        message too short to be a ticket).
        """
        cutoff = (time.time() if now is None else now) - min_age_s
        queued = 0
        for path in await asyncio.to_thread(_settled_messages, root / folder, cutoff):
            meta = await meta_for(path)
            if meta is not None and await self.enqueue(f"{folder}/{path.name}", meta):
                queued += 1
        if queued:
            log.warning("asr.rescan_requeued", count=queued, folder=folder)
        return queued

    async def read_new(self, consumer: str, count: int, block_ms: int) -> list[AsrJob]:
        reply = cast(
            list[Any] | None,
            await self._redis.xreadgroup(GROUP, consumer, {self._stream: ">"}, count=count, block=block_ms),
        )
        entries = [entry for _stream, stream_entries in (reply or []) for entry in stream_entries]
        return self._jobs(entries)

    async def claim_stale(self, consumer: str, min_idle_ms: int, count: int, cursor: str) -> tuple[str, list[AsrJob]]:
        """Jobs other consumers left pending longer than ``min_idle_ms``; the next scan cursor."""
        reply = await self._redis.xautoclaim(self._stream, GROUP, consumer, min_idle_ms, cursor, count)
        return _text(reply[0]), self._jobs(reply[1])

    def _jobs(self, entries: list[Any]) -> list[AsrJob]:
        jobs = []
        for entry_id, fields in entries:
            if not fields:  # deleted while pending
                continue
            data = {_text(k): _text(v) for k, v in fields.items()}
            meta = VoicemailMeta.model_validate_json(data["meta"])
            jobs.append(AsrJob(_text(entry_id), data["recording"], meta))
        return jobs

    async def count_attempt(self, job: AsrJob) -> int:
        return int(await self._redis.hincrby(self._attempts, job.recording, 1))

    async def done(self, job: AsrJob) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, GROUP, job.entry_id)
            pipe.xdel(self._stream, job.entry_id)
            pipe.srem(self._queued, job.recording)
            pipe.hdel(self._attempts, job.recording)
            await pipe.execute()

    async def park(self, job: AsrJob, error: str, attempts: int, at: datetime) -> None:
        """Out of the stream into the parked hash; still 'queued', so rescans leave it there."""
        entry = {"meta": job.meta.model_dump_json(), "error": error, "attempts": attempts, "parked_at": at.isoformat()}
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._parked, job.recording, json.dumps(entry, ensure_ascii=False))
            pipe.xack(self._stream, GROUP, job.entry_id)
            pipe.xdel(self._stream, job.entry_id)
            await pipe.execute()
        log.error("asr.job_parked", recording=job.recording, attempts=attempts, error=error)

    async def list_parked(self) -> list[ParkedJob]:
        raw = await self._redis.hgetall(self._parked)
        parked = []
        for recording, value in sorted(raw.items()):
            data = json.loads(value)
            parked.append(
                ParkedJob(
                    recording=_text(recording),
                    meta=VoicemailMeta.model_validate_json(data["meta"]),
                    error=data["error"],
                    attempts=int(data["attempts"]),
                    parked_at=datetime.fromisoformat(data["parked_at"]),
                )
            )
        return parked

    async def retry_parked(self, recording: str) -> bool:
        """Queue a parked job again with its attempts reset; False if it was not parked.

        ``recording`` as the parked list shows it: an old fallback message's name with its
        caller's number masked names the one parked job it masks (its uniqueid is in it)."""
        keys = [self._parked, self._stream, self._attempts, self._queued]
        retried = await self._retry(keys=keys, args=[recording])
        if not retried and "*" in recording:
            parked = map(_text, await self._redis.hkeys(self._parked))
            named = [name for name in parked if mask_fallback_names(name) == recording]
            if len(named) == 1:
                recording = named[0]
                retried = await self._retry(keys=keys, args=[recording])
        if retried:
            log.info("asr.job_retried", recording=recording)
        return bool(retried)


def _settled_messages(spool_dir: Path, cutoff: float) -> list[Path]:
    """Messages last written before ``cutoff`` (epoch seconds), oldest name first."""
    settled = []
    for path in sorted(spool_dir.glob("*.wav")):
        try:
            if path.stat().st_mtime <= cutoff:
                settled.append(path)
        except FileNotFoundError:  # removed while we looked
            continue
    return settled


def meta_from_file(platform: str) -> MetaFor:
    """Metadata for a message found only on disk: the call id is the file name, the time its mtime."""

    async def meta(path: Path) -> VoicemailMeta | None:
        stat = await asyncio.to_thread(path.stat)
        recorded_at = datetime.fromtimestamp(stat.st_mtime, UTC)
        return VoicemailMeta(platform=platform, call_id=path.stem, recorded_at=recorded_at)

    return meta


@dataclass(frozen=True)
class WorkerSettings:
    visibility_timeout_s: float = 300.0  # longer than the slowest message takes to decode
    max_attempts: int = 3
    batch: int = os.cpu_count() or 1  # jobs decoded at once; the transcriber's pool has the threads
    block_ms: int = 1000
    drain_timeout_s: float = 60.0
    retry_initial_s: float = 0.5  # Redis away: first wait, doubled up to retry_max_s
    retry_max_s: float = 10.0


class WorkerState(StrEnum):
    """What a worker is doing (health shows it)."""

    STARTING = "starting"
    WAITING_FOR_REDIS = "waiting_for_redis"  # retrying with backoff; jobs wait in Redis or the spool
    RUNNING = "running"
    STOPPED = "stopped"


class AsrWorker:
    """One consumer of the group: claims stale jobs first, then reads new ones."""

    def __init__(
        self,
        queue: AsrQueue,
        transcriber: Transcriber,
        sink: TicketSink,
        spool_dir: Path,
        *,
        consumer: str,
        settings: WorkerSettings | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._queue = queue
        self._transcriber = transcriber
        self._sink = sink
        self._spool_dir = spool_dir
        self.consumer = consumer
        self._settings = settings or WorkerSettings()
        self._clock = clock
        self._stopping = asyncio.Event()
        self._cursor = "0-0"
        self.state = WorkerState.STARTING
        self._retry_s = self._settings.retry_initial_s

    def _set_state(self, state: WorkerState, **facts: object) -> None:
        if state is not self.state:
            log.info("asr.worker_state", consumer=self.consumer, old=str(self.state), new=str(state), **facts)
            self.state = state

    def stop(self) -> None:
        """Finish the jobs in hand, then return from ``run``."""
        self._stopping.set()

    async def _redis_away(self, exc: RedisError) -> None:
        """Wait (backoff) before trying Redis again; a stop ends the wait at once."""
        self._set_state(WorkerState.WAITING_FOR_REDIS, error=str(exc) or type(exc).__name__, retry_in_s=self._retry_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self._retry_s)
        self._retry_s = min(self._retry_s * 2, self._settings.retry_max_s)

    async def _join_group(self) -> bool:
        """Make sure the consumer group exists (a fresh or emptied Redis); False while Redis is away."""
        try:
            await self._queue.ensure_group()
        except RedisError as exc:
            await self._redis_away(exc)
            return False
        self._set_state(WorkerState.RUNNING)
        self._retry_s = self._settings.retry_initial_s
        return True

    async def run(self) -> None:
        """Process jobs until stopped or cancelled; on cancellation, drain the jobs in hand first.

        A pipeline, not batches: up to ``settings.batch`` jobs are decoded at once and a slot
        freed by a short message takes the next job at once (no thread idles behind a long one).
        Redis away (at start or later) is waited out with backoff: the worker never gives up."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set() and not await self._join_group():
                pass
            while not self._stopping.is_set():
                free = self._settings.batch - len(in_flight)
                if free <= 0:
                    done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    self._reap(done, in_flight)
                    continue
                try:
                    jobs = await self.poll(free)
                except RedisError as exc:  # Redis restarting: jobs wait in its AOF, we wait for it
                    await self._redis_away(exc)
                    if "NOGROUP" in str(exc):  # a Redis that lost its data: the rescan re-queues the spool
                        await self._join_group()
                    continue
                self._set_state(WorkerState.RUNNING)
                self._retry_s = self._settings.retry_initial_s
                in_flight.update(asyncio.create_task(self.process(job)) for job in jobs)
                self._reap({t for t in in_flight if t.done()}, in_flight)
            if in_flight:  # stopped: finish the jobs in hand
                self._reap((await asyncio.wait(in_flight))[0], in_flight)
        except asyncio.CancelledError:
            # vosk threads cannot be interrupted: let them finish and acknowledge, within limits
            if in_flight:
                done, pending = await asyncio.wait(in_flight, timeout=self._settings.drain_timeout_s)
                for task in pending:
                    task.cancel()  # unacknowledged jobs are reclaimed after the visibility timeout
                log.info("asr.worker_drained", consumer=self.consumer, abandoned=len(pending))
            raise
        finally:
            self.state = WorkerState.STOPPED

    def _reap(self, done: set[asyncio.Task[None]], in_flight: set[asyncio.Task[None]]) -> None:
        for task in done:
            in_flight.discard(task)
            error = None if task.cancelled() else task.exception()
            if error is not None:  # bookkeeping failed: the job stays pending
                log.warning("asr.job_unsettled", consumer=self.consumer, error=str(error))

    async def poll(self, count: int | None = None) -> list[AsrJob]:
        """Up to ``count`` (default: a batch) next jobs: stale ones from dead consumers first,
        else new ones (blocking briefly)."""
        settings = self._settings
        wanted = count or settings.batch
        idle_ms = int(settings.visibility_timeout_s * 1000)
        self._cursor, jobs = await self._queue.claim_stale(self.consumer, idle_ms, wanted, self._cursor)
        if jobs:
            log.warning("asr.jobs_reclaimed", consumer=self.consumer, count=len(jobs))
            return jobs
        return await self._queue.read_new(self.consumer, wanted, settings.block_ms)

    async def process(self, job: AsrJob) -> None:
        """Transcribe and hand over one job. Decoding and ticket failures are counted, never
        raised; a Redis error in the bookkeeping is, and leaves the job pending."""
        attempts = await self._queue.count_attempt(job)
        bound = log.bind(recording=job.recording, attempt=attempts, consumer=self.consumer)
        try:
            if await self._sink.has_ticket(job.recording):  # a worker died after the ticket, before the ack
                await self._queue.done(job)
                return
            transcript = await self._transcriber.transcribe(self._spool_dir / job.recording)
            ticket = await self._sink.accept(job.recording, job.meta, transcript)
        except asyncio.CancelledError:
            raise
        except AudioUnreadable as exc:  # the same bytes will fail again: park at once
            await self._queue.park(job, str(exc), attempts, self._clock())
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if attempts >= self._settings.max_attempts:
                await self._queue.park(job, error, attempts, self._clock())
            else:  # left pending: claimed again after the visibility timeout
                bound.warning("asr.job_failed", error=error)
            return
        await self._queue.done(job)
        bound.info("asr.job_done", ticket=ticket, words=len(transcript.words), confidence=transcript.confidence)
