"""What each finished thing adds to the report counters (pure: values in, increments out).

Kinds of rollup, each a hash per platform and local hour (reports/store.py):

- ``queues`` — per queue, by the hour the caller entered it: offered, answered, answered
  within 15 s, abandoned, overflowed (left unanswered otherwise), wait sums and a wait histogram
  for answered and abandoned callers, talk sums, surveys and 满意 + 基本满意.
- ``seats`` — per seat: calls answered, talk and surveys (by the hour the seat answered), and
  milliseconds in each seat state and each pause reason (split over the hours they span).
- ``ivr`` — per dialplan node: visits, exits (the last node of a call, by outcome), key choices.
- ``cases`` — per unit (``-`` before one is named): dispatched (on time / late), signed (on
  time / late), resolved (on time / late), returned, extended, visited, by the hour each step
  happened; platform-wide (``*``): accepted, and ``cohort_resolved`` in the hour of acceptance
  (办结率 = cohort_resolved / accepted: the share of the period's cases resolved since). The 回访
  (visited) adds its answers per unit — visit_surveyed, visit_satisfied (回访满意率), visit_resolved
  of visit_answered_resolved — and ``cohort_visit_not_resolved`` (``*``, hour of acceptance): a
  case the citizen said was not resolved, taken out of 办结率 after 回访.

Times are integer milliseconds (Redis ``HINCRBY``). A field is ``metric`` + ``\\x1f`` + dimension
(queue, seat, ``seat\\x1freason``, node …); the separator is stripped from dimensions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from acd.seat import Seat
from acd.stats import SATISFIED_SCORES, SERVICE_LEVEL_S
from calls.model import CallOutcome, CallRecord
from reports.buckets import hour_bucket, split_by_hour
from tickets.model import Ticket, TicketState

SEP = "\x1f"
WAIT_BUCKETS_S = (5, 10, 15, 20, 30, 60, 120, 300)  # upper bounds; "inf" beyond
NO_UNIT = "-"
ALL_UNITS = "*"  # accepted and cohort_resolved are counted platform-wide: a case's unit changes


class Kind:
    QUEUES = "queues"
    SEATS = "seats"
    IVR = "ivr"
    CASES = "cases"


KINDS = (Kind.QUEUES, Kind.SEATS, Kind.IVR, Kind.CASES)


@dataclass(frozen=True)
class Increment:
    kind: str
    bucket: str  # YYYYMMDDHH, local
    field: str
    amount: int


def field(metric: str, *dims: str) -> str:
    return SEP.join((metric, *(d.replace(SEP, "") for d in dims)))


def wait_bucket(seconds: float) -> str:
    for bound in WAIT_BUCKETS_S:
        if seconds <= bound:
            return f"le_{bound}"
    return "le_inf"


def _ms(start: datetime, end: datetime) -> int:
    return max(round((end - start).total_seconds() * 1000), 0)


class _Adder:
    """Collects the increments of one record."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.out: list[Increment] = []
        # a call's increments fall in 2-3 distinct times (started, queued, answered): each one's
        # hour once, not once per increment (13 strftime a call on the IVR walk)
        self._buckets: dict[datetime, str] = {}

    def __call__(self, kind: str, when: datetime, metric: str, dim: str, amount: int = 1) -> None:
        bucket = self._buckets.get(when)
        if bucket is None:
            bucket = self._buckets[when] = hour_bucket(when, self.tz)
        self.out.append(Increment(kind, bucket, field(metric, dim), amount))


def _queue(add: _Adder, record: CallRecord, queued_at: datetime, ended_at: datetime) -> None:
    """By the hour the caller entered the queue."""
    q, answered, survey = record.queue, record.seat_answered_at, record.survey_score
    add(Kind.QUEUES, queued_at, "offered", q)
    if answered is not None:
        wait_ms = _ms(queued_at, answered)
        add(Kind.QUEUES, queued_at, "answered", q)
        add(Kind.QUEUES, queued_at, "wait_ms", q, wait_ms)
        add(Kind.QUEUES, queued_at, "answered_wait_" + wait_bucket(wait_ms / 1000), q)
        if wait_ms / 1000 <= SERVICE_LEVEL_S:
            add(Kind.QUEUES, queued_at, "answered_15s", q)
        add(Kind.QUEUES, queued_at, "talk_ms", q, _ms(answered, ended_at))
        if survey is not None:
            add(Kind.QUEUES, queued_at, "surveyed", q)
            if survey in SATISFIED_SCORES:
                add(Kind.QUEUES, queued_at, "satisfied", q)
    elif record.outcome is CallOutcome.ABANDONED:
        wait_ms = _ms(queued_at, ended_at)
        add(Kind.QUEUES, queued_at, "abandoned", q)
        add(Kind.QUEUES, queued_at, "abandoned_wait_ms", q, wait_ms)
        add(Kind.QUEUES, queued_at, "abandoned_wait_" + wait_bucket(wait_ms / 1000), q)
    else:
        add(Kind.QUEUES, queued_at, "overflowed", q)


