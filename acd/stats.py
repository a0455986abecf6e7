"""Queue and seat figures from call records (pure): what supervisors and GB/T 33358 ask for.

Service level is the share of queued calls a seat answered within 15 s (GB/T 33358: answer
within 15 s); answer rate is answered / offered (target ≥ 95 % over any 24 h). Satisfaction
(满意率) is (满意 + 基本满意) / answered surveys of the calls a seat answered: survey keys 1 满意,
2 基本满意, 3 不满意 (the after_seat survey); None while nobody answered one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from calls.model import CallOutcome, CallRecord

SERVICE_LEVEL_S = 15.0
SATISFIED_SCORES = frozenset({1, 2})  # 满意, 基本满意


DEFAULT_MIN_SERVICE_LEVEL = 0.8  # outbound and seats' callbacks start only while it holds
SERVICE_LEVEL_WINDOW_S = 900.0  # … over the calls that entered a queue in the last 15 min


def service_level_holds(level: float | None, minimum: float) -> bool:
    """Inbound first: whether the 15 s service level (None: no call offered in the window, no
    score is not a bad one) is at least ``minimum`` (0: the rule is off)."""
    return minimum <= 0 or level is None or level >= minimum


def satisfaction_rate(surveyed: int, satisfied: int) -> float | None:
    """(满意 + 基本满意) / answered surveys; None when there is no answer to count."""
    return satisfied / surveyed if surveyed else None


def _surveys(records: list[CallRecord]) -> tuple[int, int]:
    scores = [r.survey_score for r in records if r.survey_score is not None]
    return len(scores), sum(1 for score in scores if score in SATISFIED_SCORES)


@dataclass(frozen=True)
class QueueStats:
    """One queue over a window, plus who is waiting now."""

    queue: str
    waiting_now: int
    longest_wait_now_s: float
    offered: int
    answered: int
    answered_within_15s: int
    abandoned: int
    overflowed: int
    average_speed_of_answer_s: float
    average_talk_s: float
    callbacks_waiting: int = 0  # callers who hung up keeping their place (callback node)
    surveyed: int = 0  # answered calls whose caller answered the survey
    satisfied: int = 0  # of them, 满意 or 基本满意

    @property
    def satisfaction_rate(self) -> float | None:
        return satisfaction_rate(self.surveyed, self.satisfied)

    # None when nothing was offered: no score, not a perfect one (a supervisor must not read 100 %)
    @property
    def answer_rate(self) -> float | None:
        return self.answered / self.offered if self.offered else None

    @property
    def abandon_rate(self) -> float | None:
        return self.abandoned / self.offered if self.offered else None

    @property
    def service_level(self) -> float | None:
        return self.answered_within_15s / self.offered if self.offered else None


@dataclass(frozen=True)
class SeatStats:
    """One seat over a window: calls it took and how long they lasted."""

    seat: str
    answered: int
    average_talk_s: float
    talk_s: float
    surveyed: int = 0
    satisfied: int = 0

    @property
    def satisfaction_rate(self) -> float | None:
        return satisfaction_rate(self.surveyed, self.satisfied)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def queue_stats(queue: str, records: Iterable[CallRecord], now: datetime, window: timedelta) -> QueueStats:
    """Figures of ``queue`` over the calls that entered it within ``window`` before ``now``."""
    mine = [r for r in records if r.queue == queue and r.queued_at is not None and r.queued_at >= now - window]
    waiting = [r for r in mine if r.is_open and r.seat_answered_at is None]
    answered = [r for r in mine if r.seat_answered_at is not None]
    waits = [(r.seat_answered_at - r.queued_at).total_seconds() for r in answered if r.seat_answered_at and r.queued_at]
    talks = [(r.ended_at - r.seat_answered_at).total_seconds() for r in answered if r.ended_at and r.seat_answered_at]
    finished_unanswered = [r for r in mine if not r.is_open and r.seat_answered_at is None]
    abandoned = [r for r in finished_unanswered if r.outcome is CallOutcome.ABANDONED]
    surveyed, satisfied = _surveys(answered)
    return QueueStats(
        queue=queue,
        waiting_now=len(waiting),
        longest_wait_now_s=max(((now - r.queued_at).total_seconds() for r in waiting if r.queued_at), default=0.0),
        offered=len(answered) + len(finished_unanswered),
        answered=len(answered),
        answered_within_15s=sum(1 for wait in waits if wait <= SERVICE_LEVEL_S),
        abandoned=len(abandoned),
        overflowed=len(finished_unanswered) - len(abandoned),
        average_speed_of_answer_s=_mean(waits),
        average_talk_s=_mean(talks),
        surveyed=surveyed,
        satisfied=satisfied,
    )


def seat_stats(seat: str, records: Iterable[CallRecord], now: datetime, window: timedelta) -> SeatStats:
    """Figures of ``seat`` over the calls it answered within ``window`` before ``now``."""
    mine = [
        r for r in records if r.seat == seat and r.seat_answered_at is not None and r.seat_answered_at >= now - window
    ]
    talks = [(r.ended_at - r.seat_answered_at).total_seconds() for r in mine if r.ended_at and r.seat_answered_at]
    surveyed, satisfied = _surveys(mine)
    return SeatStats(
        seat=seat,
        answered=len(mine),
        average_talk_s=_mean(talks),
        talk_s=sum(talks),
        surveyed=surveyed,
        satisfied=satisfied,
    )


def platform_satisfaction(records: Iterable[CallRecord], now: datetime, window: timedelta) -> tuple[int, int]:
    """(answered surveys, 满意 + 基本满意) over the calls any seat answered within ``window``."""
    answered = [r for r in records if r.seat_answered_at is not None and r.seat_answered_at >= now - window]
    return _surveys(answered)
