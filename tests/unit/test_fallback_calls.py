"""The fallback route's per-call lines (calls/fallback_calls.py) and their ingestion."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calls.fallback import FallbackIngester
from calls.fallback_calls import Incomplete, is_call_file, parse_call_line
from calls.model import CallOutcome
from calls.tracker import CallTracker
from tests.unit.test_calls import FakeClock, MemoryStore

ANSWERED = "v1|1772442000|kunming-1772442000.7|13800138000|queue|1001|1772442005|2|1772442037|end"
GREETING = "v1|1772442100|kunming-1772442100.8|13900000008|greeting||||1772442102|end"
MESSAGE = "v1|1772442200|kunming-1772442200.9||message||1772442205||1772442240|end"


def test_a_line_says_outcome_seat_and_talk() -> None:
    call = parse_call_line(ANSWERED)
    assert (call.uniqueid, call.caller, call.seat, call.outcome) == (
        "kunming-1772442000.7",
        "13800138000",
        "1001",
        CallOutcome.ANSWERED,
    )
    assert call.seat_answered_at == datetime.fromtimestamp(1772442007, UTC)  # queued + hold time
    assert (call.ended_at - call.seat_answered_at).total_seconds() == 30
    assert parse_call_line(GREETING).outcome is CallOutcome.ABANDONED
    assert parse_call_line(MESSAGE).outcome is CallOutcome.FALLBACK
    assert parse_call_line(MESSAGE).caller == ""  # a number withheld
    # a caller who sends a huge "number" still leaves the record, without it
    huge = parse_call_line(GREETING.replace("13900000008", "9" * 3000))
    assert (huge.caller, huge.outcome) == ("", CallOutcome.ABANDONED)


@pytest.mark.parametrize(
    "text",
    [
        ANSWERED.replace("13800138000", "138,0013"),  # a comma from the caller
        ANSWERED.replace("13800138000", "1380\n0138"),  # a newline from the caller
        ANSWERED.replace("13800138000", "1380|end|x"),  # a field separator from the caller
        ANSWERED.replace("|queue|", "|talking|"),  # not a stage
        ANSWERED.replace("kunming-1772442000.7", "../../etc/passwd"),
        ANSWERED.replace("v1|", "v2|"),
        ANSWERED + "\nv1|extra|end",
        ANSWERED.replace("|1001|", "|12|"),  # not a seat id
    ],
)
def test_a_line_that_is_not_ours_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_call_line(text)


def test_a_line_cut_short_is_incomplete() -> None:
    for cut in (ANSWERED[:20], ANSWERED[:-1], ""):
        with pytest.raises(Incomplete):
            parse_call_line(cut)
    assert is_call_file("fc-1772442000-kunming-1772442000.7.call")
    assert not is_call_file("fc-1772442000-a/b.call") and not is_call_file("fc-x-k.call")


async def test_ingestion_is_idempotent_merges_and_waits_for_whole_lines(tmp_path: Path) -> None:
    store = MemoryStore()
    folder = tmp_path / "fallback"
    folder.mkdir()
    (folder / "fc-1772442000-kunming-1772442000.7.call").write_text(ANSWERED)
    (folder / "fc-1772442100-kunming-1772442100.8.call").write_text(GREETING)
    cut = folder / "fc-1772442200-kunming-1772442200.9.call"
    cut.write_text(MESSAGE[:30])  # Asterisk still writing it, or the disk was full
    (folder / "fc-1772442300-kunming-1772442300.1.call").write_text("v1|" + "9" * 600 + "|end")  # not ours
    # a call the controller saw (it died, then a resync ended it lost_track): the line finishes it
    first = CallTracker(store, "kunming", FakeClock())
    await first.channel_created("kunming-1772442100.8", "PJSIP/t", "13900000008", "", "12345")
    await first.reconcile([], first.mark() + 1)
    await first.flush_dirty()
    assert store.records["kunming-1772442100.8"].outcome is CallOutcome.LOST_TRACK
    assert store.records["kunming-1772442100.8"].ended_at_estimated

    tracker = CallTracker(store, "kunming", FakeClock())
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    assert await ingester.scan() == 2
    cut.write_text(MESSAGE)  # whole now
    assert await ingester.scan() == 1
    assert await ingester.scan() == 0
    assert await FallbackIngester(tmp_path, tracker, "kunming").scan() == 0  # a restarted scanner
    await tracker.flush_dirty()
    assert await FallbackIngester(tmp_path, CallTracker(store, "kunming", FakeClock()), "kunming").scan() == 0
    answered = store.records["kunming-1772442000.7"]
    assert (answered.outcome, answered.seat, answered.caller) == (CallOutcome.ANSWERED, "1001", "13800138000")
    assert answered.tags == {"route": "fallback", "fallback_stage": "queue"}
    gone = store.records["kunming-1772442100.8"]
    assert gone.outcome is CallOutcome.ABANDONED and gone.hangup_cause == "fallback route: hung up in the greeting"
    assert not gone.ended_at_estimated  # the line's own hang-up time replaced the estimate
    assert store.records["kunming-1772442200.9"].outcome is CallOutcome.FALLBACK
    assert len(store.records) == 3


async def test_the_controllers_own_ended_record_stands(tmp_path: Path) -> None:
    store = MemoryStore()
    tracker = CallTracker(store, "kunming", FakeClock())
    await tracker.channel_created("kunming-1772442000.7", "PJSIP/t", "13800138000", "", "12345")
    await tracker.set_outcome("kunming-1772442000.7", CallOutcome.VOICEMAIL)
    await tracker.hung_up("kunming-1772442000.7", "normal")
    folder = tmp_path / "fallback"
    folder.mkdir()
    (folder / "fc-1772442000-kunming-1772442000.7.call").write_text(ANSWERED)
    assert await FallbackIngester(tmp_path, tracker, "kunming").scan() == 0
    await tracker.flush_dirty()
    assert store.records["kunming-1772442000.7"].outcome is CallOutcome.VOICEMAIL


async def test_a_line_cut_short_long_ago_still_leaves_a_record(tmp_path: Path) -> None:
    """A full disk cut Asterisk's write: after a while the call is recorded from the file's name."""
    store = MemoryStore()
    tracker = CallTracker(store, "kunming", FakeClock())
    folder = tmp_path / "fallback"
    folder.mkdir()
    cut = folder / "fc-1772442000-kunming-1772442000.7.call"
    cut.write_text(ANSWERED[:25])
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    assert await ingester.scan() == 0  # maybe still being written
    os.utime(cut, (time.time() - 3600, time.time() - 3600))
    assert await ingester.scan() == 1
    assert await FallbackIngester(tmp_path, tracker, "kunming").scan() == 0  # once
    await tracker.flush_dirty()
    record = store.records["kunming-1772442000.7"]
    assert record.outcome is CallOutcome.LOST_TRACK and not record.is_open
    assert record.started_at == datetime.fromtimestamp(1772442000, UTC)
    assert record.tags["fallback_stage"] == "cut_short"


async def test_a_call_line_never_touches_another_platforms_record(tmp_path: Path) -> None:
    """As for hang-up lines (tests/unit/test_end_lines.py): the province's platforms share the
    records' keys, so a ``.call`` line in this spool naming another platform's call (a copied
    file, a local user who can write the spool) is refused as not ours, left where it is and
    read once; the other platform's record is untouched."""
    store = MemoryStore()
    province = CallTracker(store, "province", FakeClock())
    other = "kunming-1772442000.7"  # the id the line names, but a province call in the store
    await province.channel_created(other, "PJSIP/t", "13900139000", "", "12345")
    await province.flush_dirty()
    folder = tmp_path / "fallback"
    folder.mkdir()
    line = folder / "fc-1772442000-kunming-1772442000.7.call"
    line.write_text(ANSWERED)
    ingester = FallbackIngester(tmp_path, CallTracker(store, "kunming", FakeClock()), "kunming")
    assert await ingester.scan() == 0
    assert await ingester.scan() == 0
    assert store.records[other].platform == "province" and store.records[other].is_open
    assert line.exists()
