"""The Erlang-A bench's figures, from event times alone (pure: no I/O, no clock).

Inputs are what bench/erlang_ami.py records from Asterisk's own AMI events, the same for our
ACD and for app_queue: per caller channel its arrival, queue entry, first bridge with a seat
and hang-up (and whether the bench hung it up for patience), per seat channel (one per ring:
our offer or app_queue's attempt) its creation, first bridge and hang-up. Times are epoch
seconds on Asterisk's clock. A step's figures count the callers who arrived in its counting
window ``[start, end)``; seat-side figures (occupancy, lost ring time, freed-seat gap) count
what happened on the seats inside that window.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

SERVICE_LEVEL_S = 15.0


@dataclass
class CallerLeg:
    """One caller channel (the trunk side)."""

    channel: str
    number: str
    arrived: float
    queued: float | None = None
    bridged: float | None = None
    ended: float | None = None
    patience_hangup: bool = False  # the bench hung it up: patience ran out while waiting

    def waiting_at(self, when: float) -> bool:
        """In the queue, not with a seat yet, not gone, at ``when``."""
        return (
            self.queued is not None
            and self.queued <= when
            and (self.bridged is None or self.bridged > when)
            and (self.ended is None or self.ended > when)
        )


@dataclass
class SeatLeg:
    """One seat channel: a ring that may become a conversation."""

    seat: str
    created: float
    bridged: float | None = None
    ended: float | None = None


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    seats: int
    capacity: float  # calls per second: seats / (ring + mean talk)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def has(self, when: float) -> bool:
        return self.start <= when < self.end


@dataclass(frozen=True)
class StepFigures:
    offered: int  # callers who arrived in the window
    answered: int  # reached a seat
    abandoned: int  # hung up by their patience while waiting
    other: int  # neither (never queued, or still up when the bench ended the run)
    conversations: int  # seat conversations that ended inside the window
    goodput: float  # conversations completed per second ÷ capacity
    wait_p50_s: float
    wait_p99_s: float
    asa_s: float
    service_level: float  # answered within 15 s of queue entry ÷ offered
    occupancy: float  # seat time in conversation ÷ seat time
    lost_ring_share: float  # seat time ringing for rings that never became a conversation ÷ seat time
    lost_rings: int
    rings: int
    gap_p99_ms: float  # seat freed while callers waited → the next ring on that seat
    gaps: int
    cpu_ms: dict[str, float] = field(default_factory=dict)  # per offered call, by process

    @property
    def abandon_share(self) -> float:
        return self.abandoned / self.offered if self.offered else math.nan


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (inclusive method); NaN for no values."""
    if not values:
        return math.nan
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _overlap(start: float, end: float, window: Window) -> float:
    return max(0.0, min(end, window.end) - max(start, window.start))


def _unserved(callers: list[CallerLeg], seats: list[SeatLeg], when: float) -> int:
    """Callers waiting at ``when`` minus seats ringing then (a ring not yet a conversation)."""
    waiting = sum(1 for c in callers if c.waiting_at(when))
    ringing = sum(
        1
        for s in seats
        if s.created <= when and (s.bridged is None or s.bridged > when) and (s.ended is None or s.ended > when)
    )
    return waiting - ringing


def freed_seat_gaps(seats: list[SeatLeg], callers: list[CallerLeg], window: Window) -> list[float]:
    """Seconds from a seat channel's hang-up (the seat is free) to that seat's next ring, for
    hang-ups inside the window while more callers were waiting than seats were ringing (a
    caller no ring in progress was for: the free seat should ring). A seat that never rang
    again before the data ends is counted up to the last event seen (it is a gap)."""
    by_seat: dict[str, list[SeatLeg]] = {}
    for leg in seats:
        by_seat.setdefault(leg.seat, []).append(leg)
    horizon = max([c.ended or c.arrived for c in callers] + [s.ended or s.created for s in seats], default=0.0)
    gaps = []
    for legs in by_seat.values():
        legs.sort(key=lambda leg: leg.created)
        for index, leg in enumerate(legs):
            if leg.ended is None or not window.has(leg.ended):
                continue
            if _unserved(callers, seats, leg.ended) <= 0:
                continue
            later = [n.created for n in legs[index + 1 :] if n.created >= leg.ended]
            gaps.append((later[0] if later else horizon) - leg.ended)
    return gaps


