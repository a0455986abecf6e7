"""Hang-ups Asterisk writes down (calls/end_lines.py) and the spool's line files' lifecycle:
ingested, saved, then deleted — never before the save, idempotent across a crash in between."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from calls.end_lines import (
    ORPHAN_MIN_AGE_S,
    Incomplete,
    NotOurs,
    is_end_file,
    merged_end,
    orphan_record,
    parse_end_line,
)
from calls.fallback import FallbackIngester
from calls.model import CallOutcome
from calls.tracker import CallTracker
from tests.unit.test_asterisk_conf import render
from tests.unit.test_calls import T0, FakeClock, MemoryStore
from tests.unit.test_fallback_calls import ANSWERED

CALL = "kunming-1772442000.7"
END_AT = T0 + timedelta(seconds=42.25)


def late_clock() -> FakeClock:
    """A controller's clock as old a line's end as a line must be to make its call's record."""
    clock = FakeClock()
    clock.now = END_AT + timedelta(seconds=ORPHAN_MIN_AGE_S)
    return clock


LINE = f"e1|{CALL}|{END_AT.timestamp():.3f}|16|end"


def test_a_line_says_when_and_why() -> None:
    end = parse_end_line(LINE)
    assert (end.uniqueid, end.ended_at, end.cause) == (CALL, END_AT, "Normal Clearing")
    assert parse_end_line(f"e1|{CALL}|1772442000||end\n").cause == "Unknown"  # whole seconds, no cause
    assert parse_end_line(f"e1|{CALL}|1772442000|99|end").cause == "cause 99"
    assert is_end_file(f"ce-{CALL}.end") and not is_end_file("ce-a/b.end") and not is_end_file(f"ce-{CALL}.call")


@pytest.mark.parametrize(
    "text",
    [
        LINE.replace("|16|", "|16\n|"),
        LINE.replace("|16|", "|1,6|"),
        LINE.replace(CALL, "../../etc/passwd"),
        LINE.replace("e1|", "e2|"),
        LINE.replace("|16|", "|1234|"),
        LINE + "\ne1|x|1772442000|16|end",
        LINE.replace(f"{END_AT.timestamp():.3f}", "soon"),
        # e2: the caller's field is digits and "+" only, at most 32; e1 has none, e2 always one
        LINE.replace("e1|", "e2|").replace("|end", "|1380013800a|end"),
        LINE.replace("e1|", "e2|").replace("|end", "|138 0013|end"),
        LINE.replace("e1|", "e2|").replace("|end", "|138,0013|end"),
        LINE.replace("e1|", "e2|").replace("|end", "|138\n0013|end"),
        LINE.replace("e1|", "e2|").replace("|end", f"|{'1' * 33}|end"),
        LINE.replace("e1|", "e2|").replace("|end", "|138|0013|end"),
        LINE.replace("|end", "|13800138000|end"),
        LINE.replace("e1|", "e3|").replace("|end", "|13800138000|end"),
    ],
)
def test_a_line_that_is_not_ours_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_end_line(text)


def test_an_e2_line_names_the_caller_and_e1_lines_are_still_read() -> None:
    e2 = LINE.replace("e1|", "e2|").replace("|end", "|13800138000|end")
    end = parse_end_line(e2 + "\n")
    assert (end.uniqueid, end.ended_at, end.cause, end.caller) == (CALL, END_AT, "Normal Clearing", "13800138000")
    assert parse_end_line(e2.replace("|13800138000|", "|+8613800138000|")).caller == "+8613800138000"
    assert parse_end_line(e2.replace("|13800138000|", f"|{'9' * 32}|")).caller == "9" * 32
    assert parse_end_line(e2.replace("|13800138000|", "||")).caller == ""  # withheld
    # what FILTER(0-9+) leaves of a name that is no number: the line counts, the caller does not
    for odd in ("138+0013", "+", "++86", f"+{'1' * 31}"[:-1] + "+"):
        assert parse_end_line(e2.replace("|13800138000|", f"|{odd}|")).caller == "", odd
    assert parse_end_line(LINE).caller == ""  # e1: an Asterisk still on the older dialplan


def test_a_line_cut_short_is_incomplete() -> None:
    for cut in (LINE[:10], LINE[:-1], ""):
        with pytest.raises(Incomplete):
            parse_end_line(cut)


async def _talking(store: MemoryStore) -> CallTracker:
    """A call a seat answered; the controller saved it, then died (SIGKILL)."""
    tracker = CallTracker(store, "kunming", FakeClock())
    await tracker.channel_created(CALL, "PJSIP/t", "13800138000", "", "12345")
    await tracker.amend(CALL, {"seat": "1001", "seat_answered_at": T0, "outcome": CallOutcome.ANSWERED})
    await tracker.flush_dirty()
    return tracker


