"""A hang-up line whose call has no record yet (calls/end_lines.py ``orphan_record``) against the
controller's own record of the same call: the AMI events of a short call may still be queued
(a loaded controller) when the spool scan reads the line, and be handled while the scan waits
for Redis. The controller's record must win; the line must not end or replace a live record."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

from calls.fallback import FallbackIngester
from calls.model import CallOutcome, CallRecord
from calls.tracker import CallTracker
from tests.unit.test_calls import T0, FakeClock, MemoryStore
from tests.unit.test_end_lines import END_AT, late_clock

CALL = "kunming-1772442000.21"
LINE = f"e2|{CALL}|{END_AT.timestamp():.3f}|16|13800138011|end"


class SlowStore(MemoryStore):
    """Redis answering a read only when the test says so (a slow round trip)."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.answer = asyncio.Event()

    async def get(self, call_id: str) -> CallRecord | None:
        self.reading.set()
        await self.answer.wait()
        return await super().get(call_id)


def _line(tmp_path: Path) -> Path:
    folder = tmp_path / "fallback"
    folder.mkdir(exist_ok=True)
    line = folder / f"ce-{CALL}.end"
    line.write_text(LINE)
    return line


async def test_a_record_the_controller_makes_while_the_scan_reads_redis_is_not_replaced(tmp_path: Path) -> None:
    """The call's Newchannel is handled while the scan waits for Redis (which has nothing yet):
    the line must neither replace that live record by a lost_track one nor make its Hangup
    (handled next) find no call."""
    store = SlowStore()
    line = _line(tmp_path)
    tracker = CallTracker(store, "kunming", FakeClock())
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    scan = asyncio.create_task(ingester.scan())
    await store.reading.wait()
    await tracker.channel_created(CALL, "PJSIP/trunk-00000007", "13800138011", "", "12345")  # AMI Newchannel
    store.answer.set()
    await scan
    assert tracker.get_live(CALL) is not None  # still the controller's, waiting for its Hangup
    await tracker.flush_dirty()
    assert ingester.retire_saved() == 0 and line.exists()  # a live call's line is not used up
    await tracker.hung_up(CALL, "Normal Clearing")  # AMI Hangup
    await tracker.flush_dirty()
    await ingester.scan()
    await tracker.flush_dirty()
    assert ingester.retire_saved() == 0 and not line.exists()
    ended = store.records[CALL]
    assert (ended.state, ended.channel, ended.called) == ("ended", "PJSIP/trunk-00000007", "12345")
    assert ended.outcome is CallOutcome.ABANDONED and ended.hangup_cause == "Normal Clearing"
    assert "record_from" not in ended.tags


async def test_the_controllers_record_that_replaced_an_unsaved_line_record_is_rebased_not_dropped(
    tmp_path: Path,
) -> None:
    """The line made a record; before the writer saved it, the call's own (late) AMI events made
    the controller's record of it. When the store then refuses that one (a newer revision from
    another writer), it is the controller's record, not the line's: it goes again above the
    stored revision, as any record does, rather than being forgotten."""
    store = MemoryStore()
    _line(tmp_path)
    tracker = CallTracker(store, "kunming", late_clock())
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    assert await ingester.scan() == 1  # the line's record, not saved yet
    await tracker.channel_created(CALL, "PJSIP/trunk-00000007", "13800138011", "", "12345")
    await tracker.amend(CALL, {"seat": "1001", "seat_answered_at": T0, "outcome": CallOutcome.ANSWERED})
    await tracker.hung_up(CALL, "Normal Clearing")
    other = CallRecord(call_id=CALL, platform="kunming", started_at=T0, revision=9)
    store.records[CALL] = other  # another writer's version landed meanwhile
    await tracker.flush_dirty()
    saved = store.records[CALL]
    assert saved.revision == 10 and saved.seat == "1001" and saved.outcome is CallOutcome.ANSWERED
    assert tracker.is_saved(CALL)


def test_a_fifo_or_a_symlink_in_the_spool_is_no_line(tmp_path: Path) -> None:
    """Asterisk's FILE() writes regular files. A FIFO named like a line must not hang the scan
    (open() of a FIFO for reading blocks until a writer comes, on the controller's event loop),
    and a symlink must not make a record of whatever file it points at."""
    folder = tmp_path / "fallback"
    folder.mkdir()
    fifo = folder / f"ce-{CALL}.end"
    os.mkfifo(fifo)
    os.mkfifo(folder / "fc-1772442000-kunming-1772442000.23.call")
    (folder / "fb2-1772442000-kunming-1772442000.24.wav").write_bytes(b"RIFF")
    os.mkfifo(folder / "fb2-1772442000-kunming-1772442000.24.caller")
    target = tmp_path / "elsewhere"
    target.write_text(LINE.replace(CALL, "kunming-1772442000.22"))
    (folder / "ce-kunming-1772442000.22.end").symlink_to(target)
    store = MemoryStore()
    tracker = CallTracker(store, "kunming", FakeClock())
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    written: list[int] = []
    thread = threading.Thread(target=lambda: written.append(asyncio.run(ingester.scan())), daemon=True)
    thread.start()
    thread.join(60)  # milliseconds when it works; a hang fails here rather than hanging the suite
    hung = thread.is_alive()
    while thread.is_alive():  # let a blocked open() go (each FIFO in turn)
        for name in (
            fifo.name,
            "fc-1772442000-kunming-1772442000.23.call",
            "fb2-1772442000-kunming-1772442000.24.caller",
        ):
            with contextlib.suppress(OSError):
                os.close(os.open(folder / name, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(0.1)
    assert not hung, "the scan blocked on a FIFO"
    asyncio.run(tracker.flush_dirty())
    assert written == [1] and list(store.records) == ["kunming-1772442000.24"]  # the message, without a number
    assert store.records["kunming-1772442000.24"].caller == ""
    assert fifo.exists() and target.exists()  # left where they are
