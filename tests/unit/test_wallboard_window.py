"""The rolling windows' running sums (wallboard/today.py) against the old full sum: on every push
the old TodayTally summed every call kept over the last ``keep_s`` per rule and queue; the new one
keeps per-span, per-queue sums updated as calls are counted and as they leave the span. Over any
sequence of counted calls (out of order, across 00:00 China time, several queues and spans), the
windows must give the same counts and rates as the full sum."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from calls.model import CallOutcome, CallRecord, CallState
from wallboard.today import ALL, Counts, TodayTally, counts_of

START = datetime(2026, 3, 2, 15, 50, tzinfo=UTC)  # 23:50 China time: the run crosses 00:00
QUEUES = ("general", "water", "power")
SPANS = (60.0, 300.0, 900.0)
RATES = ("service_level_15s", "answer_rate", "abandon_rate", "satisfaction_rate")


@dataclass
class FullSum:
    """The old implementation: a deque of every counted call of the last keep_s, summed on ask."""

    keep_s: float
    counted: set[str] = field(default_factory=set)
    recent: deque[tuple[datetime, str, Counts]] = field(default_factory=deque)

    def add(self, record: CallRecord, now: datetime) -> None:
        counts = counts_of(record)
        if counts is None or record.queued_at is None or record.call_id in self.counted:
            return
        if record.queued_at >= now - timedelta(seconds=self.keep_s):
            self.counted.add(record.call_id)
            self.recent.append((record.queued_at, record.queue, counts))

    def window(self, queue: str, now: datetime, span_s: float) -> Counts:
        horizon = now - timedelta(seconds=self.keep_s)
        while self.recent and self.recent[0][0] < horizon:
            self.recent.popleft()
        since = now - timedelta(seconds=span_s)
        total = Counts()
        for at, name, counts in self.recent:
            if at >= since and queue in (ALL, name):
                total.add(counts)
        return total


call = st.tuples(
    # seconds before now it entered the queue (some beyond keep_s; whole minutes hit the edges)
    st.one_of(st.integers(0, 1500), st.integers(0, 25).map(lambda m: 60 * m)),
    st.one_of(st.just(0), st.integers(0, 999_999)),  # and microseconds
    st.sampled_from(QUEUES),
    st.one_of(st.none(), st.floats(0, 120, allow_nan=False)),  # wait until a seat answered
    st.one_of(st.none(), st.integers(1, 5)),  # survey score
    st.sampled_from([CallOutcome.ABANDONED, CallOutcome.VOICEMAIL]),
    st.booleans(),  # ended
)
step = st.one_of(
    st.tuples(st.just("call"), call),
    # the clock moves on (never back)
    st.tuples(st.just("tick"), st.one_of(st.integers(0, 400), st.sampled_from((60, 240, 300)))),
    st.tuples(st.just("push"), st.sampled_from((*QUEUES, ALL)), st.sampled_from(SPANS)),
    st.tuples(st.just("again"), st.integers(0, 50)),  # an earlier call's record seen again
)


Spec = tuple[int, int, str, float | None, int | None, CallOutcome, bool]


def make(number: int, now: datetime, spec: Spec) -> CallRecord:
    ago_s, micro, queue, wait_s, score, outcome, ended = spec
    queued = now - timedelta(seconds=ago_s, microseconds=micro)
    answered = queued + timedelta(seconds=wait_s) if wait_s is not None else None
    return CallRecord(
        call_id=f"c{number}",
        platform="kunming",
        state=CallState.ENDED if ended else CallState.IN_IVR,
        started_at=queued - timedelta(seconds=20),
        queue=queue,
        queued_at=queued,
        seat_answered_at=answered,
        ended_at=(answered or queued) + timedelta(seconds=30) if ended else None,
        outcome=outcome,
        survey_score=score,
    )


def assert_same(new: Counts, old: Counts) -> None:
    assert (new.offered, new.answered, new.within_15s, new.abandoned, new.surveyed, new.satisfied) == (
        old.offered,
        old.answered,
        old.within_15s,
        old.abandoned,
        old.surveyed,
        old.satisfied,
    )
    assert [new.rate(r) for r in RATES] == [old.rate(r) for r in RATES]
    # the old float sum carries rounding; the running sum counts whole microseconds
    assert abs(new.wait_answered_s - old.wait_answered_s) < 1e-6


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=80), st.sampled_from((900.0, 1200.0)))
def test_running_windows_equal_the_full_sum(steps: list[tuple[object, ...]], keep_s: float) -> None:
    tally, full = TodayTally(keep_s=keep_s), FullSum(keep_s)
    now, records = START, list[CallRecord]()
    for kind, *args in steps:
        if kind == "call":
            rec = make(len(records), now, args[0])  # type: ignore[arg-type]
            records.append(rec)
            tally.add(rec, now)
            full.add(rec, now)
        elif kind == "tick":
            now += timedelta(seconds=args[0])  # type: ignore[arg-type]
        elif kind == "again" and records:
            rec = records[args[0] % len(records)]  # type: ignore[operator]
            tally.add(rec, now)
            full.add(rec, now)
        elif kind == "push":
            queue, span = args
            assert_same(tally.window(queue, now, span), full.window(queue, now, span))  # type: ignore[arg-type]
    for queue in (*QUEUES, ALL):
        for span in SPANS:
            assert_same(tally.window(queue, now, span), full.window(queue, now, span))


def test_a_span_asked_late_starts_from_the_calls_kept() -> None:
    tally = TodayTally(keep_s=900)
    now = START
    for number, ago in enumerate((10, 100, 400, 800)):
        tally.add(make(number, now, (ago, 0, "water", 5.0, 5, CallOutcome.ABANDONED, True)), now)
    assert tally.window("water", now, 300).offered == 2  # 10 s and 100 s ago
    assert tally.window(ALL, now, 900).offered == 4
    later = now + timedelta(seconds=250)
    assert tally.window("water", later, 300).offered == 1  # the 100 s one left the 5 min span
    assert tally.window("water", later, 900).offered == 3  # the 800 s one left the 15 min span
    assert tally.window("general", later, 300).offered == 0
