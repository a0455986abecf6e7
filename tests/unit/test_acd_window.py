"""The rolling 24 h figures (acd/window.py) against the slow recomputation from records
(acd/stats.py) over the same generated records: every version of a call put in any order, calls
exactly 24 h old and a microsecond either side, a call seen twice, amended after it ended, and a
controller that restarts (a new window seeded from the stored records)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.stats import QueueStats, SeatStats, queue_stats, seat_stats
from acd.window import RollingFigures
from calls.model import CallOutcome, CallRecord, CallState
from calls.store import CountOnce
from calls.tracker import CallTracker

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
QUEUES = ("general", "dialect", "")
SEATS = ("1001", "1002", "")
US = timedelta(microseconds=1)
DAY_US = WINDOW // US
EDGE_US = (0, 1, DAY_US - 1, DAY_US, DAY_US + 1, 2 * DAY_US)  # before the query: exactly 24 h and ± 1 µs


def offsets() -> st.SearchStrategy[int]:
    """How long before NOW something happened, in µs (negative: after NOW, a clock ahead)."""
    return st.one_of(st.sampled_from(EDGE_US), st.integers(-60_000_000, 2 * DAY_US))


@st.composite
def versions(draw: st.DrawFn) -> CallRecord:
    """One version of a call's record: queued or not, answered or not, open or ended."""
    call_id = draw(st.sampled_from([f"k-{i}" for i in range(12)]))
    queued = draw(st.one_of(st.none(), offsets()))
    queued_at = None if queued is None else NOW - queued * US
    waited = draw(st.one_of(st.none(), st.sampled_from([0, 15_000_000, 15_000_001]), st.integers(-5, 10**9)))
    answered_at = None if queued_at is None or waited is None else queued_at + waited * US
    if queued_at is None and draw(st.booleans()):
        answered_at = NOW - draw(offsets()) * US  # a seat's record without a queue (a callback reached)
    ended = draw(st.booleans())
    talk = draw(st.integers(0, 3_600_000_000))
    start = queued_at or answered_at or NOW
    return CallRecord(
        call_id=call_id,
        platform="kunming",
        started_at=start - timedelta(seconds=30),
        state=CallState.ENDED if ended else CallState.IN_IVR,
        ended_at=(answered_at or start) + talk * US if ended else None,
        queue=draw(st.sampled_from(QUEUES)),
        queued_at=queued_at,
        seat=draw(st.sampled_from(SEATS)) if answered_at else "",
        seat_answered_at=answered_at,
        survey_score=draw(st.sampled_from([None, 1, 2, 3])) if answered_at else None,
        outcome=draw(st.sampled_from([None, *CallOutcome])) if ended else None,
    )


def same(got: QueueStats | SeatStats, want: QueueStats | SeatStats) -> None:
    for name, value in asdict(want).items():
        if isinstance(value, float):
            assert getattr(got, name) == pytest.approx(value, rel=1e-9, abs=1e-9), name
        else:
            assert getattr(got, name) == value, name


def check(window: RollingFigures, latest: dict[str, CallRecord], now: datetime) -> None:
    records = list(latest.values())
    for queue in QUEUES:
        want = queue_stats(queue, records, now, WINDOW)
        same(window.queue(queue, now), replace_live(want))
    for seat in SEATS:
        same(window.seat(seat, now), seat_stats(seat, records, now, WINDOW))