async def test_a_missed_hang_up_ends_with_the_real_time_not_an_estimate(tmp_path: Path) -> None:
    store = MemoryStore()
    await _talking(store)
    folder = tmp_path / "fallback"
    folder.mkdir()
    line = folder / f"ce-{CALL}.end"
    line.write_text(LINE)
    os.utime(line, (time.time() - 30, time.time() - 30))  # written while the controller was down
    restarted = CallTracker(store, "kunming", FakeClock())  # its first scan comes before it adopts open records
    ingester = FallbackIngester(tmp_path, restarted, "kunming")
    assert await ingester.scan() == 1
    assert line.exists()  # the record is not saved yet: the line stays
    await restarted.flush_dirty()
    assert await ingester.scan() == 0
    assert not line.exists()  # saved, then deleted
    ended = store.records[CALL]
    assert (ended.ended_at, ended.ended_at_estimated, ended.hangup_cause) == (END_AT, False, "Normal Clearing")
    assert (ended.outcome, ended.seat) == (CallOutcome.ANSWERED, "1001")
    assert ended.tags["end_written_by"] == "asterisk"


async def test_an_estimated_end_is_corrected_and_the_controllers_own_end_stands(tmp_path: Path) -> None:
    store = MemoryStore()
    tracker = await _talking(store)
    await tracker.reconcile([], tracker.mark() + 1)  # a restart noticed the channel gone
    await tracker.flush_dirty()
    assert store.records[CALL].ended_at_estimated
    assert store.records[CALL].outcome is CallOutcome.ANSWERED
    corrected = merged_end(store.records[CALL], parse_end_line(LINE))
    assert corrected is not None
    assert (corrected.ended_at, corrected.ended_at_estimated, corrected.hangup_cause) == (
        END_AT,
        False,
        "Normal Clearing",
    )
    assert merged_end(corrected, parse_end_line(LINE)) is None  # once
    # a call with no outcome that ended unseen was lost_track; its real end makes it abandoned
    lost = await CallTracker(store, "kunming", FakeClock()).channel_created("k-2", "PJSIP/t", "139", "", "12345")
    unseen = merged_end(lost, parse_end_line(LINE.replace(CALL, "k-2")))
    assert unseen is not None and unseen.outcome is CallOutcome.ABANDONED
    # Asterisk's clock behind the record's: never ended before the seat answered
    early = merged_end(
        store.records[CALL].model_copy(update={"seat_answered_at": END_AT + timedelta(seconds=5)}), parse_end_line(LINE)
    )
    assert early is not None and early.ended_at == END_AT + timedelta(seconds=5)
    # the controller heard the hang-up itself: the line adds nothing, and goes
    heard = CallTracker(store, "kunming", FakeClock())
    await heard.channel_created("k-3", "PJSIP/t", "139", "", "12345")
    await heard.hung_up("k-3", "Normal Clearing")
    await heard.flush_dirty()
    folder = tmp_path / "fallback"
    folder.mkdir()
    (folder / "ce-k-3.end").write_text(LINE.replace(CALL, "k-3"))
    assert await FallbackIngester(tmp_path, heard, "kunming").scan() == 0
    assert not (folder / "ce-k-3.end").exists()
    assert store.records["k-3"].ended_at == T0 and store.records["k-3"].tags == {}


async def test_a_live_call_is_left_to_its_own_hang_up_event(tmp_path: Path) -> None:
    store = MemoryStore()
    tracker = await _talking(store)
    folder = tmp_path / "fallback"
    folder.mkdir()
    line = folder / f"ce-{CALL}.end"
    line.write_text(LINE)
    os.utime(line, (time.time() - 3600, time.time() - 3600))
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    assert await ingester.scan() == 0 and line.exists()  # the AMI Hangup follows the line
    assert tracker.get_live(CALL) is not None
    # the event was missed: the resync after the next AMI login ends it (estimated) …
    await tracker.reconcile([], tracker.mark() + 1)
    assert await ingester.scan() == 1  # … and the line puts the real end in
    await tracker.flush_dirty()
    assert ingester.retire_saved() == 0 and not line.exists()
    ended = store.records[CALL]
    assert (ended.ended_at, ended.ended_at_estimated, ended.outcome) == (END_AT, False, CallOutcome.ANSWERED)


