"""Today's queue figures kept as counters (pure): each call counts once, when its record ends,
in the China day (00:00 Asia/Shanghai, UTC+8 all year) in which it entered the queue. A push
reads the counters, never the records; a new day starts from zero at 00:00 China time.

Besides the day's totals, the finished calls of the last ``keep_s`` are kept one line each so
that alerts can take a rate over a rolling window (e.g. the service level over 15 min). Each span
asked for keeps running sums per queue, updated as calls are counted and as they leave the span
(a min-heap on the time they entered the queue): a push reads O(queues), never the calls.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from acd.stats import SATISFIED_SCORES, SERVICE_LEVEL_S, satisfaction_rate
from calls.model import CallOutcome, CallRecord

CHINA = timezone(timedelta(hours=8), "CST")  # China has one time zone and no daylight saving
ALL = "all"  # the platform's total over its queues


def china_day(at: datetime) -> date:
    return at.astimezone(CHINA).date()


def day_start(now: datetime) -> datetime:
    """00:00 China time of the day ``now`` is in (an aware datetime)."""
    local = now.astimezone(CHINA)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Counts:
    """Offered, answered … of one queue over some span."""

    offered: int = 0
    answered: int = 0
    within_15s: int = 0
    abandoned: int = 0
    wait_answered_s: float = 0.0
    surveyed: int = 0
    satisfied: int = 0

    def add(self, other: Counts) -> None:
        # field by field, spelled out (a call counted into the day's and the all-queues totals);
        # the alert windows keep their own exact sums (_Running)
        self.offered += other.offered
        self.answered += other.answered
        self.within_15s += other.within_15s
        self.abandoned += other.abandoned
        self.wait_answered_s += other.wait_answered_s
        self.surveyed += other.surveyed
        self.satisfied += other.satisfied

    def rate(self, figure: str) -> float | None:
        """A share by name; None while nothing was offered (or nobody answered a survey)."""
        if figure == "satisfaction_rate":
            return satisfaction_rate(self.surveyed, self.satisfied)
        if not self.offered:
            return None
        part = {"service_level_15s": self.within_15s, "answer_rate": self.answered, "abandon_rate": self.abandoned}
        return part[figure] / self.offered

    def view(self) -> dict[str, float | int | None]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "offered": self.offered,
            "answered": self.answered,
            "answered_within_15s": self.within_15s,
            "abandoned": self.abandoned,
            "service_level_15s": rounded(self.rate("service_level_15s")),
            "answer_rate": rounded(self.rate("answer_rate")),
            "abandon_rate": rounded(self.rate("abandon_rate")),
            "satisfaction_rate": rounded(self.rate("satisfaction_rate")),
            "surveyed": self.surveyed,
            "asa_s": round(self.wait_answered_s / self.answered, 1) if self.answered else None,
        }


def counts_of(record: CallRecord) -> Counts | None:
    """What one ended queued call adds (None: it never queued, or has not ended)."""
    if record.queued_at is None or record.is_open:
        return None
    if record.seat_answered_at is not None:
        wait = max((record.seat_answered_at - record.queued_at).total_seconds(), 0.0)
        score = record.survey_score
        return Counts(
            offered=1,
            answered=1,
            within_15s=int(wait <= SERVICE_LEVEL_S),
            wait_answered_s=wait,
            surveyed=int(score is not None),
            satisfied=int(score in SATISFIED_SCORES),
        )
    return Counts(offered=1, abandoned=int(record.outcome is CallOutcome.ABANDONED))


_Entry = tuple[datetime, int, str, Counts]  # entered the queue, sequence number, queue, counts


@dataclass
class _Running:
    """A running sum of Counts; the wait in whole microseconds so that taking a call out again
    leaves no rounding behind (timedelta waits are whole microseconds)."""

    offered: int = 0
    answered: int = 0
    within_15s: int = 0
    abandoned: int = 0
    wait_us: int = 0
    surveyed: int = 0
    satisfied: int = 0

    def change(self, counts: Counts, sign: int) -> None:
        self.offered += sign * counts.offered
        self.answered += sign * counts.answered
        self.within_15s += sign * counts.within_15s
        self.abandoned += sign * counts.abandoned
        self.wait_us += sign * round(counts.wait_answered_s * 1_000_000)
        self.surveyed += sign * counts.surveyed
        self.satisfied += sign * counts.satisfied

    def counts(self) -> Counts:
        return Counts(
            self.offered,
            self.answered,
            self.within_15s,
            self.abandoned,
            self.wait_us / 1_000_000,
            self.surveyed,
            self.satisfied,
        )


@dataclass
class _Span:
    """The calls that entered a queue in the last ``span_s``, summed per queue and for ``ALL``."""

    span_s: float
    heap: list[_Entry] = field(default_factory=list)
    sums: dict[str, _Running] = field(default_factory=dict)

    def add(self, entry: _Entry) -> None:
        heapq.heappush(self.heap, entry)
        self._change(entry, 1)

    def expire(self, now: datetime) -> None:
        since = now - timedelta(seconds=self.span_s)
        heap = self.heap
        while heap and heap[0][0] < since:
            self._change(heapq.heappop(heap), -1)

    def _change(self, entry: _Entry, sign: int) -> None:
        _, _, queue, counts = entry
        for name in (queue, ALL) if queue != ALL else (ALL,):
            running = self.sums.get(name)
            if running is None:
                running = self.sums[name] = _Running()
            running.change(counts, sign)


@dataclass
class TodayTally:
    """Per-queue counters of the current China day, and the recent finished calls.

    ``now`` is taken not to go back between calls (a call that has left a window stays out)."""

    keep_s: float = 900.0
    day: date | None = None
    _today: dict[str, Counts] = field(default_factory=dict)
    _counted: dict[str, datetime] = field(default_factory=dict)  # call id → entered the queue
    _spans: dict[float, _Span] = field(default_factory=dict)  # keep_s always; others once asked for
    _sequence: int = 0

    def __post_init__(self) -> None:
        self._spans[self.keep_s] = _Span(self.keep_s)

    def _roll(self, now: datetime) -> None:
        today = china_day(now)
        if self.day != today:
            self.day, self._today = today, {}
            oldest = min(day_start(now), now - timedelta(seconds=self.keep_s))
            self._counted = {call_id: at for call_id, at in self._counted.items() if at >= oldest}

    def add(self, record: CallRecord, now: datetime) -> bool:
        """Count an ended record once (a record seen twice, or of another day, is skipped)."""
        self._roll(now)
        counts = counts_of(record)
        if counts is None or record.queued_at is None or record.call_id in self._counted:
            return False
        today = china_day(record.queued_at) == self.day
        recent = record.queued_at >= now - timedelta(seconds=self.keep_s)  # a window may span 00:00
        if not (today or recent):
            return False
        self._counted[record.call_id] = record.queued_at
        if today:
            self._today.setdefault(record.queue, Counts()).add(counts)
        if recent:
            self._sequence += 1
            entry = (record.queued_at, self._sequence, record.queue, counts)
            for span in self._spans.values():
                if record.queued_at >= now - timedelta(seconds=span.span_s):  # else never in it again
                    span.add(entry)
        return True

    def today(self, queue: str, now: datetime) -> Counts:
        """``queue``'s counters since 00:00 China time (``ALL``: every queue's)."""
        self._roll(now)
        total = Counts()
        for name, counts in self._today.items():
            if queue in (ALL, name):
                total.add(counts)
        return total

    def window(self, queue: str, now: datetime, span_s: float) -> Counts:
        """``queue``'s counters over the calls that entered it in the last ``span_s`` (≤ keep_s)."""
        kept = self._spans[self.keep_s]
        kept.expire(now)
        span = self._spans.get(span_s)
        if span is None:  # a span asked for the first time: from the calls kept
            span = self._spans[span_s] = _Span(span_s)
            for entry in kept.heap:
                span.add(entry)
        span.expire(now)
        running = span.sums.get(queue)
        return Counts() if running is None else running.counts()
