"""Queue and seat figures over a rolling window, kept as calls change (pure: records in, figures
out). The same figures as acd/stats.py (``queue_stats``, ``seat_stats``) over the same records,
but a request costs the number of queues and seats, never the number of calls.

Each call holds at most one entry per side, keyed by its call id: on the queue side at the time
it entered the queue, on the seat side at the time a seat answered. An entry is what the call
adds to the sums acd/stats.py needs (offered, answered, within 15 s, abandoned, overflowed,
wait and talk in integer microseconds, surveys, 满意 + 基本满意). A newer version of a record
replaces its entry (a call counted once, however often its record is seen: answered while it
is still going, then ended, then amended after it ended), and the running totals per queue and
per seat change by the difference. Entries leave the window exactly when acd/stats.py stops
counting them (``at < now - window``): they are kept sorted by time, so the oldest go first.

Times are integer microseconds since the epoch and durations integer microseconds, so adding
and removing never drifts; averages are divided out only when read.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from acd.stats import SATISFIED_SCORES, SERVICE_LEVEL_S, QueueStats, SeatStats
from calls.model import CallOutcome, CallRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_SERVICE_LEVEL_US = round(SERVICE_LEVEL_S * 1_000_000)

# the sums of one entry and of a running total, by position
OFFERED, ANSWERED, WITHIN_15S, ABANDONED, OVERFLOWED, WAIT_US, TALKED, TALK_US, SURVEYED, SATISFIED = range(10)
Sums = tuple[int, int, int, int, int, int, int, int, int, int]
_ZERO: Sums = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def micros(at: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (exact)."""
    return (at - EPOCH) // _US


def _talk(record: CallRecord) -> tuple[int, int]:
    if record.ended_at is None or record.seat_answered_at is None:
        return 0, 0
    return 1, (record.ended_at - record.seat_answered_at) // _US


def _surveys(record: CallRecord) -> tuple[int, int]:
    score = record.survey_score
    return int(score is not None), int(score is not None and score in SATISFIED_SCORES)


def queue_entry(record: CallRecord) -> tuple[str, int, Sums] | None:
    """(queue, entered at, what the call adds to its queue's figures); None while it adds nothing
    (it never queued, or it waits unanswered: who waits now is the ACD's live figure)."""
    if record.queued_at is None:
        return None
    at = micros(record.queued_at)
    if record.seat_answered_at is not None:
        wait = (record.seat_answered_at - record.queued_at) // _US
        talked, talk = _talk(record)
        surveyed, satisfied = _surveys(record)
        within = int(wait <= _SERVICE_LEVEL_US)
        return record.queue, at, (1, 1, within, 0, 0, wait, talked, talk, surveyed, satisfied)
    if record.is_open:
        return None
    abandoned = int(record.outcome is CallOutcome.ABANDONED)
    return record.queue, at, (1, 0, 0, abandoned, 1 - abandoned, 0, 0, 0, 0, 0)


def seat_entry(record: CallRecord) -> tuple[str, int, Sums] | None:
    """(seat, answered at, what the call adds to the seat's figures); None if no seat answered."""
    if record.seat_answered_at is None:
        return None
    talked, talk = _talk(record)
    surveyed, satisfied = _surveys(record)
    return record.seat, micros(record.seat_answered_at), (0, 1, 0, 0, 0, 0, talked, talk, surveyed, satisfied)


def _added(total: list[int], sums: Sums, sign: int) -> None:
    for i, value in enumerate(sums):
        total[i] += sign * value


class _Side:
    """Entries of one side (queues or seats) by call id, in time order, and their totals by key."""

    def __init__(self, window_us: int) -> None:
        self._window_us = window_us
        self._order: list[tuple[int, str]] = []  # (at, call id), sorted; the live part is [_head:]
        self._head = 0
        self._entries: dict[str, tuple[str, int, Sums]] = {}
        self._totals: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._entries

    def holds(self, call_id: str, entry: tuple[str, int, Sums] | None) -> bool:
        """``put(call_id, entry, …)`` would change nothing (the entry it has, or none and none)."""
        return self._entries.get(call_id) == entry

    def put(self, call_id: str, entry: tuple[str, int, Sums] | None, now_us: int) -> None:
        old = self._entries.get(call_id)
        if old == entry:
            return
        if old is not None:
            self._remove(call_id, old)
        if entry is None or entry[1] < now_us - self._window_us:
            return  # adds nothing, or already out of the window (it never comes back into it)
        key, at, sums = entry
        self._entries[call_id] = entry
        insort(self._order, (at, call_id), lo=self._head)
        _added(self._totals.setdefault(key, [0] * len(_ZERO)), sums, 1)

    def _remove(self, call_id: str, entry: tuple[str, int, Sums]) -> None:
        key, at, sums = entry
        del self._entries[call_id]
        index = bisect_left(self._order, (at, call_id), lo=self._head)
        del self._order[index]
        self._subtract(key, sums)

    def _subtract(self, key: str, sums: Sums) -> None:
        total = self._totals[key]
        _added(total, sums, -1)
        if not any(total):
            del self._totals[key]

    def expire(self, now_us: int) -> None:
        """Drop the entries older than the window (acd/stats.py counts ``at >= now - window``)."""
        horizon = now_us - self._window_us
        order = self._order
        while self._head < len(order) and order[self._head][0] < horizon:
            call_id = order[self._head][1]
            key, _at, sums = self._entries.pop(call_id)
            self._subtract(key, sums)
            self._head += 1
        if self._head > 1024 and self._head * 2 > len(order):
            del order[: self._head]
            self._head = 0

    def total(self, key: str) -> Sums:
        found = self._totals.get(key)
        return _ZERO if found is None else cast(Sums, tuple(found))


