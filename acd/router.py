"""Routing decisions of the ACD (pure, in memory): which seats to offer a caller, and — late
binding — which caller a seat takes at the moment it answers.

Callers are kept in buckets by (queue, required skills, priority); each bucket is a heap by
arrival, so the best caller a seat may take is found by looking at one head per bucket, not
at every waiting caller. Skills are relaxed after
``relax_after_s``: a caller who has waited that long may go to any seat of the queue.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_right
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Strategy(StrEnum):
    """How a queue chooses among idle seats for a new caller."""

    LONGEST_IDLE = "longest_idle"  # default: fairest to seats, fastest to callers
    FEWEST_CALLS = "fewest_calls"
    ROUND_ROBIN = "round_robin"
    RING_ALL = "ring_all"


@dataclass(frozen=True)
class WaitingCaller:
    """A caller in a queue."""

    call_id: str
    queue: str
    skills: frozenset[str]
    priority: int  # 0 normal; higher first (elderly, repeat caller with an open case …)
    entered_at: float  # seconds, on the engine's monotonic clock


@dataclass(frozen=True)
class IdleSeat:
    """A seat that may be offered a call now."""

    seat_id: str
    queues: frozenset[str]
    skills: frozenset[str]
    idle_since: float
    calls_taken: int


def may_take(seat_skills: frozenset[str], caller: WaitingCaller, now: float, relax_after_s: float) -> bool:
    """Whether a seat with ``seat_skills`` may take ``caller`` now (skills, or relaxed)."""
    return caller.skills <= seat_skills or now - caller.entered_at >= relax_after_s


_Entry = tuple[float, int, WaitingCaller]  # (arrival, sequence added, caller)


@dataclass
class CallerIndex:
    """Waiting callers, bucketed by (queue, skills, priority), each bucket a heap by arrival
    (then the order added); removal is lazy.

    Within a bucket rank order is arrival order, so its head is both its best caller and its
    longest waiting: if the head may not go to a seat (skills, not yet relaxed), nobody behind
    it may either. (Bucketing by (queue, skills) alone and taking the oldest caller once skills
    were relaxed let an older normal caller beat a relaxed priority caller of the same skills.)
    """

    _buckets: dict[tuple[str, frozenset[str], int], list[_Entry]] = field(default_factory=dict)
    _present: dict[str, WaitingCaller] = field(default_factory=dict)
    _sequence: itertools.count[int] = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self._present)

    def add(self, caller: WaitingCaller) -> None:
        self._present[caller.call_id] = caller
        bucket = self._buckets.setdefault((caller.queue, caller.skills, caller.priority), [])
        heapq.heappush(bucket, (caller.entered_at, next(self._sequence), caller))

    def remove(self, call_id: str) -> WaitingCaller | None:
        """The caller left (hung up, overflowed) or was bound to a seat."""
        return self._present.pop(call_id, None)

    def _top(self, heap: list[_Entry]) -> _Entry | None:
        while heap and self._present.get(heap[0][2].call_id) is not heap[0][2]:
            heapq.heappop(heap)  # gone since it was queued
        return heap[0] if heap else None

    def best_for(
        self, seat_queues: frozenset[str], seat_skills: frozenset[str], now: float, relax_after_s: float
    ) -> WaitingCaller | None:
        """The caller this seat should take: highest priority, then longest waiting (then the
        first added), among those it may take. One head per bucket is looked at, not every
        waiting caller."""
        best: tuple[float, float, int] | None = None
        chosen: WaitingCaller | None = None
        for key, bucket in list(self._buckets.items()):
            if key[0] not in seat_queues:
                continue
            top = self._top(bucket)
            if top is None:
                del self._buckets[key]  # nobody left in it: not looked at again
                continue
            head = top[2]
            if not may_take(seat_skills, head, now, relax_after_s):
                continue
            rank = (-head.priority, head.entered_at, top[1])
            if best is None or rank < best:
                best, chosen = rank, head
        return chosen


def seats_to_offer(
    caller: WaitingCaller,
    idle: Iterable[IdleSeat],
    strategy: Strategy,
    now: float,
    relax_after_s: float,
    *,
    round_robin_after: str = "",
) -> list[str]:
    """The seats to ring for a new caller: one (or all eligible, for ring-all)."""
    eligible = [s for s in idle if caller.queue in s.queues and may_take(s.skills, caller, now, relax_after_s)]
    if not eligible:
        return []
    if strategy is Strategy.RING_ALL:
        return sorted(s.seat_id for s in eligible)
    if strategy is Strategy.FEWEST_CALLS:
        return [min(eligible, key=lambda s: (s.calls_taken, s.idle_since, s.seat_id)).seat_id]
    if strategy is Strategy.ROUND_ROBIN:
        ordered = sorted(s.seat_id for s in eligible)
        after = [seat_id for seat_id in ordered if seat_id > round_robin_after]
        return [(after or ordered)[0]]
    return [min(eligible, key=lambda s: (s.idle_since, s.seat_id)).seat_id]


_Profile = tuple[frozenset[str], frozenset[str]]  # what a seat may take: (queues, skills)
_Ranked = tuple[tuple[float | str, ...], str]  # (the strategy's order key, seat id)


def _order(strategy: Strategy, seat: IdleSeat) -> tuple[float | str, ...]:
    """A seat's place in the strategy's choice (``seats_to_offer``'s ``min`` key)."""
    if strategy is Strategy.LONGEST_IDLE:
        return (seat.idle_since, seat.seat_id)
    if strategy is Strategy.FEWEST_CALLS:
        return (seat.calls_taken, seat.idle_since, seat.seat_id)
    return (seat.seat_id,)  # round robin and ring-all go by seat id


class IdlePool:
    """The idle seats of one dispatch, grouped by what they may take (queues, skills), each
    group sorted in the strategy's order: choosing seats for a caller looks at one head per
    group, not at every idle seat (a dispatch with every seat idle — a shift starting, a
    reconnect — is no longer idle seats × callers). Chooses what ``seats_to_offer`` chooses."""

    def __init__(self, idle: Iterable[IdleSeat], strategy: Strategy) -> None:
        self._strategy = strategy
        groups: dict[_Profile, list[_Ranked]] = {}
        for seat in idle:
            groups.setdefault((seat.queues, seat.skills), []).append((_order(strategy, seat), seat.seat_id))
        self._groups = {profile: sorted(ranked) for profile, ranked in groups.items()}
        self._left = sum(len(ranked) for ranked in self._groups.values())

    def __bool__(self) -> bool:
        return self._left > 0

    def take_for(self, caller: WaitingCaller, now: float, relax_after_s: float, round_robin_after: str) -> list[str]:
        """The seats to ring for ``caller``, no longer idle from now on."""
        eligible = [
            ranked for (queues, skills), ranked in self._groups.items()
            if ranked and caller.queue in queues and may_take(skills, caller, now, relax_after_s)
        ]  # fmt: skip
        if not eligible:
            return []
        if self._strategy is Strategy.RING_ALL:
            chosen = sorted(seat_id for ranked in eligible for _, seat_id in ranked)
            for ranked in eligible:
                ranked.clear()
            self._left -= len(chosen)
            return chosen
        picks = [(ranked[0], ranked, 0) for ranked in eligible]  # each group's head
        if self._strategy is Strategy.ROUND_ROBIN:  # the first seat id after the last rung, else the first
            after = [
                (ranked[i], ranked, i) for ranked in eligible if (i := _after(ranked, round_robin_after)) < len(ranked)
            ]
            picks = after or picks
        best, ranked, index = min(picks, key=lambda pick: pick[0])
        del ranked[index]
        self._left -= 1
        return [best[1]]


def _after(ranked: list[_Ranked], seat_id: str) -> int:
    """Where the first seat id greater than ``seat_id`` is, in a group ordered by seat id."""
    return bisect_right(ranked, ((seat_id,), seat_id))


def offer_plan(
    callers: Iterable[WaitingCaller],
    covered: Container[str | None],
    idle: list[IdleSeat],
    strategy: Strategy,
    now: float,
    *,
    relax_after_s: float,
    round_robin_after: str = "",
) -> tuple[list[tuple[str, str]], str]:
    """Which idle seats to ring for whom: ``callers`` best first, each not yet ``covered`` one
    offered the seats ``seats_to_offer`` would choose among the seats still idle, until none
    is (``IdlePool``; ``offer_plan_by_scan`` is the plain reference). Returns the (seat id,
    call id) offers in order, and the last seat rung (round robin)."""
    plan: list[tuple[str, str]] = []
    pool = IdlePool(idle, strategy)
    for caller in callers:
        if not pool:
            break
        if caller.call_id in covered:
            continue
        for seat_id in pool.take_for(caller, now, relax_after_s, round_robin_after):
            round_robin_after = seat_id
            plan.append((seat_id, caller.call_id))
    return plan, round_robin_after


def offer_plan_by_scan(
    callers: Iterable[WaitingCaller],
    covered: Container[str | None],
    idle: list[IdleSeat],
    strategy: Strategy,
    now: float,
    *,
    relax_after_s: float,
    round_robin_after: str = "",
) -> tuple[list[tuple[str, str]], str]:
    """The reference for ``offer_plan``: every idle seat looked at for every caller."""
    plan: list[tuple[str, str]] = []
    idle = list(idle)
    for caller in callers:
        if not idle:
            break
        if caller.call_id in covered:
            continue
        chosen = seats_to_offer(caller, idle, strategy, now, relax_after_s, round_robin_after=round_robin_after)
        for seat_id in chosen:
            idle = [s for s in idle if s.seat_id != seat_id]
            round_robin_after = seat_id
            plan.append((seat_id, caller.call_id))
    return plan, round_robin_after