async def test_a_crash_between_save_and_delete_writes_nothing_twice(tmp_path: Path) -> None:
    store = MemoryStore()
    await _talking(store)
    folder = tmp_path / "fallback"
    folder.mkdir()
    end = folder / f"ce-{CALL}.end"
    end.write_text(LINE)
    fallback = folder / "fc-1772442000-kunming-1772442000.8.call"
    fallback.write_text(ANSWERED.replace("1772442000.7", "1772442000.8"))
    message = folder / "fb2-1772442000-kunming-1772442000.8.wav"
    message.write_bytes(b"RIFF")
    (folder / "fb2-1772442000-kunming-1772442000.8.caller").write_text("13800138000")
    first = CallTracker(store, "kunming", FakeClock())
    assert await FallbackIngester(tmp_path, first, "kunming").scan() == 2  # the message, the end
    await first.flush_dirty()
    saved = dict(store.records)
    # the controller died here: saved, lines not yet deleted
    assert end.exists() and fallback.exists()
    again = CallTracker(store, "kunming", FakeClock())
    ingester = FallbackIngester(tmp_path, again, "kunming")
    assert await ingester.scan() == 0  # nothing written twice …
    assert store.records == saved
    assert not end.exists() and not fallback.exists()  # … and the lines go
    assert message.exists() and message.with_suffix(".caller").exists()  # evidence stays
    assert await ingester.scan() == 0


async def test_a_store_that_is_down_keeps_the_lines(tmp_path: Path) -> None:
    store = MemoryStore()
    await _talking(store)
    folder = tmp_path / "fallback"
    folder.mkdir()
    end = folder / f"ce-{CALL}.end"
    end.write_text(LINE)
    os.utime(end, (time.time() - 30, time.time() - 30))
    (folder / "ce-k-9.end").write_text("e1|k-9|soon|16|end")  # not ours: left alone, read once
    tracker = CallTracker(store, "kunming", FakeClock())
    await tracker.load_open()
    await tracker.reconcile([], tracker.mark() + 1)  # the restart's resync: the channel is gone
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    store.down = True
    assert await ingester.scan() == 1  # ended in memory …
    assert await tracker.flush_dirty() == 1
    assert await ingester.scan() == 0
    assert end.exists()  # … but not saved: the line stays
    store.down = False
    await tracker.flush_dirty()
    assert ingester.retire_saved() == 0
    assert not end.exists()
    assert (folder / "ce-k-9.end").exists()
    assert store.records[CALL].ended_at == datetime.fromtimestamp(END_AT.timestamp(), UTC)


def test_every_context_a_caller_hangs_up_in_writes_the_line() -> None:
    """The h extension of each context a caller's channel can end in writes ``ce-<uniqueid>.end``
    (Asterisk's values only, digits filtered); the fallback route's own line stays its own."""
    extensions = render()["extensions.conf"]
    write = (
        "Set(FILE(/srv/hotline/var/spool/fallback/ce-${UNIQUEID}.end)="
        "e2|${UNIQUEID}|${FILTER(0-9.,${STRFTIME(,,%s.%3q)})}|${FILTER(0-9,${HANGUPCAUSE})}"
        "|${FILTER(0-9+,${CALLERID(num)}):0:32}|end)"
    )
    contexts = {name: body for name, body in re.findall(r"^\[([^\]]+)\]\n(.*?)(?=^\[|\Z)", extensions, re.M | re.S)}
    writing = sorted(name for name, body in contexts.items() if write in body)
    assert writing == sorted(
        ["hotline-entry", "hotline-hold", "hotline-after-seat", "hotline-transfer", "hotline-route"]
    ), writing
    for name in writing:
        h = contexts[name].split("exten => h,1,")[1]
        assert write in h, name  # in the h extension, not on the call's path
        # never by a masquerade's husk: its own uniqueid would make a phantom record
        assert f'ExecIf($["${{CHANNEL:0:10}}" != "Surrogate/"]?{write})' in h, name
    entry_h = contexts["hotline-entry"].split("exten => h,1,")[1]
    assert entry_h.index("fc-") < entry_h.index("Goto(done)") < entry_h.index("ce-")  # one line per call
    assert "Set(FILE(${message}.done)=done)" in entry_h


