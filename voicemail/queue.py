"""The transcription job queue: callers' messages → text → tickets, on Redis Streams.

- ``hotline:asr:jobs`` (stream, consumer group ``asr``): one entry per message to transcribe.
- ``hotline:asr:queued`` (set): messages that have a job, queued, running or parked; enqueueing
  is a no-op for them, so a message is never queued twice.
- ``hotline:asr:attempts`` (hash): how many times each job was started, crashes included.
- ``hotline:asr:parked`` (hash): jobs that failed for good, with their error, until an
  operator retries them.

The spool stays the source of truth: ``rescan_spool`` queues every message that has neither a
ticket nor a job. What a worker does with a job: ``voicemail.worker``.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ResponseError

from common.privacy import mask_fallback_names, mask_number
from voicemail.jobs import AsrJob, MetaFor, ParkedJob, TicketSink, VoicemailMeta

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
        # messages this process is recording now (voicemail/intake.py MessageIntake.recording):
        # their sidecar is still to come, so the rescan leaves them to the IVR whatever their age
        self.in_progress: set[str] = set()

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(self, recording: str, meta: VoicemailMeta) -> bool:
        """Queue a message (or, with ``meta.onto_ticket``, a recording whose transcript goes onto
        that case); False when it already has its ticket (transcript) or a job."""
        if await _handled(self._sink, recording, meta):
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
        those itself when the recording ends). A message the IVR of this process is still
        recording, reviewing or describing (``in_progress``) is left alone at any age: its
        sidecar (the caller) is still to come. ``meta_for`` returning None skips a file (a
        message too short to be a ticket, or one not finished yet).
        """
        cutoff = (time.time() if now is None else now) - min_age_s
        queued = 0
        for path in await asyncio.to_thread(_settled_messages, root / folder, cutoff):
            if f"{folder}/{path.name}" in self.in_progress:
                continue
            meta = await meta_for(path)
            if f"{folder}/{path.name}" in self.in_progress:  # began while its metadata was read
                continue
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

    async def read_own_pending(self, consumer: str, count: int) -> list[AsrJob]:
        """Jobs delivered to ``consumer`` and not yet acknowledged (its own pending list)."""
        reply = cast(list[Any] | None, await self._redis.xreadgroup(GROUP, consumer, {self._stream: "0"}, count=count))
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


async def _handled(sink: TicketSink, recording: str, meta: VoicemailMeta) -> bool:
    """Whether the job's work is done: the message has its ticket, or the case its transcript."""
    if meta.onto_ticket:
        return await sink.has_transcript(meta.onto_ticket, recording)
    return await sink.has_ticket(recording)


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