def _seat(add: _Adder, record: CallRecord, answered: datetime, ended_at: datetime) -> None:
    """By the hour the seat answered."""
    s = record.seat
    add(Kind.SEATS, answered, "calls", s)
    add(Kind.SEATS, answered, "talk_ms", s, _ms(answered, ended_at))
    if record.survey_score is not None:
        add(Kind.SEATS, answered, "surveyed", s)
        if record.survey_score in SATISFIED_SCORES:
            add(Kind.SEATS, answered, "satisfied", s)


def _ivr(add: _Adder, record: CallRecord) -> None:
    """By the hour the call started."""
    for node in dict.fromkeys(record.ivr_path):  # a node visited twice (a menu repeated) counts once
        add(Kind.IVR, record.started_at, "visits", node)
    if record.ivr_path:
        outcome = record.outcome.value if record.outcome else "unknown"
        add(Kind.IVR, record.started_at, "exit." + outcome, record.ivr_path[-1])
    for choice in record.digits:
        node, _, key = choice.rpartition("=")
        add(Kind.IVR, record.started_at, "key." + (key or "none"), node)


def call_increments(record: CallRecord, tz: ZoneInfo) -> list[Increment]:
    """What an ended call adds: its queue's figures (the queue figures' rules of acd/stats.py),
    its seat's, the IVR's."""
    add = _Adder(tz)
    if record.ended_at is None:
        return add.out
    if record.queue and record.queued_at is not None:
        _queue(add, record, record.queued_at, record.ended_at)
    if record.seat and record.seat_answered_at is not None:
        _seat(add, record, record.seat_answered_at, record.ended_at)
    _ivr(add, record)
    return add.out


def seat_increments(previous: Seat, now: Seat, tz: ZoneInfo) -> list[Increment]:
    """The time ``previous`` spent in its state (and pause reason), up to ``now.since``."""
    if previous.since is None or now.since is None:
        return []
    metric = f"state_ms.{previous.state.value}"
    out = [
        Increment(Kind.SEATS, bucket, field(metric, previous.seat_id), ms)
        for bucket, ms in split_by_hour(previous.since, now.since, tz)
    ]
    if previous.state.value == "not_ready":
        reason = previous.reason or "unspecified"
        out += [
            Increment(Kind.SEATS, bucket, field("pause_ms", previous.seat_id, reason), ms)
            for bucket, ms in split_by_hour(previous.since, now.since, tz)
        ]
    return out


def _on_time(at: datetime, due: datetime | None) -> bool:
    return due is None or at <= due


def ticket_step_increments(ticket: Ticket, index: int, tz: ZoneInfo) -> list[Increment]:
    """What step ``index`` of the ticket's timeline adds. A note (a repeat call, recomputed
    deadlines: the system's entries with the state unchanged) adds nothing; a second extension
    (extended → extended, by a person) counts."""
    entry = ticket.timeline[index]
    before = ticket.timeline[index - 1].state if index > 0 else None
    if entry.state is before and (entry.state is not TicketState.EXTENDED or entry.actor == "system"):
        return []
    unit = ticket.unit or NO_UNIT
    out: list[Increment] = []

    def add(metric: str, when: datetime = entry.at, dim: str = unit) -> None:
        out.append(Increment(Kind.CASES, hour_bucket(when, tz), field(metric, dim), 1))

    d = ticket.deadlines
    state = entry.state
    if state is TicketState.ACCEPTED:
        add("accepted", dim=ALL_UNITS)
    elif state is TicketState.DISPATCHED:
        add("dispatched")
        add("dispatched_on_time" if _on_time(entry.at, d.dispatch_by) else "dispatched_late")
    elif state is TicketState.SIGNED:
        add("signed")
        add("signed_on_time" if _on_time(entry.at, d.sign_by) else "signed_late")
    elif state is TicketState.RESOLVED:
        add("resolved")
        add("resolved_on_time" if _on_time(entry.at, d.resolve_by) else "resolved_late")
        add("cohort_resolved", ticket.accepted_at, ALL_UNITS)
    elif state is TicketState.RETURNED:
        add("returned")
    elif state is TicketState.EXTENDED:
        add("extended")
    elif state is TicketState.VISITED:
        add("visited")
        _visit(add, ticket)
    return out


def _visit(add: Callable[..., None], ticket: Ticket) -> None:
    """The 回访's answers, by the hour of the visit per unit: 回访满意率 = visit_satisfied /
    visit_surveyed; "not resolved" also counts in the hour of acceptance (``*``) so that 办结率
    after 回访 takes those cases out of the period's resolved ones."""
    visit = ticket.visit
    if visit is None:
        return
    if visit.satisfaction is not None:
        add("visit_surveyed")
        if visit.satisfaction in SATISFIED_SCORES:
            add("visit_satisfied")
    if visit.resolved is not None:
        add("visit_answered_resolved")
        if visit.resolved:
            add("visit_resolved")
        else:
            add("cohort_visit_not_resolved", ticket.accepted_at, ALL_UNITS)
