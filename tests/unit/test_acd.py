"""The seat state machine and the queue figures (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from acd.seat import IllegalSeatTransition, Seat, SeatState, missed_offer, transition
from acd.stats import queue_stats
from calls.model import CallOutcome, CallRecord, CallState

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_seat_day() -> None:
    seat = Seat("1001")
    seat = transition(seat, SeatState.READY, T0)
    seat = transition(seat, SeatState.RINGING, T0)
    seat = transition(seat, SeatState.ON_CALL, T0)
    assert seat.calls_taken == 1
    seat = transition(seat, SeatState.WRAP_UP, T0)
    seat = transition(seat, SeatState.NOT_READY, T0, reason="break")
    assert (seat.state, seat.reason) == (SeatState.NOT_READY, "break")
    seat = transition(seat, SeatState.READY, T0 + timedelta(minutes=10))
    assert seat.reason == ""
    assert seat.since == T0 + timedelta(minutes=10)
    seat = transition(seat, SeatState.LOGGED_OUT, T0)
    assert not seat.logged_in


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (SeatState.LOGGED_OUT, SeatState.ON_CALL),
        (SeatState.LOGGED_OUT, SeatState.RINGING),
        (SeatState.NOT_READY, SeatState.RINGING),
        (SeatState.ON_CALL, SeatState.LOGGED_OUT),  # finish the call first
        (SeatState.READY, SeatState.READY),
    ],
)
def test_illegal_moves_are_refused(start: SeatState, target: SeatState) -> None:
    with pytest.raises(IllegalSeatTransition, match=f"{start.value} → {target.value}"):
        transition(Seat("1001", state=start), target, T0)


def test_missed_offers_set_the_seat_not_ready_after_n() -> None:
    seat = Seat("1001", state=SeatState.READY)
    seat = missed_offer(seat, T0, max_missed=2)
    assert (seat.state, seat.missed_in_a_row) == (SeatState.READY, 1)
    seat = missed_offer(seat, T0, max_missed=2)
    assert (seat.state, seat.reason, seat.missed_in_a_row) == (SeatState.NOT_READY, "no answer", 2)
    seat = transition(transition(seat, SeatState.READY, T0), SeatState.ON_CALL, T0)
    assert seat.missed_in_a_row == 0


def record(
    n: int, wait_s: float | None, outcome: CallOutcome | None, talk_s: float = 60, open_: bool = False
) -> CallRecord:
    queued = T0 + timedelta(minutes=n)
    answered = queued + timedelta(seconds=wait_s) if wait_s is not None else None
    ended = None if open_ else (answered or queued) + timedelta(seconds=talk_s if answered else 20)
    return CallRecord(
        call_id=f"k-{n}",
        platform="kunming",
        started_at=queued - timedelta(seconds=10),
        state=CallState.IN_IVR if open_ else CallState.ENDED,
        queue="general",
        queued_at=queued,
        seat_answered_at=answered,
        ended_at=ended,
        outcome=outcome,
    )


def test_queue_figures() -> None:
    records = [
        record(0, 5, CallOutcome.ANSWERED, talk_s=100),
        record(1, 30, CallOutcome.ANSWERED, talk_s=200),
        record(2, None, CallOutcome.ABANDONED),
        record(3, None, CallOutcome.VOICEMAIL),  # overflowed to voicemail
        record(4, None, None, open_=True),  # waiting now
        record(-2000, 3, CallOutcome.ANSWERED),  # outside the 24 h window
    ]
    now = T0 + timedelta(minutes=5)
    stats = queue_stats("general", records, now, timedelta(hours=24))
    assert (stats.offered, stats.answered, stats.abandoned, stats.overflowed) == (4, 2, 1, 1)
    assert stats.answered_within_15s == 1
    assert stats.service_level == 0.25
    assert stats.answer_rate == 0.5
    assert stats.abandon_rate == 0.25
    assert stats.average_speed_of_answer_s == 17.5
    assert stats.average_talk_s == 150
    assert stats.waiting_now == 1
    assert stats.longest_wait_now_s == 60
    empty = queue_stats("dialect", records, now, timedelta(hours=24))
    assert (empty.offered, empty.answer_rate, empty.service_level, empty.abandon_rate) == (0, None, None, None)
