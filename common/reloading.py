"""What the hot-reloaded files (dialplans, the units directory, the knowledge base) share: a
reload's result, the files' change stamps and the watch group that reloads them when they change.
Each holder keeps its own loading, checking and log events.

The controller watches all its holders in ONE group (``FileWatches``): one task ticking at the
shortest interval, and per tick one thread (``asyncio.to_thread``) that takes the stamps of every
entry due, so idle watching costs one thread hop per tick, not one per holder. A stamp that hangs
(a dead network mount) holds up the group's later ticks, not the event loop: the group waits
``timeout_s`` for the thread, logs ``file_watch.stuck`` naming the holder being stamped, and sends
no second thread while that one runs; the other holders' changes are picked up once it returns
(late, not lost)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")
ThreadRunner = Callable[[Callable[[], T]], Awaitable[T]]

FileStamp = tuple[str, int, int]  # path, mtime (ns), size


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: ``version`` is the one running after it (the kept one when rejected)."""

    ok: bool
    version: str
    changed: bool
    problems: tuple[str, ...] = field(default=())


def file_stamp(path: Path) -> FileStamp | None:
    """The file's change stamp; None when it cannot be read (missing)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return str(path), stat.st_mtime_ns, stat.st_size


def file_stamps(paths: Iterable[Path]) -> tuple[FileStamp, ...]:
    """The stamps of the files that are there (a file that appears or goes is a change too)."""
    return tuple(stamp for path in paths if (stamp := file_stamp(path)) is not None)


STAMP_TIMEOUT_S = 5.0  # a stamp slower than this is logged as stuck (the group waits on, sending no more threads)


@dataclass
class FileWatch:
    """One holder's files in a group: ``stamp`` (run in the group's thread), the stamp of its
    last reload, and its ``reload``; stamped every ``every`` ticks of the group."""

    name: str
    interval_s: float
    stamp: Callable[[], object]
    last_stamp: Callable[[], object]
    reload: Callable[[str], Awaitable[object]]
    every: int = 1


@dataclass(frozen=True)
class _Stamped:
    watch: FileWatch
    stamp: object = None
    error: str = ""


class _Batch:
    """The stamps of one tick's due entries, taken one after another in one thread; ``current``
    names the entry being stamped (read by the event loop when the thread is stuck)."""

    def __init__(self, due: Sequence[FileWatch]) -> None:
        self.due = tuple(due)
        self.current = ""

    def __call__(self) -> list[_Stamped]:
        results: list[_Stamped] = []
        for watch in self.due:
            self.current = watch.name
            try:
                results.append(_Stamped(watch, watch.stamp()))
            except Exception as exc:  # a stamp that fails is that entry's problem only
                results.append(_Stamped(watch, error=f"{type(exc).__name__}: {exc}"))
        self.current = ""
        return results


async def _to_thread(func: Callable[[], T]) -> T:
    return await asyncio.to_thread(func)


class FileWatches:
    """A group of file watches run by one task (``run``): every tick (the shortest interval of
    its entries; each entry's interval is rounded to a whole number of ticks) ONE thread stamps
    every due entry, then each entry whose stamp differs from its last reload's is reloaded
    ("file changed"), one after another. A None stamp (a file missing) waits. A stamp or reload
    that raises is logged (``file_watch.stamp_failed`` / ``file_watch.reload_failed``) and the
    group goes on. See the module docstring for a stamp that hangs."""

    def __init__(self, timeout_s: float = STAMP_TIMEOUT_S, to_thread: ThreadRunner[Any] = _to_thread) -> None:
        self._timeout_s = timeout_s
        self._to_thread = to_thread
        self._watches: list[FileWatch] = []
        self._pending: asyncio.Future[list[_Stamped]] | None = None
        self._batch: _Batch | None = None
        self.stuck = ""  # the entry a stuck thread is stamping, "" when none is
        self.ticks = 0

    def add(
        self,
        interval_s: float,
        stamp: Callable[[], object],
        last_stamp: Callable[[], object],
        reload: Callable[[str], Awaitable[object]],
        *,
        name: str = "files",
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"a watch interval must be positive, not {interval_s}")
        self._watches.append(FileWatch(name, interval_s, stamp, last_stamp, reload))
        tick_s = self.tick_s
        for watch in self._watches:
            watch.every = max(1, round(watch.interval_s / tick_s))

    @property
    def tick_s(self) -> float:
        return min(watch.interval_s for watch in self._watches)

    async def run(self) -> None:
        """Tick until cancelled (a task of the controller); with no entries, return."""
        if not self._watches:
            return
        while True:
            await asyncio.sleep(self.tick_s)
            await self.tick()

    async def tick(self) -> None:
        """One tick: send the due entries' stamps to a thread (unless one is still out), wait for
        it up to ``timeout_s``, and reload the changed entries."""
        self.ticks += 1
        if self._pending is None:
            due = [watch for watch in self._watches if self.ticks % watch.every == 0]
            if not due:
                return
            self._batch = _Batch(due)
            self._pending = asyncio.ensure_future(self._to_thread(self._batch))
        try:
            stamped = await asyncio.wait_for(asyncio.shield(self._pending), self._timeout_s)
        except TimeoutError:
            if not self.stuck and self._batch is not None:
                # the entry being stamped (the first one while the thread has not started yet)
                self.stuck = self._batch.current or self._batch.due[0].name
                log.error(
                    "file_watch.stuck",
                    watch=self.stuck,
                    waiting=[watch.name for watch in self._batch.due],
                    timeout_s=self._timeout_s,
                    note="no new stamps until it returns; changes are picked up then",
                )
            return
        except Exception as exc:  # the thread runner itself failed: try again next tick
            self._pending = self._batch = None
            log.warning("file_watch.stamp_failed", watch="*", error=f"{type(exc).__name__}: {exc}")
            return
        self._pending = self._batch = None
        if self.stuck:
            log.info("file_watch.recovered", watch=self.stuck)
            self.stuck = ""
        for result in stamped:
            await self._reload_if_changed(result)

    async def _reload_if_changed(self, result: _Stamped) -> None:
        watch = result.watch
        if result.error:
            log.warning("file_watch.stamp_failed", watch=watch.name, error=result.error)
            return
        try:
            if result.stamp is not None and result.stamp != watch.last_stamp():
                await watch.reload("file changed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a reload that breaks is logged; the others go on
            log.warning("file_watch.reload_failed", watch=watch.name, error=f"{type(exc).__name__}: {exc}")
