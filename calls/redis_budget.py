"""How long the call path may wait on Redis, and the Redis work it leaves to the background.

A caller in the IVR, a seat's phone that answers and AMI's event stream must not wait on a
Redis that is slow or hung (SIGSTOP, a stuck disk, a partition without RST: the socket stays
open and nothing comes back). So, on the call path:

- a **read** (``await budget.read(what, op, default)``) waits at most ``op_timeout_s``, and
  inside an IVR step (``with budget.step():``) at most what is left of the step's budget
  (twice the op timeout); then it gives the safe default the caller of ``read`` chose;
- a **write** (``budget.write(what, job)``) is queued and done in order by one background task,
  retried while Redis fails (it is idempotent, or the caller says ``retry=False``), coalesced
  by ``key`` (a seat's state: only the last matters). The backlog is bounded: when it is full a
  best-effort write (``droppable``, e.g. the event stream) is dropped first; every drop is
  counted. ``write_and_wait`` waits for its write like a read (a hand-off record the next
  platform reads at once), then leaves it to the background. ``write_staged`` queues a write
  as the command(s) it puts on a pipeline: such writes next to each other in the queue go to
  Redis in one pipeline (one round trip), each still retried, coalesced and dropped as its own.

Call records are not written here: the tracker keeps its own dirty map (calls/tracker.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from redis.asyncio.client import Pipeline, Redis
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from common.aio import cancel_and_wait
from common.metrics import Histogram, Metric

log = structlog.get_logger(__name__)

T = TypeVar("T")
Job = Callable[[], Awaitable[object]]
Stage = Callable[[Pipeline], object]  # puts a write's command(s) on a pipeline (not executed)
STAGED_BATCH_MAX = 100  # staged writes sent in one pipeline at most

DEFAULT_OP_TIMEOUT_S = 0.5
DEFAULT_BACKLOG_MAX = 50_000
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 5.0
SLOW_FOR_S = 10.0  # a timeout keeps "redis slow/hung" in health this long (unless Redis answers)
WAIT_BUCKETS_S = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
# failures worth retrying: Redis itself (refused, reset, timeout, loading …)
TRANSIENT = (RedisError, OSError, TimeoutError)
# refusals that pass: a replica not yet promoted, a dataset loading, a script to load again, a
# full or locked Redis an operator fixes, too few replicas (Sentinel failover, restart) — redis-py
# raises its own classes for some (their text without the code) and a plain ResponseError with
# the code first for the others. Any other refusal (WRONGTYPE, a bad argument, an aborted MULTI)
# fails the same way every time: retried, it would hold every write queued behind it for ever
PASSING_REFUSAL_CLASSES = (
    ReadOnlyError, BusyLoadingError, NoScriptError, TryAgainError, OutOfMemoryError, AuthenticationError,
    NoPermissionError,
)  # fmt: skip
PASSING_REFUSALS = ("READONLY", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN", "NOSCRIPT", "OOM")


def refused_for_good(exc: BaseException) -> bool:
    """Redis refused the command itself, in a way a retry would not change."""
    if not isinstance(exc, ResponseError) or isinstance(exc, PASSING_REFUSAL_CLASSES):
        return False
    return not str(exc).startswith(PASSING_REFUSALS)


@dataclass
class _Step:
    """What one IVR step may still wait on Redis, and what it has waited."""

    left_s: float
    waited_s: float = 0.0


_STEP: ContextVar[_Step | None] = ContextVar("hotline_redis_step", default=None)


@dataclass
class _Entry:
    what: str
    job: Job
    retry: bool
    droppable: bool
    key: str | None
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)
    staged: tuple[Redis, Stage] | None = None  # write_staged: the client and the stage

    def finish(self, done: bool) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(done)


class RedisBudget:
    """The call path's patience with Redis (reads) and its write-behind queue (writes)."""

    def __init__(self, op_timeout_s: float = DEFAULT_OP_TIMEOUT_S, backlog_max: int = DEFAULT_BACKLOG_MAX) -> None:
        self.op_timeout_s = op_timeout_s
        self.step_budget_s = 2 * op_timeout_s
        self._backlog_max = backlog_max
        self._backlog: OrderedDict[int, _Entry] = OrderedDict()
        self._by_key: dict[str, int] = {}
        self._seq = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self._last_timeout = 0.0  # monotonic time of the last read that gave up
        self.read_timeouts = 0
        self.read_errors = 0
        self.writes_failed = 0  # attempts; a retried write may fail many times
        self.writes_dropped = 0
        self.read_wait = Histogram(
            "hotline_redis_call_path_wait_seconds", "How long one call-path Redis read waited", WAIT_BUCKETS_S
        )
        self.step_wait = Histogram(
            "hotline_ivr_step_redis_wait_seconds", "How long one IVR step waited on Redis in all", WAIT_BUCKETS_S
        )

    # reads

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """One IVR step: its reads share ``step_budget_s``; what it waited is observed."""
        step = _Step(self.step_budget_s)
        token = _STEP.set(step)
        try:
            yield
        finally:
            _STEP.reset(token)
            self.step_wait.observe(step.waited_s)

    async def read(self, what: str, op: Callable[[], Awaitable[T]], default: T, *, timeout_s: float | None = None) -> T:
        """``op()``'s result, or ``default`` when Redis fails or does not answer in time
        (``timeout_s``, default the op timeout; inside an IVR step never more than it has left)."""
        step = _STEP.get()
        limit = timeout_s or self.op_timeout_s
        if step is not None:
            limit = min(limit, step.left_s)
        if limit <= 0:
            log.warning("redis.call_path_budget_spent", what=what)
            self.read_timeouts += 1
            return default
        started = time.monotonic()
        try:
            async with asyncio.timeout(limit):
                result = await op()
        except TimeoutError:
            self.read_timeouts += 1
            self._last_timeout = time.monotonic()
            log.warning("redis.call_path_timeout", what=what, waited_s=round(time.monotonic() - started, 3))
            return default
        except RedisError as exc:
            self.read_errors += 1
            log.warning("redis.call_path_error", what=what, error=str(exc) or type(exc).__name__)
            return default
        finally:
            waited = time.monotonic() - started
            self.read_wait.observe(waited)
            if step is not None:
                step.left_s -= waited
                step.waited_s += waited
        self._last_timeout = 0.0  # Redis answered in time
        return result

    @property
    def slow(self) -> bool:
        """A call-path read gave up lately and none has succeeded since."""
        return bool(self._last_timeout) and time.monotonic() - self._last_timeout < SLOW_FOR_S

    def answered(self) -> None:
        """Redis answered in time (the health check): it is not slow now."""
        self._last_timeout = 0.0

    # writes

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def write(
        self, what: str, job: Job, *, key: str | None = None, retry: bool = True, droppable: bool = False
    ) -> None:
        """Queue ``job`` (a Redis write); never waits. ``key``: a later write of the same key
        replaces one not yet started (in its place). ``retry``: tried again while Redis fails."""
        self._enqueue(_Entry(what, job, retry, droppable, key))

    def write_staged(
        self, what: str, client: Redis, stage: Stage, *, key: str | None = None, retry: bool = True,
        droppable: bool = False,
    ) -> None:  # fmt: skip
        """As ``write``, the command(s) ``stage`` puts on a pipeline of ``client``: staged writes
        next to each other in the queue (on the same client) go in one pipeline."""

        async def alone() -> object:
            async with client.pipeline(transaction=False) as pipe:
                stage(pipe)
                return await pipe.execute()

        self._enqueue(_Entry(what, alone, retry, droppable, key, staged=(client, stage)))

    async def write_and_wait(self, what: str, job: Job, *, key: str | None = None) -> bool:
        """Queue ``job`` and wait for it like a read (within the op timeout and the step's
        budget); True when it is done, False when it was left to the background."""
        entry = _Entry(what, job, True, False, key)
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry.waiters.append(waiter)
        self._enqueue(entry)
        return await self.read(what, lambda: asyncio.shield(waiter), False)

    def _enqueue(self, entry: _Entry) -> None:
        if entry.key is not None and entry.key in self._by_key:
            pending = self._backlog.get(self._by_key[entry.key])
            if pending is not None:  # not started yet: the newer write replaces it, in its place
                pending.job, pending.what, pending.staged = entry.job, entry.what, entry.staged
                pending.retry, pending.droppable = entry.retry, entry.droppable and pending.droppable
                pending.waiters.extend(entry.waiters)
                return
        if len(self._backlog) >= self._backlog_max and not self._make_room(entry):
            return
        self._seq += 1
        self._backlog[self._seq] = entry
        if entry.key is not None:
            self._by_key[entry.key] = self._seq
        self._idle.clear()
        self._wake.set()
        self._ensure_worker()

    def _make_room(self, entry: _Entry) -> bool:
        """The backlog is full: drop the oldest best-effort write, else refuse this one."""
        victim = next((seq for seq, e in self._backlog.items() if e.droppable), None)
        if victim is None or entry.droppable:
            self._drop(entry, "backlog full")
            return False
        self._drop(self._pop(victim), "backlog full")
        return True

    def _drop(self, entry: _Entry, why: str) -> None:
        self.writes_dropped += 1
        entry.finish(False)
        log.error("redis.write_dropped", what=entry.what, why=why, backlog=len(self._backlog))

    def _pop(self, seq: int) -> _Entry:
        entry = self._backlog.pop(seq)
        if entry.key is not None and self._by_key.get(entry.key) == seq:
            del self._by_key[entry.key]
        return entry

    def _ensure_worker(self) -> None:
        if (self._worker is None or self._worker.done()) and not self._closing:
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="redis-write-behind")

    async def _work(self) -> None:
        backoff = 0.0
        while True:
            if not self._backlog:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            seq, entry = next(iter(self._backlog.items()))
            batch = self._staged_run(seq, entry) if entry.staged is not None else []
            if len(batch) > 1:  # several staged writes in a row: one pipeline
                backoff = 0.0 if await self._staged_batch(batch) else await _back_off(backoff)
                continue
            if entry.key is not None and self._by_key.get(entry.key) == seq:
                del self._by_key[entry.key]  # from now on a write of this key queues behind it
            done = False
            try:
                await entry.job()
                done = True
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                self.writes_failed += 1
                if entry.retry and not refused_for_good(exc):
                    backoff = min(RETRY_MAX_S, max(RETRY_INITIAL_S, backoff * 2))
                    log.warning("redis.write_deferred", what=entry.what, error=str(exc) or type(exc).__name__)
                    if entry.key is not None and entry.key not in self._by_key:
                        self._by_key[entry.key] = seq  # still pending: a newer write may replace it
                    await asyncio.sleep(backoff)
                    continue
                _log_failed(entry.what, exc)
            except Exception:
                self.writes_failed += 1
                log.exception("redis.write_crashed", what=entry.what)
            else:
                backoff = 0.0
            if self._backlog.get(seq) is entry:
                self._pop(seq)
            entry.finish(done)

    def _staged_run(self, seq: int, first: _Entry) -> list[tuple[int, _Entry]]:
        """The staged writes at the head of the queue on ``first``'s client (at most
        STAGED_BATCH_MAX), now started: a write of their keys queues behind them."""
        assert first.staged is not None
        client = first.staged[0]
        batch = [(seq, first)]
        for later_seq, later in itertools.islice(self._backlog.items(), 1, STAGED_BATCH_MAX):
            if later.staged is None or later.staged[0] is not client:
                break
            batch.append((later_seq, later))
        if len(batch) > 1:
            for entry_seq, entry in batch:
                if entry.key is not None and self._by_key.get(entry.key) == entry_seq:
                    del self._by_key[entry.key]
        return batch

    async def _staged_batch(self, batch: list[tuple[int, _Entry]]) -> bool:
        """Several staged writes in one pipeline, each settled as its own:

        - a stage that raises (a bug) fails its own write only (``redis.write_crashed``);
        - Redis unreachable (the whole pipeline failed): as on the one-write path, only the first
          write is tried — dropped if it does not retry — and the rest stay queued, in order;
        - a command Redis refused fails its own write; a refused write that retries is kept,
          unless a later write of its key in this pipeline landed (it replaced it: only the last
          write of a key matters, and the older one must not land after it).

        False when some write is to be retried (the loop backs off)."""
        client = batch[0][1].staged[0]  # type: ignore[index]
        outcome: list[BaseException | None] = []
        staged: list[tuple[int, int]] = []  # per write: its commands' span in the pipeline
        try:
            async with client.pipeline(transaction=False) as pipe:
                for _, entry in batch:
                    before = len(pipe.command_stack)
                    try:
                        entry.staged[1](pipe)  # type: ignore[index]
                    except Exception as exc:  # its own fault: the others still go
                        del pipe.command_stack[before:]
                        staged.append((before, -1))
                        outcome.append(exc)
                        continue
                    staged.append((before, len(pipe.command_stack)))
                    outcome.append(None)
                results: list[object] = await pipe.execute(raise_on_error=False) if pipe.command_stack else []
        except asyncio.CancelledError:
            raise
        except TRANSIENT as exc:
            return self._pipeline_failed(batch, exc)
        for index, (begin, end) in enumerate(staged):
            if end >= 0:
                errors = [r for r in results[begin:end] if isinstance(r, BaseException)]
                outcome[index] = errors[0] if errors else None
        return self._settle_staged(batch, outcome, crashed={i for i, (_, end) in enumerate(staged) if end < 0})

    def _settle_staged(
        self, batch: list[tuple[int, _Entry]], outcome: list[BaseException | None], crashed: set[int]
    ) -> bool:
        """Each write of a pipeline that reached Redis done, dropped or kept (``_staged_batch``)."""
        landed = [(entry.key, i) for i, ((_, entry), error) in enumerate(zip(batch, outcome, strict=True)) if not error]
        retrying = False
        for index, ((entry_seq, entry), error) in enumerate(zip(batch, outcome, strict=True)):
            if error is not None:
                self.writes_failed += 1
                replaced = entry.key is not None and any(k == entry.key and i > index for k, i in landed)
                if index in crashed:
                    log.error("redis.write_crashed", what=entry.what, error=repr(error))
                elif entry.retry and not replaced and not refused_for_good(error):
                    retrying = True
                    log.warning("redis.write_deferred", what=entry.what, error=str(error) or type(error).__name__)
                    if entry.key is not None and entry.key not in self._by_key:
                        self._by_key[entry.key] = entry_seq  # still pending: a newer write may replace it
                    continue
                else:
                    _log_failed(entry.what, error)
            if self._backlog.get(entry_seq) is entry:
                self._pop(entry_seq)
            entry.finish(error is None)
        return not retrying

    def _pipeline_failed(self, batch: list[tuple[int, _Entry]], exc: BaseException) -> bool:
        """Redis unreachable for the whole pipeline: every write stays queued in order (their
        keys pending again, so a newer write still replaces one), except a first write that does
        not retry, dropped as on the one-write path. Returns False: the loop backs off."""
        self.writes_failed += 1
        for position, (entry_seq, entry) in enumerate(batch):
            if position == 0 and not entry.retry:
                _log_failed(entry.what, exc)
                if self._backlog.get(entry_seq) is entry:
                    self._pop(entry_seq)
                entry.finish(False)
                continue
            if entry.key is not None and entry.key not in self._by_key:
                self._by_key[entry.key] = entry_seq
        error = str(exc) or type(exc).__name__
        log.warning("redis.write_deferred", what=batch[0][1].what, writes=len(batch), error=error)
        return False

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued write is done (tests, shutdown); False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, drain_timeout_s: float = 5.0) -> None:
        """Let the backlog drain a while, then stop; what is left is logged."""
        if self._backlog:
            await self.drain(drain_timeout_s)
        self._closing = True
        if self._worker is not None:
            await cancel_and_wait([self._worker])
            self._worker = None
        if self._backlog:
            log.error("redis.writes_not_done_at_exit", count=len(self._backlog))

    def metrics(self) -> list[Metric]:
        return [
            Metric(_TIMEOUTS, "counter", "Call-path Redis reads given up (slow or hung Redis)", self.read_timeouts),
            Metric(_ERRORS, "counter", "Call-path Redis reads that failed", self.read_errors),
            Metric(_BACKLOG, "gauge", "Redis writes waiting for the background writer", self.backlog),
            Metric(_FAILED, "counter", "Background Redis write attempts that failed", self.writes_failed),
            Metric(_DROPPED, "counter", "Redis writes dropped (backlog full)", self.writes_dropped),
            *self.read_wait.metrics(),
            *self.step_wait.metrics(),
        ]


def _log_failed(what: str, exc: BaseException) -> None:
    """A write given up: an error when Redis refused it for good (lost, not just late)."""
    error = str(exc) or type(exc).__name__
    if refused_for_good(exc):
        log.error("redis.write_refused", what=what, error=error)
    else:
        log.warning("redis.write_failed", what=what, error=error)


async def _back_off(backoff_s: float) -> float:
    """Wait before retrying: twice as long as last time, within RETRY_INITIAL_S … RETRY_MAX_S."""
    backoff_s = min(RETRY_MAX_S, max(RETRY_INITIAL_S, backoff_s * 2))
    await asyncio.sleep(backoff_s)
    return backoff_s


_TIMEOUTS = "hotline_redis_call_path_timeouts_total"
_ERRORS = "hotline_redis_call_path_errors_total"
_BACKLOG = "hotline_redis_write_backlog"
_FAILED = "hotline_redis_writes_failed_total"
_DROPPED = "hotline_redis_writes_dropped_total"