async def test_a_line_ends_only_this_platforms_call_and_only_the_one_its_file_names(tmp_path: Path) -> None:
    """Found (session 7 review): call records share one Redis across a province (``call:<id>``
    keys, not per platform) and the ingester took whatever record the line's uniqueid named. A
    line in this platform's spool (a copied file, a local user who can write the spool) ended
    another platform's call — shown ended there, and counted as this platform's missed call.
    A line also ended the call its content named, whatever call its file was named after. Now
    both are refused as not ours, left where they are, the records untouched."""
    store = MemoryStore()
    province = CallTracker(store, "province", FakeClock())
    other = "province-1772442000.3"
    await province.channel_created(other, "PJSIP/t", "13900139000", "", "12345")
    await province.flush_dirty()
    await _talking(store)
    folder = tmp_path / "fallback"
    folder.mkdir()
    foreign = folder / f"ce-{other}.end"
    foreign.write_text(LINE.replace(CALL, other))
    renamed = folder / "ce-kunming-1772442000.9.end"  # its content names CALL
    renamed.write_text(LINE)
    os.utime(renamed, (time.time() - 30, time.time() - 30))
    restarted = CallTracker(store, "kunming", FakeClock())
    ingester = FallbackIngester(tmp_path, restarted, "kunming")
    assert await ingester.scan() == 0
    await restarted.flush_dirty()
    assert store.records[other].is_open and store.records[CALL].is_open
    assert foreign.exists() and renamed.exists()


async def test_a_line_cut_short_long_ago_is_deleted_not_read_for_ever(tmp_path: Path) -> None:
    """Found (session 7 review): a ``.end`` line a full disk cut short stayed in the spool for
    ever and was opened and read again at every scan (every 5 s), unlike a cut ``.call`` line.
    A cut line says nothing (the record ends estimated, as before the lines): deleted once it is
    older than any write in progress; a fresh one is left to be finished."""
    store = MemoryStore()
    await _talking(store)
    folder = tmp_path / "fallback"
    folder.mkdir()
    old = folder / f"ce-{CALL}.end"
    old.write_text(LINE[:20])
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    fresh = folder / "ce-kunming-1772442000.9.end"
    fresh.write_text(LINE.replace(CALL, "kunming-1772442000.9")[:20])
    ingester = FallbackIngester(tmp_path, CallTracker(store, "kunming", FakeClock()), "kunming")
    assert await ingester.scan() == 0
    assert not old.exists() and fresh.exists()
    assert store.records[CALL].is_open  # nothing learnt from a cut line


ORPHAN = "kunming-1772442000.11"
ORPHAN_LINE = f"e2|{ORPHAN}|{END_AT.timestamp():.3f}|16|13800138011|end"


def _orphan_line(tmp_path: Path, text: str = ORPHAN_LINE, name: str = ORPHAN) -> Path:
    folder = tmp_path / "fallback"
    folder.mkdir(exist_ok=True)
    line = folder / f"ce-{name}.end"
    line.write_text(text)
    return line


def test_an_orphan_record_says_what_is_known() -> None:
    made = orphan_record(parse_end_line(ORPHAN_LINE), "kunming")
    assert made is not None
    assert (made.call_id, made.platform, made.caller, made.state) == (ORPHAN, "kunming", "13800138011", "ended")
    assert (made.started_at, made.ended_at, made.ended_at_estimated) == (T0, END_AT, False)  # start: the uniqueid's
    assert (made.outcome, made.hangup_cause, made.revision) == (CallOutcome.LOST_TRACK, "Normal Clearing", 0)
    assert made.tags["end_written_by"] == "asterisk"
    with pytest.raises(NotOurs):  # another platform's Asterisk named it
        orphan_record(parse_end_line(ORPHAN_LINE.replace("kunming-", "province-")), "kunming")
    assert orphan_record(parse_end_line(ORPHAN_LINE.replace(ORPHAN, "offer-3f2a")), "kunming") is None
    # Asterisk's clock behind by a second: never a negative duration
    early = orphan_record(parse_end_line(f"e1|{ORPHAN}|1772441999.5|16|end"), "kunming")
    assert early is not None and early.started_at == early.ended_at


async def test_a_line_whose_call_has_no_record_makes_exactly_one(tmp_path: Path) -> None:
    """The controller was SIGKILLed before its writer saved anything of the call: its hang-up
    line makes the record (never lost), once, and goes only once it is saved."""
    store = MemoryStore()
    line = _orphan_line(tmp_path)
    first = CallTracker(store, "kunming", late_clock())
    ingester = FallbackIngester(tmp_path, first, "kunming")
    with capture_logs() as logs:
        assert await ingester.scan() == 1
    assert await ingester.scan() == 0  # read once
    assert line.exists()  # not saved yet
    made = [entry for entry in logs if entry["event"] == "calls.recorded_from_end_line"]
    assert len(made) == 1 and made[0]["caller"] == "138****8011"
    assert "13800138011" not in repr(logs)
    await first.flush_dirty()
    saved = dict(store.records)
    assert saved[ORPHAN].caller == "13800138011" and saved[ORPHAN].outcome is CallOutcome.LOST_TRACK
    # killed between the save and the delete: the next run reads the line again, writes nothing
    again = CallTracker(store, "kunming", late_clock())
    rerun = FallbackIngester(tmp_path, again, "kunming")
    assert await rerun.scan() == 0
    assert store.records == saved and len(store.records) == 1
    assert not line.exists()
    # an e1 line (an Asterisk on the older dialplan): a record too, without a number
    old = _orphan_line(tmp_path, f"e1|kunming-1772442000.12|{END_AT.timestamp():.3f}|17|end", "kunming-1772442000.12")
    assert await rerun.scan() == 1
    await again.flush_dirty()
    assert rerun.retire_saved() == 0 and not old.exists()
    assert (store.records["kunming-1772442000.12"].caller, store.records["kunming-1772442000.12"].hangup_cause) == (
        "",
        "User busy",
    )


