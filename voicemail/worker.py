"""The transcription worker: one consumer of the job queue's group (``voicemail.queue``).

A job is acknowledged only after its ticket exists. A worker that dies mid-job leaves it
pending; after the visibility timeout another worker claims it (XAUTOCLAIM). A job the worker
itself could not finish because Redis went away (killed, restarting) is taken up again by the
same worker as soon as Redis answers, not after the visibility timeout. The ticket store turns
a message into at most one ticket, so a job run twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import structlog
from redis.exceptions import RedisError

from common.aio import raise_if_cancel_requested
from common.clock import Clock, system_clock
from tickets.model import Transcript
from voicemail.asr import AudioUnreadable
from voicemail.jobs import AsrJob, TicketSink
from voicemail.queue import AsrQueue

log = structlog.get_logger(__name__)

# a scan for other consumers' stale jobs (XAUTOCLAIM) starts at most every this share of the
# visibility timeout, not on every poll (once a second when idle): a dead worker's job is taken
# over at most 10 % later than its timeout
CLAIM_SCAN_SHARE = 0.1


class Transcriber(Protocol):
    """Speech to text (``voicemail.asr.VoskTranscriber``); ``AudioUnreadable`` for a bad file."""

    async def transcribe(self, path: Path) -> Transcript: ...


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
        self._next_scan = 0.0  # monotonic time the next stale-job scan may start (0: at once)
        self.state = WorkerState.STARTING
        self._retry_s = self._settings.retry_initial_s
        self._in_hand: set[str] = set()  # entry ids of the jobs being processed
        self._recheck_own = False  # Redis failed us mid-job: our own pending jobs come first

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
                raise_if_cancel_requested()  # a cancelled blocking read redis-py retried instead of raising
                free = self._settings.batch - len(in_flight)
                if free <= 0:
                    done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    self._reap(done, in_flight)
                    continue
                try:
                    jobs = await self.poll(free)
                except RedisError as exc:  # Redis restarting: jobs wait in its AOF, we wait for it
                    self._recheck_own = True
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
            if error is not None:  # bookkeeping failed: the job stays pending, taken up again soon
                self._recheck_own = True
                log.warning("asr.job_unsettled", consumer=self.consumer, error=str(error))

    async def poll(self, count: int | None = None) -> list[AsrJob]:
        """Up to ``count`` (default: a batch) next jobs: stale ones from dead consumers first,
        else new ones (blocking briefly)."""
        settings = self._settings
        wanted = count or settings.batch
        idle_ms = int(settings.visibility_timeout_s * 1000)
        if self._recheck_own:
            own = await self._queue.read_own_pending(self.consumer, wanted + len(self._in_hand))
            own = [job for job in own if job.entry_id not in self._in_hand][:wanted]
            if own:
                log.warning("asr.jobs_taken_up_again", consumer=self.consumer, count=len(own))
                return own
            self._recheck_own = False
        if self._cursor != "0-0" or time.monotonic() >= self._next_scan:  # a scan goes on to its end
            self._cursor, jobs = await self._queue.claim_stale(self.consumer, idle_ms, wanted, self._cursor)
            if self._cursor == "0-0":
                self._next_scan = time.monotonic() + settings.visibility_timeout_s * CLAIM_SCAN_SHARE
            if jobs:
                log.warning("asr.jobs_reclaimed", consumer=self.consumer, count=len(jobs))
                return jobs
        return await self._queue.read_new(self.consumer, wanted, settings.block_ms)

    async def _handled(self, job: AsrJob) -> bool:
        if job.onto_ticket:
            return await self._sink.has_transcript(job.onto_ticket, job.recording)
        return await self._sink.has_ticket(job.recording)

    async def process(self, job: AsrJob) -> None:
        """Transcribe and hand over one job. Decoding and ticket failures are counted, never
        raised; a Redis error in the bookkeeping is, and leaves the job pending."""
        self._in_hand.add(job.entry_id)
        try:
            await self._process(job)
        finally:
            self._in_hand.discard(job.entry_id)

    async def _process(self, job: AsrJob) -> None:
        attempts = await self._queue.count_attempt(job)
        bound = log.bind(recording=job.recording, attempt=attempts, consumer=self.consumer)
        try:
            if await self._handled(job):  # a worker died after the ticket, before the ack
                await self._queue.done(job)
                return
            transcript = await self._transcriber.transcribe(self._spool_dir / job.recording)
            if job.onto_ticket:  # a 回访 comment: onto the existing case, never a new ticket
                ticket = await self._sink.attach(job.onto_ticket, job.recording, transcript)
            else:
                ticket = await self._sink.accept(job.recording, job.meta, transcript)
        except asyncio.CancelledError:
            raise
        except AudioUnreadable as exc:  # the same bytes will fail again: park at once
            await self._queue.park(job, str(exc), attempts, self._clock())
            return
        except Exception as exc:
            if isinstance(exc, RedisError):  # Redis went away mid-job: not the message's fault
                self._recheck_own = True
            error = f"{type(exc).__name__}: {exc}"
            if attempts >= self._settings.max_attempts:
                await self._queue.park(job, error, attempts, self._clock())
            else:  # left pending: claimed again after the visibility timeout
                bound.warning("asr.job_failed", error=error)
            return
        await self._queue.done(job)
        bound.info("asr.job_done", ticket=ticket, words=len(transcript.words), confidence=transcript.confidence)
