"""The controller's file watches as one group (common/reloading.py FileWatches): one thread hop
per tick stamps every due entry, a changed stamp reloads only its entry, a failing stamp or
reload does not stop the others, and a hung stamp holds up neither the event loop nor starts a
second thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from structlog.testing import capture_logs

from common.reloading import FileWatches
from tests.support.waiting import wait_until

T = TypeVar("T")


class Holder:
    """A fake holder: its files' stamp, the stamp of its last reload, and its reloads."""

    def __init__(self, name: str, hops: list[list[str]] | None = None) -> None:
        self.name = name
        self.files: object = 1
        self.loaded: object = 1
        self.reloads: list[str] = []
        self.stamp_error: Exception | None = None
        self.reload_error: Exception | None = None
        self.hang: threading.Event | None = None
        self.hops = hops
        self.threads: set[int] = set()

    def stamp(self) -> object:
        self.threads.add(threading.get_ident())
        if self.hops is not None:
            self.hops[-1].append(self.name)
        if self.hang is not None:
            self.hang.wait(30)
        if self.stamp_error is not None:
            raise self.stamp_error
        return self.files

    async def reload(self, reason: str) -> None:
        if self.reload_error is not None:
            raise self.reload_error
        self.reloads.append(reason)
        self.loaded = self.files

    def add_to(self, watches: FileWatches, interval_s: float) -> None:
        watches.add(interval_s, self.stamp, lambda: self.loaded, self.reload, name=self.name)


class CountingRunner:
    """asyncio.to_thread that counts its calls (one list of stamped names per thread hop)."""

    def __init__(self) -> None:
        self.hops: list[list[str]] = []
        self.returned = 0

    async def __call__(self, func: Callable[[], T]) -> T:
        self.hops.append([])
        result = await asyncio.to_thread(func)
        self.returned += 1
        return result


async def test_one_thread_hop_per_tick_stamps_every_due_entry() -> None:
    runner = CountingRunner()
    dialplan, units, knowledge = (Holder(name, runner.hops) for name in ("dialplan", "units", "knowledge"))
    watches = FileWatches(to_thread=runner)
    dialplan.add_to(watches, 0.01)  # scaled 1 s, 2 s, 2 s: the controller's defaults
    units.add_to(watches, 0.02)
    knowledge.add_to(watches, 0.02)
    task = asyncio.create_task(watches.run())
    try:
        await wait_until(lambda: len(runner.hops) >= 5)
    finally:
        task.cancel()
    all_three = ["dialplan", "units", "knowledge"]
    assert runner.hops[:4] == [["dialplan"], all_three, ["dialplan"], all_three]
    loop_thread = threading.get_ident()
    stamped_in = dialplan.threads | units.threads | knowledge.threads
    assert loop_thread not in stamped_in  # the stamps ran in the thread, not on the event loop
    assert not dialplan.reloads and not units.reloads  # nothing changed, nothing reloaded


async def test_the_default_runner_is_one_to_thread_per_tick(monkeypatch: Any) -> None:
    calls: list[object] = []
    real = asyncio.to_thread

    async def counting(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        calls.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    holders = [Holder(name) for name in ("dialplan", "units", "knowledge")]
    watches = FileWatches()
    for holder in holders:
        holder.add_to(watches, 1.0)
    await watches.tick()
    await watches.tick()
    assert len(calls) == 2
    assert all(holder.threads for holder in holders)


async def test_a_changed_stamp_reloads_only_its_entry_and_a_missing_file_waits() -> None:
    a, b, c = Holder("a"), Holder("b"), Holder("c")
    watches = FileWatches()
    for holder in (a, b, c):
        holder.add_to(watches, 1.0)
    a.files = 2
    c.files = None  # a file missing: wait for it
    await watches.tick()
    assert a.reloads == ["file changed"] and a.loaded == 2
    assert b.reloads == [] and c.reloads == []
    await watches.tick()
    assert a.reloads == ["file changed"]  # reloaded once: the stamp is the last reload's now


async def test_a_failing_stamp_or_reload_does_not_stop_the_others() -> None:
    a, b, c = Holder("a"), Holder("b"), Holder("c")
    watches = FileWatches()
    for holder in (a, b, c):
        holder.add_to(watches, 1.0)
    a.stamp_error = OSError("stale file handle")
    b.files = c.files = 2
    b.reload_error = RuntimeError("boom")
    with capture_logs() as logs:
        await watches.tick()
    assert c.reloads == ["file changed"]
    failures = {(entry["event"], entry["watch"]) for entry in logs}
    assert ("file_watch.stamp_failed", "a") in failures
    assert ("file_watch.reload_failed", "b") in failures
    a.stamp_error = b.reload_error = None
    a.files = 3
    await watches.tick()  # the group goes on: both are reloaded at the next tick
    assert a.reloads == ["file changed"] and b.reloads == ["file changed"]


async def test_a_failing_reload_does_not_end_the_running_group() -> None:
    a, b = Holder("a"), Holder("b")
    watches = FileWatches()
    a.add_to(watches, 0.01)
    b.add_to(watches, 0.01)
    a.files = b.files = 2
    a.reload_error = RuntimeError("boom")
    task = asyncio.create_task(watches.run())
    try:
        await wait_until(lambda: b.reloads and watches.ticks >= 3)
        assert not task.done()
    finally:
        task.cancel()


async def test_a_hung_stamp_holds_up_no_loop_and_no_second_thread_is_sent() -> None:
    runner = CountingRunner()
    nfs, other = Holder("knowledge", runner.hops), Holder("units", runner.hops)
    nfs.hang = threading.Event()
    watches = FileWatches(timeout_s=0.05, to_thread=runner)
    nfs.add_to(watches, 1.0)
    other.add_to(watches, 1.0)
    other.files = 2
    try:
        with capture_logs() as logs:
            await watches.tick()  # returns after the timeout while the thread still hangs
            assert watches.stuck == "knowledge"
            await watches.tick()
            await watches.tick()
        assert len(runner.hops) == 1  # no second thread after the stuck one
        assert other.reloads == []  # late ...
        stuck = [entry for entry in logs if entry["event"] == "file_watch.stuck"]
        assert len(stuck) == 1 and stuck[0]["watch"] == "knowledge"
        assert stuck[0]["waiting"] == ["knowledge", "units"]
    finally:
        nfs.hang.set()
    await wait_until(lambda: runner.returned == 1)  # the thread went on to the next entry and returned
    assert runner.hops[0] == ["knowledge", "units"]
    with capture_logs() as logs:
        await watches.tick()
    assert other.reloads == ["file changed"]  # ... not lost
    assert watches.stuck == "" and len(runner.hops) == 1
    assert [entry["watch"] for entry in logs if entry["event"] == "file_watch.recovered"] == ["knowledge"]
    await watches.tick()
    assert len(runner.hops) == 2  # and the next tick sends a thread again