def _mean_s(sum_us: int, count: int) -> float:
    return sum_us / count / 1_000_000 if count else 0.0


class RollingFigures:
    """The figures of every queue and seat over the last ``window``, as records change.

    ``put`` takes every version of every record (the call tracker's record watcher); ``seed``
    takes the records stored before this process started and counts only the calls it has not
    seen yet (a stored version is never newer than one the tracker put).
    """

    def __init__(self, window: timedelta) -> None:
        window_us = window // _US
        self.window = window
        self._queues = _Side(window_us)
        self._seats = _Side(window_us)
        self._seen_before_seed: set[str] | None = set()  # call ids put before the seed (then None)

    def __len__(self) -> int:
        """Entries held (queue side + seat side): bounded by the calls of one window."""
        return len(self._queues) + len(self._seats)

    @property
    def seeded(self) -> bool:
        return self._seen_before_seed is None

    def put(self, record: CallRecord, now: datetime | Callable[[], datetime]) -> None:
        """Count the latest version of ``record`` (replacing what an earlier version added).
        ``now`` may be the clock itself: it is read only for a version that changes what is
        counted (not for most of a call's versions: IVR steps, tags)."""
        if self._seen_before_seed is not None:
            self._seen_before_seed.add(record.call_id)
        queue, seat = queue_entry(record), seat_entry(record)
        if self._queues.holds(record.call_id, queue) and self._seats.holds(record.call_id, seat):
            return  # both sides' put would return at once
        now_us = micros(now() if callable(now) else now)
        self._queues.put(record.call_id, queue, now_us)
        self._seats.put(record.call_id, seat, now_us)

    def seed(self, records: list[CallRecord], now: datetime) -> int:
        """Count the stored records of calls not put here yet (once, at start); returns how many."""
        seen = set(self._seen_before_seed or ())
        now_us = micros(now)
        counted = 0
        for record in records:
            if record.call_id in seen or record.call_id in self._queues or record.call_id in self._seats:
                continue
            seen.add(record.call_id)  # a page read twice: its first version counts
            self._queues.put(record.call_id, queue_entry(record), now_us)
            self._seats.put(record.call_id, seat_entry(record), now_us)
            counted += 1
        self._seen_before_seed = None
        return counted

    def expire(self, now: datetime) -> None:
        now_us = micros(now)
        self._queues.expire(now_us)
        self._seats.expire(now_us)

    def queue(self, queue: str, now: datetime) -> QueueStats:
        """``queue`` over the window, as acd/stats.py ``queue_stats`` (nobody waiting: the live
        figures are the ACD's)."""
        self.expire(now)
        s = self._queues.total(queue)
        return QueueStats(
            queue=queue,
            waiting_now=0,
            longest_wait_now_s=0.0,
            offered=s[OFFERED],
            answered=s[ANSWERED],
            answered_within_15s=s[WITHIN_15S],
            abandoned=s[ABANDONED],
            overflowed=s[OVERFLOWED],
            average_speed_of_answer_s=_mean_s(s[WAIT_US], s[ANSWERED]),
            average_talk_s=_mean_s(s[TALK_US], s[TALKED]),
            surveyed=s[SURVEYED],
            satisfied=s[SATISFIED],
        )

    def seat(self, seat: str, now: datetime) -> SeatStats:
        """``seat`` over the window, as acd/stats.py ``seat_stats``."""
        self.expire(now)
        s = self._seats.total(seat)
        return SeatStats(
            seat=seat,
            answered=s[ANSWERED],
            average_talk_s=_mean_s(s[TALK_US], s[TALKED]),
            talk_s=s[TALK_US] / 1_000_000,
            surveyed=s[SURVEYED],
            satisfied=s[SATISFIED],
        )