def replace_live(stats: QueueStats) -> QueueStats:
    """Who waits now is the ACD's live figure (hotline/figures.py), not the window's."""
    fields = asdict(stats) | {"waiting_now": 0, "longest_wait_now_s": 0.0}
    return QueueStats(**fields)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(versions(), st.integers(0, DAY_US)), max_size=40),
    st.lists(st.integers(0, DAY_US), max_size=3),
)
def test_the_window_counts_as_the_records_do(puts: list[tuple[CallRecord, int]], queries: list[int]) -> None:
    """Versions put in any order (ending out of order, the same call again); the latest version of
    each call is what counts, whenever the window is asked."""
    window, latest = RollingFigures(WINDOW), dict[str, CallRecord]()
    ordered = sorted(puts, key=lambda put: put[1], reverse=True)  # the clock only goes forward
    asks = sorted(queries, reverse=True)
    for record, before_us in ordered:
        at = NOW - before_us * US
        while asks and asks[0] >= before_us:
            check(window, latest, NOW - asks.pop(0) * US)
        window.put(record, at)
        latest[record.call_id] = record
    check(window, latest, NOW)
    check(window, latest, NOW + timedelta(hours=12))  # half of them age out
    check(window, latest, NOW + timedelta(hours=24, microseconds=1))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(versions(), max_size=30),
    st.lists(versions(), max_size=10),
    st.lists(versions(), max_size=10),
)
def test_a_restarted_controller_seeds_from_the_stored_records(
    stored: list[CallRecord], before_seed: list[CallRecord], after_seed: list[CallRecord]
) -> None:
    """The store holds a version of each call (maybe older than the tracker's); calls the tracker
    puts before the seed read returns are newer than their stored version, and so are the ones
    put after it. The seed counts each call once."""
    window = RollingFigures(WINDOW)
    latest = {r.call_id: r for r in stored}
    for record in before_seed:
        window.put(record, NOW)
        latest[record.call_id] = record
    assert window.seed(list({r.call_id: r for r in stored}.values()) + stored, NOW) <= len(stored)
    assert window.seeded
    for record in after_seed:
        window.put(record, NOW)
        latest[record.call_id] = record
    check(window, latest, NOW)


def test_a_call_exactly_24_h_old_counts_and_one_microsecond_more_does_not() -> None:
    window = RollingFigures(WINDOW)
    queued = NOW - WINDOW
    record = CallRecord(
        call_id="k-1", platform="kunming", started_at=queued, state=CallState.ENDED, ended_at=queued + timedelta(60),
        queue="general", queued_at=queued, outcome=CallOutcome.ABANDONED,
    )  # fmt: skip
    window.put(record, NOW)
    window.put(record, NOW)  # seen twice: counted once
    assert window.queue("general", NOW).offered == 1
    assert window.queue("general", NOW).abandoned == 1
    assert window.queue("general", NOW + US).offered == 0
    assert len(window) == 0  # gone from memory too


class _Store:
    async def save(self, record: CallRecord) -> bool:
        return True

    async def save_many(self, records: Sequence[CallRecord], counts: Sequence[CountOnce] = ()) -> dict[str, int]:
        return {}

    async def get(self, call_id: str) -> CallRecord | None:
        return None

    async def recent(self, limit: int) -> list[CallRecord]:
        return []

    async def open_records(self) -> list[CallRecord]:
        return []


async def test_the_tracker_shows_every_version_to_its_watchers() -> None:
    """Answered while still talking, ended, then amended after it ended (a left-at-bridge fix):
    the watcher sees each version, so the figures follow the record without reading Redis."""
    tracker = CallTracker(_Store(), "kunming", clock=lambda: NOW)
    window = RollingFigures(WINDOW)
    tracker.watch(lambda record: window.put(record, NOW))

    def failing(record: CallRecord) -> None:
        raise RuntimeError(record.call_id)

    tracker.watch(failing)  # a failing watcher does not stop the record
    await tracker.channel_created("k-1", "PJSIP/trunk-1", "13900000001", "", "12345")
    await tracker.amend("k-1", {"queue": "general", "queued_at": NOW - timedelta(seconds=20)})
    assert window.queue("general", NOW).offered == 0  # waiting: the ACD's live figure
    await tracker.amend("k-1", {"seat": "1001", "seat_answered_at": NOW - timedelta(seconds=10)})
    assert window.queue("general", NOW).answered == 1
    assert window.seat("1001", NOW).answered == 1
    await tracker.hung_up("k-1", "normal")
    assert window.seat("1001", NOW).talk_s == 10.0
    await tracker.amend_stored("k-1", {"outcome": CallOutcome.ABANDONED, "seat": "", "seat_answered_at": None})
    figures = window.queue("general", NOW)
    assert (figures.offered, figures.answered, figures.abandoned) == (1, 0, 1)
    assert window.seat("1001", NOW).answered == 0
    assert tracker.get_live("k-1") is None