def step_figures(callers: list[CallerLeg], seats: list[SeatLeg], window: Window) -> StepFigures:
    """Every figure of one step (CPU is added by the caller of this function)."""
    cohort = [c for c in callers if window.has(c.arrived)]
    answered = [c for c in cohort if c.bridged is not None]
    abandoned = [c for c in cohort if c.bridged is None and c.patience_hangup]
    waits = [c.bridged - c.queued for c in answered if c.bridged is not None and c.queued is not None]
    seat_time = window.seats * window.seconds
    talk = sum(_overlap(s.bridged, s.ended, window) for s in seats if s.bridged is not None and s.ended is not None)
    rings = [s for s in seats if window.has(s.created)]
    completed = [s for s in seats if s.bridged is not None and s.ended is not None and window.has(s.ended)]
    lost = [s for s in rings if s.bridged is None and s.ended is not None]
    gaps = freed_seat_gaps(seats, callers, window)
    return StepFigures(
        offered=len(cohort), answered=len(answered), abandoned=len(abandoned),
        other=len(cohort) - len(answered) - len(abandoned),
        conversations=len(completed), goodput=len(completed) / window.seconds / window.capacity,
        wait_p50_s=percentile(waits, 50), wait_p99_s=percentile(waits, 99),
        asa_s=statistics.fmean(waits) if waits else math.nan,
        service_level=sum(1 for w in waits if w <= SERVICE_LEVEL_S) / len(cohort) if cohort else math.nan,
        occupancy=talk / seat_time if seat_time else math.nan,
        lost_ring_share=sum(s.ended - s.created for s in lost if s.ended is not None) / seat_time,
        lost_rings=len(lost), rings=len(rings),
        gap_p99_ms=percentile(gaps, 99) * 1000, gaps=len(gaps),
    )  # fmt: skip


def pooled(figures: list[StepFigures]) -> StepFigures:
    """Several repeats of one step as one: sums for counts, means for rates and shares, the
    median of the repeats for percentiles (each repeat's p99 is one estimate)."""

    def mean(values: list[float]) -> float:
        kept = [v for v in values if not math.isnan(v)]
        return statistics.fmean(kept) if kept else math.nan

    def median(values: list[float]) -> float:
        kept = [v for v in values if not math.isnan(v)]
        return statistics.median(kept) if kept else math.nan

    cpu_keys = sorted({key for f in figures for key in f.cpu_ms})
    return StepFigures(
        offered=sum(f.offered for f in figures), answered=sum(f.answered for f in figures),
        abandoned=sum(f.abandoned for f in figures), other=sum(f.other for f in figures),
        conversations=sum(f.conversations for f in figures), goodput=mean([f.goodput for f in figures]),
        wait_p50_s=median([f.wait_p50_s for f in figures]), wait_p99_s=median([f.wait_p99_s for f in figures]),
        asa_s=mean([f.asa_s for f in figures]), service_level=mean([f.service_level for f in figures]),
        occupancy=mean([f.occupancy for f in figures]), lost_ring_share=mean([f.lost_ring_share for f in figures]),
        lost_rings=sum(f.lost_rings for f in figures), rings=sum(f.rings for f in figures),
        gap_p99_ms=median([f.gap_p99_ms for f in figures]), gaps=sum(f.gaps for f in figures),
        cpu_ms={key: mean([f.cpu_ms.get(key, math.nan) for f in figures]) for key in cpu_keys},
    )  # fmt: skip
