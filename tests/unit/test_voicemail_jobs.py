"""The transcription queue on a real redis-server: idempotent enqueue, reclaiming a dead worker's
job, parking and retrying, rescanning the spool, and never two tickets for one message."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from ivr.calendar import PlatformCalendar
from tickets.model import TicketCategory, Transcript
from tickets.store import EXPORT_STREAM, RedisTicketStore
from voicemail.asr import AudioUnreadable
from voicemail.jobs import VoicemailMeta
from voicemail.queue import ATTEMPTS, GROUP, QUEUED, STREAM, AsrQueue, meta_from_file
from voicemail.sink import TicketStoreSink
from voicemail.worker import AsrWorker, WorkerSettings

CST = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)
FAST = WorkerSettings(visibility_timeout_s=0.3, max_attempts=2, batch=4, block_ms=50, drain_timeout_s=5)


class FakeTranscriber:
    """Quick, scriptable speech to text; ``gate`` holds decoding until set."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[str] = []
        self.failing: set[str] = set()
        self.gate: asyncio.Event | None = None

    async def transcribe(self, path: Path) -> Transcript:
        self.calls.append(path.name)
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay_s)
        if path.name in self.failing:
            raise RuntimeError("decoder exploded")
        if path.name.startswith("corrupt"):
            raise AudioUnreadable(f"{path.name}: not a readable WAV")
        return Transcript(text=f"text of {path.name}")


@pytest.fixture
def store(client: aioredis.Redis) -> RedisTicketStore:
    calendar = PlatformCalendar()
    return RedisTicketStore(client, lambda _platform: calendar)


@pytest.fixture
def sink(store: RedisTicketStore) -> TicketStoreSink:
    return TicketStoreSink(store, clock=lambda: T0)


@pytest.fixture
async def queue(client: aioredis.Redis, sink: TicketStoreSink) -> AsrQueue:
    jobs = AsrQueue(client, sink)
    await jobs.ensure_group()
    return jobs


def meta(n: int, **tags: str) -> VoicemailMeta:
    caller = f"1380000{n:04d}"
    return VoicemailMeta(platform="kunming", call_id=f"kunming-{n}", caller=caller, recorded_at=T0, tags=tags)


def worker(queue: AsrQueue, sink: TicketStoreSink, transcriber: FakeTranscriber, spool: Path, name: str) -> AsrWorker:
    return AsrWorker(queue, transcriber, sink, spool, consumer=name, settings=FAST)


@contextlib.asynccontextmanager
async def running(*workers: AsrWorker) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)