async def test_a_stored_record_wins_over_one_made_from_a_line(tmp_path: Path) -> None:
    """The killed controller's write landed after the line was read (or another run saved the
    call meanwhile): the stored record is not overwritten; the line is read again and ends it."""
    store = MemoryStore()
    line = _orphan_line(tmp_path)
    tracker = CallTracker(store, "kunming", late_clock())
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    assert await ingester.scan() == 1  # no record anywhere: one is made, not saved yet
    late = CallTracker(store, "kunming", FakeClock())
    await late.channel_created(ORPHAN, "PJSIP/t", "13800138011", "", "12345")
    await late.amend(ORPHAN, {"seat": "1001", "seat_answered_at": T0, "outcome": CallOutcome.ANSWERED})
    await late.flush_dirty()
    stored = store.records[ORPHAN]
    await tracker.flush_dirty()
    assert store.records[ORPHAN] == stored  # not overwritten
    assert ingester.retire_saved() == 0 and line.exists()  # the line is kept for it
    assert await ingester.scan() == 1  # read again: it ends the stored record
    await tracker.flush_dirty()
    assert ingester.retire_saved() == 0 and not line.exists()
    ended = store.records[ORPHAN]
    assert (ended.state, ended.ended_at, ended.outcome, ended.seat) == ("ended", END_AT, CallOutcome.ANSWERED, "1001")
    assert ended.revision > stored.revision


async def test_an_orphan_line_of_another_platform_is_left_alone(tmp_path: Path) -> None:
    store = MemoryStore()
    other = _orphan_line(tmp_path, ORPHAN_LINE.replace("kunming-", "province-"), "province-1772442000.11")
    originated = _orphan_line(tmp_path, ORPHAN_LINE.replace(ORPHAN, "offer-3f2a"), "offer-3f2a")
    tracker = CallTracker(store, "kunming", FakeClock())
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    assert await ingester.scan() == 0
    await tracker.flush_dirty()
    assert await ingester.scan() == 0
    assert store.records == {}
    assert other.exists()  # another platform's call: left where it is
    assert not originated.exists()  # a channel the controller originated: nothing to record, as before


async def test_a_young_line_makes_no_record_until_its_call_could_be_lost(tmp_path: Path) -> None:
    """A short call's line can be scanned before its own AMI events are handled: no record of its
    own until it is ORPHAN_MIN_AGE_S old (kept and read again meanwhile); the call's events first:
    the controller's record, ended by them, and no record from the line."""
    store = MemoryStore()
    line = _orphan_line(tmp_path)
    clock = FakeClock()
    clock.now = END_AT + timedelta(seconds=1)
    tracker = CallTracker(store, "kunming", clock)
    ingester = FallbackIngester(tmp_path, tracker, "kunming")
    with capture_logs() as logs:
        assert await ingester.scan() == 0
        await tracker.flush_dirty()
        assert ingester.retire_saved() == 0 and line.exists() and store.records == {}  # kept
        clock.advance(ORPHAN_MIN_AGE_S)
        assert await ingester.scan() == 1  # now old enough: the call's record from its line
    assert [e["event"] for e in logs].count("calls.recorded_from_end_line") == 1
    # another young line whose call's events come before it is old enough
    other = "kunming-1772442000.13"
    young = _orphan_line(tmp_path, ORPHAN_LINE.replace(ORPHAN, other), other)
    clock.now = END_AT + timedelta(seconds=1)
    assert await ingester.scan() == 0
    await tracker.channel_created(other, "PJSIP/trunk-9", "13800138011", "", "12345")
    await tracker.hung_up(other, "Normal Clearing")
    await tracker.flush_dirty()
    clock.advance(ORPHAN_MIN_AGE_S)
    await ingester.scan()
    await tracker.flush_dirty()
    ingester.retire_saved()
    assert store.records[other].outcome is not CallOutcome.LOST_TRACK and not young.exists()
