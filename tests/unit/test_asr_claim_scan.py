"""The ASR worker scans for other consumers' stale jobs (XAUTOCLAIM) once per tenth of the
visibility timeout, not on every poll, and still takes over a dead worker's job — on a real Redis."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from ivr.calendar import PlatformCalendar
from tickets.model import Transcript
from tickets.store import RedisTicketStore
from voicemail.jobs import VoicemailMeta
from voicemail.queue import AsrQueue
from voicemail.sink import TicketStoreSink
from voicemail.worker import AsrWorker, WorkerSettings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


class Transcriber:
    async def transcribe(self, path: Path) -> Transcript:
        return Transcript(text=path.name)


async def _queue(client: aioredis.Redis) -> tuple[AsrQueue, TicketStoreSink]:
    calendar = PlatformCalendar()
    sink = TicketStoreSink(RedisTicketStore(client, lambda _platform: calendar), clock=lambda: T0)
    queue = AsrQueue(client, sink)
    await queue.ensure_group()
    return queue, sink


def _worker(parts: tuple[AsrQueue, TicketStoreSink], tmp_path: Path, visibility_s: float) -> AsrWorker:
    settings = WorkerSettings(visibility_timeout_s=visibility_s, max_attempts=2, batch=2, block_ms=20)
    return AsrWorker(parts[0], Transcriber(), parts[1], tmp_path, consumer="alive", settings=settings)


async def _scans(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_xautoclaim", {}).get("calls", 0))


async def test_idle_polls_scan_for_stale_jobs_once_per_tenth_of_the_timeout(
    client: aioredis.Redis, tmp_path: Path
) -> None:
    worker = _worker(await _queue(client), tmp_path, visibility_s=3600)
    before = await _scans(client)
    for _ in range(5):
        assert await worker.poll() == []
    assert await _scans(client) - before == 1  # the first poll scans; the next scan is 6 min away


async def test_a_dead_workers_job_is_still_taken_over(client: aioredis.Redis, tmp_path: Path) -> None:
    parts = await _queue(client)
    queue = parts[0]
    meta = VoicemailMeta(platform="kunming", call_id="kunming-1", caller="13800000001", recorded_at=T0, tags={})
    assert await queue.enqueue("kunming-1.wav", meta)
    assert [job.recording for job in await queue.read_new("dead", 1, 20)] == ["kunming-1.wav"]  # never acked
    worker = _worker(parts, tmp_path, visibility_s=0.3)
    async with asyncio.timeout(10):
        jobs = await worker.poll()
        while not jobs:  # each poll waits up to block_ms for a new job
            jobs = await worker.poll()
    assert [job.recording for job in jobs] == ["kunming-1.wav"]