async def eventually(check: Callable[[], Awaitable[object]], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - polling state owned by other tasks and Redis
            await asyncio.sleep(0.02)


async def test_enqueue_is_idempotent(queue: AsrQueue, client: aioredis.Redis, sink: TicketStoreSink) -> None:
    assert await queue.enqueue("kunming-1.wav", meta(1))
    assert not await queue.enqueue("kunming-1.wav", meta(1))
    assert await client.xlen(STREAM) == 1
    await sink.accept("kunming-2.wav", meta(2), Transcript())
    assert not await queue.enqueue("kunming-2.wav", meta(2))  # it has a ticket already


async def test_a_worker_turns_jobs_into_tickets(
    queue: AsrQueue, sink: TicketStoreSink, store: RedisTicketStore, client: aioredis.Redis, tmp_path: Path
) -> None:
    await queue.enqueue("kunming-1.wav", meta(1, category="complaint"))
    await queue.enqueue("kunming-2.wav", meta(2, category="no such category"))
    async with running(worker(queue, sink, FakeTranscriber(), tmp_path, "w1")):
        await eventually(lambda: store.has_ticket("kunming-2.wav"))
        await eventually(lambda: store.has_ticket("kunming-1.wav"))
    tickets = {t.recording: t for t in await store.list_tickets()}
    assert tickets["kunming-1.wav"].category is TicketCategory.COMPLAINT
    assert tickets["kunming-2.wav"].category is TicketCategory.CONSULTATION
    assert tickets["kunming-1.wav"].transcript == Transcript(text="text of kunming-1.wav")
    assert tickets["kunming-1.wav"].accepted_at == T0  # when the caller spoke, not when we decoded
    assert await client.scard(QUEUED) == 0 and await client.xlen(STREAM) == 0
    assert (await client.xpending(STREAM, GROUP))["pending"] == 0


async def test_a_job_of_a_killed_worker_is_reclaimed_by_another(
    queue: AsrQueue, sink: TicketStoreSink, store: RedisTicketStore, client: aioredis.Redis, tmp_path: Path
) -> None:
    await queue.enqueue("kunming-1.wav", meta(1))
    stuck = FakeTranscriber()
    stuck.gate = asyncio.Event()  # never set: this worker hangs mid-decode
    doomed = worker(queue, sink, stuck, tmp_path, "doomed")
    (job,) = await doomed.poll()
    killed = asyncio.create_task(doomed.process(job))
    await eventually(lambda: asyncio.sleep(0, stuck.calls))
    killed.cancel()  # the process dies: no ack, the job stays pending for "doomed"
    with contextlib.suppress(asyncio.CancelledError):
        await killed
    healthy = FakeTranscriber()
    async with running(worker(queue, sink, healthy, tmp_path, "healthy")):
        await eventually(lambda: store.has_ticket("kunming-1.wav"))
    assert healthy.calls == ["kunming-1.wav"]
    assert await client.xlen(EXPORT_STREAM) == 1
    assert await client.hlen(ATTEMPTS) == 0


async def test_a_failing_job_is_parked_then_retried(
    queue: AsrQueue, sink: TicketStoreSink, store: RedisTicketStore, tmp_path: Path
) -> None:
    transcriber = FakeTranscriber()
    transcriber.failing.add("kunming-1.wav")
    await queue.enqueue("kunming-1.wav", meta(1))
    await queue.enqueue("corrupt-2.wav", meta(2))
    async with running(worker(queue, sink, transcriber, tmp_path, "w1")):
        await eventually(lambda: _parked_count(queue, 2))
        parked = {job.recording: job for job in await queue.list_parked()}
        assert parked["kunming-1.wav"].attempts == 2 and "decoder exploded" in parked["kunming-1.wav"].error
        assert parked["corrupt-2.wav"].attempts == 1  # unreadable audio is parked at once
        assert parked["kunming-1.wav"].meta == meta(1)
        assert not await queue.enqueue("kunming-1.wav", meta(1))  # parked still counts as queued
        transcriber.failing.clear()
        assert await queue.retry_parked("kunming-1.wav")
        assert not await queue.retry_parked("kunming-1.wav")
        await eventually(lambda: store.has_ticket("kunming-1.wav"))
    assert [job.recording for job in await queue.list_parked()] == ["corrupt-2.wav"]
    assert transcriber.calls.count("kunming-1.wav") == 3


async def _parked_count(queue: AsrQueue, count: int) -> bool:
    return len(await queue.list_parked()) == count


async def test_rescan_queues_only_orphans(
    queue: AsrQueue, sink: TicketStoreSink, store: RedisTicketStore, client: aioredis.Redis, tmp_path: Path
) -> None:
    spool = tmp_path / "voicemail"
    spool.mkdir()
    for name in ("has-ticket.wav", "queued.wav", "orphan.wav", "recording-now.wav", "notes.txt"):
        (spool / name).write_bytes(b"RIFF")
    hour_ago = time.time() - 3600
    for name in ("has-ticket.wav", "queued.wav", "orphan.wav"):
        os.utime(spool / name, (hour_ago, hour_ago))
    await sink.accept("voicemail/has-ticket.wav", meta(1), Transcript())
    await queue.enqueue("voicemail/queued.wav", meta(2))
    assert await queue.rescan_spool(tmp_path, "voicemail", meta_from_file("kunming")) == 1
    assert await queue.rescan_spool(tmp_path, "voicemail", meta_from_file("kunming")) == 0
    async with running(worker(queue, sink, FakeTranscriber(), tmp_path, "w1")):
        await eventually(lambda: store.has_ticket("voicemail/orphan.wav"))
        await eventually(lambda: store.has_ticket("voicemail/queued.wav"))
    orphan = next(t for t in await store.list_tickets() if t.recording == "voicemail/orphan.wav")
    assert orphan.call_id == "orphan" and orphan.accepted_at.timestamp() == pytest.approx(hour_ago, abs=1)
    fresh = await queue.rescan_spool(tmp_path, "voicemail", meta_from_file("kunming"), min_age_s=0)
    assert fresh == 1  # only the fresh file
    assert await client.xlen(EXPORT_STREAM) == 3


async def test_workers_stealing_slow_jobs_never_make_two_tickets(
    queue: AsrQueue, sink: TicketStoreSink, store: RedisTicketStore, client: aioredis.Redis, tmp_path: Path
) -> None:
    # the slow worker decodes (0.8 s) past the visibility timeout (0.3 s): the others claim its jobs
    for n in range(12):
        await queue.enqueue(f"kunming-{n}.wav", meta(n))
    slow, fast = FakeTranscriber(delay_s=0.8), [FakeTranscriber(), FakeTranscriber()]
    async with running(worker(queue, sink, slow, tmp_path, "slow")):
        await eventually(lambda: asyncio.sleep(0, slow.calls))
        async with running(*(worker(queue, sink, t, tmp_path, f"fast{i}") for i, t in enumerate(fast))):
            await eventually(lambda: _queue_empty(client), timeout_s=20)
    assert await client.xlen(EXPORT_STREAM) == 12
    assert len(await store.list_tickets()) == 12
    stolen = set(slow.calls) & {name for t in fast for name in t.calls}
    assert stolen == set(slow.calls)  # every job the slow worker held was decoded twice


async def _queue_empty(client: aioredis.Redis) -> bool:
    return bool(await client.scard(QUEUED) == 0)


async def test_cancelling_a_worker_drains_the_job_in_hand(
    queue: AsrQueue, sink: TicketStoreSink, store: RedisTicketStore, client: aioredis.Redis, tmp_path: Path
) -> None:
    transcriber = FakeTranscriber(delay_s=0.3)
    runner = asyncio.create_task(worker(queue, sink, transcriber, tmp_path, "w1").run())
    await queue.enqueue("kunming-1.wav", meta(1))
    await eventually(lambda: asyncio.sleep(0, transcriber.calls))
    runner.cancel()  # SIGTERM during a decode
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert await store.has_ticket("kunming-1.wav")
    assert (await client.xpending(STREAM, GROUP))["pending"] == 0


async def test_the_sink_uses_the_clock_when_the_recording_time_is_unknown(
    sink: TicketStoreSink, store: RedisTicketStore
) -> None:
    undated = VoicemailMeta(platform="kunming", call_id="kunming-9", caller="13800000009")
    ticket_id = await sink.accept("kunming-9.wav", undated, Transcript())
    ticket = await store.get(ticket_id)
    assert ticket is not None and ticket.accepted_at == T0
    assert ticket.deadlines.resolve_by - ticket.accepted_at > timedelta(days=5)


class GatedTranscriber(FakeTranscriber):
    """One long message held until released; the others decode at once."""

    def __init__(self, long_one: str) -> None:
        super().__init__()
        self.long_one = long_one
        self.release = asyncio.Event()

    async def transcribe(self, path: Path) -> Transcript:
        if path.name == self.long_one:
            self.calls.append(path.name)
            await self.release.wait()
            return Transcript(text="long")
        return await super().transcribe(path)


async def test_a_long_message_does_not_hold_up_the_others(
    queue: AsrQueue, sink: TicketStoreSink, store: RedisTicketStore, tmp_path: Path
) -> None:
    """A pipeline: with 2 decoding slots and one held by a long message, the other slot takes
    the short messages one after another (batches would wait for the long one each time)."""
    transcriber = GatedTranscriber("kunming-1.wav")
    two_slots = WorkerSettings(visibility_timeout_s=30, max_attempts=2, batch=2, block_ms=50, drain_timeout_s=5)
    for n in range(1, 7):
        await queue.enqueue(f"kunming-{n}.wav", meta(n))
    async with running(AsrWorker(queue, transcriber, sink, tmp_path, consumer="w1", settings=two_slots)):
        for n in range(2, 7):
            await eventually(lambda n=n: store.has_ticket(f"kunming-{n}.wav"))  # type: ignore[misc]
        assert not await store.has_ticket("kunming-1.wav")  # still decoding
        transcriber.release.set()
        await eventually(lambda: store.has_ticket("kunming-1.wav"))


class RedisGoneOnce(TicketStoreSink):
    """The ticket store whose Redis is killed under the first ticket (the connection drops)."""

    def __init__(self, inner: TicketStoreSink) -> None:
        self._inner = inner
        self.failed = 0

    async def has_ticket(self, recording: str) -> bool:
        return await self._inner.has_ticket(recording)

    async def accept(self, recording: str, meta: VoicemailMeta, transcript: Transcript) -> str:
        if not self.failed:
            self.failed += 1
            raise RedisConnectionError("Connection closed by server.")
        return await self._inner.accept(recording, meta, transcript)


async def test_a_job_redis_failed_mid_ticket_is_taken_up_again_at_once(
    queue: AsrQueue, sink: TicketStoreSink, store: RedisTicketStore, client: aioredis.Redis, tmp_path: Path
) -> None:
    """Not after the visibility timeout (5 minutes by default): as soon as Redis answers."""
    await queue.enqueue("kunming-1.wav", meta(1))
    gone = RedisGoneOnce(sink)
    patient = WorkerSettings(visibility_timeout_s=3600, max_attempts=3, batch=2, block_ms=50, drain_timeout_s=5)
    transcriber = FakeTranscriber()
    async with running(AsrWorker(queue, transcriber, gone, tmp_path, consumer="w1", settings=patient)):
        await eventually(lambda: store.has_ticket("kunming-1.wav"))
    assert gone.failed == 1 and transcriber.calls == ["kunming-1.wav", "kunming-1.wav"]
    assert len(await store.list_tickets()) == 1
    assert (await client.xpending(STREAM, GROUP))["pending"] == 0
