"""The ACD's incremental structures agree with a plain scan and sort (issue 19 item 12, issue 20).

- the router's caller index (``CallerIndex.best_for``) picks what a scan of every waiting
  caller picks, for random seats, skills, priorities, arrivals and departures;
- the waiting callers' per-queue rank lists give the order, positions and per-queue views a
  sort of every caller gives;
- the offer plan made from those lists (only the queues idle seats serve) is the plan made
  from every caller sorted;
- the offer book's per-seat count says busy exactly for the seats with an offer in flight;
- and end to end: the engine dispatching incrementally makes the same offers, step by step,
  as the engine on the plain path (``reference_dispatch``), on a random script of callers
  arriving and leaving, seats answering, missing, pausing and hanging up.
"""

from __future__ import annotations

import random
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.model import Offer, QueuedCall
from acd.ringing import OfferBook
from acd.router import CallerIndex, IdleSeat, Strategy, WaitingCaller, may_take, offer_plan
from acd.seat import SeatState
from acd.waiting import WaitingCallers
from tests.unit import test_acd_engine
from tests.unit.test_acd_engine import MakeRig, Rig, seat

make_rig = test_acd_engine.make_rig  # the engine tests' fixture: engines on a real redis-server

QUEUES = ("general", "complaint", "dialect")
SKILLS = ("yi", "bai", "dai")
RELAX_S = 60.0

skill_sets = st.frozensets(st.sampled_from(SKILLS), max_size=2)
callers = st.lists(
    st.tuples(
        st.sampled_from(QUEUES),
        skill_sets,
        st.integers(min_value=0, max_value=2),  # priority
        st.integers(min_value=0, max_value=200),  # arrival: few values, so ties happen
    ),
    max_size=40,
)
seats = st.lists(
    st.tuples(
        st.frozensets(st.sampled_from(QUEUES), min_size=1),
        skill_sets,
        st.integers(min_value=0, max_value=50),  # idle since
        st.integers(min_value=0, max_value=5),  # calls taken
    ),
    max_size=12,
)
departures = st.lists(st.integers(min_value=0, max_value=60), max_size=20)


def queued(index: int, queue: str, skills: frozenset[str], priority: int, at: int) -> QueuedCall:
    return QueuedCall(f"k-{index}", f"PJSIP/trunk-{index}", queue, tuple(sorted(skills)), priority, float(at))


def filled(population: list[tuple[str, frozenset[str], int, int]], gone: list[int]) -> WaitingCallers:
    """Callers added, some taken again (and one re-added: it queues anew at the back of its rank)."""
    waiting = WaitingCallers(cast(Any, None), "kunming")  # add/take/order never touch Redis
    for index, (queue, skills, priority, at) in enumerate(population):
        waiting.add(queued(index, queue, skills, priority, at))
    for index in gone:
        taken = waiting.take(f"k-{index}")
        if taken is not None and index % 7 == 0:
            waiting.add(taken)
    return waiting


def linear_best(calls: list[QueuedCall], queues: frozenset[str], skills: frozenset[str], now: float) -> str | None:
    best: QueuedCall | None = None
    for call in calls:
        eligible = call.queue in queues and may_take(skills, call.waiting(), now, RELAX_S)
        if eligible and (best is None or call.rank < best.rank):
            best = call
    return None if best is None else best.call_id


@settings(max_examples=300, deadline=None)
@given(callers, departures, seats, st.integers(min_value=0, max_value=300))
def test_the_caller_index_and_rank_lists_agree_with_a_plain_scan(
    population: list[tuple[str, frozenset[str], int, int]],
    gone: list[int],
    seat_list: list[tuple[frozenset[str], frozenset[str], int, int]],
    now: int,
) -> None:
    waiting = filled(population, gone)
    reference = waiting.ordered_by_sort()
    assert [c.call_id for c in waiting.ordered()] == [c.call_id for c in reference]
    for queue in QUEUES:
        assert [c.call_id for c in waiting.ordered(queue)] == [c.call_id for c in reference if c.queue == queue]
    for call in reference:
        assert waiting.ahead_of(call) == sum(1 for o in reference if o.queue == call.queue and o.rank < call.rank)
    for queues, skills, _, _ in seat_list:
        chosen = waiting.best_for(queues, skills, float(now), RELAX_S)
        expected = linear_best(reference, queues, skills, float(now))
        assert (None if chosen is None else chosen.call_id) == expected
        # the bare index too, with the same departures
        index = CallerIndex()
        for call in reference:
            index.add(call.waiting())
        picked = index.best_for(queues, skills, float(now), RELAX_S)
        assert (None if picked is None else picked.call_id) == expected


@settings(max_examples=300, deadline=None)
@given(
    callers,
    departures,
    seats,
    st.sampled_from(list(Strategy)),
    st.integers(min_value=0, max_value=300),
    st.sets(st.integers(min_value=0, max_value=40), max_size=10),
)
def test_the_offer_plan_from_the_rank_lists_is_the_plan_from_a_sort(  # noqa: PLR0917 — hypothesis's arguments
    population: list[tuple[str, frozenset[str], int, int]],
    gone: list[int],
    seat_list: list[tuple[frozenset[str], frozenset[str], int, int]],
    strategy: Strategy,
    now: int,
    covered_indexes: set[int],
) -> None:
    waiting = filled(population, gone)
    idle = [
        IdleSeat(f"{1000 + i}", queues, skills, float(since), taken)
        for i, (queues, skills, since, taken) in enumerate(seat_list)
    ]
    covered: set[str | None] = {f"k-{i}" for i in covered_indexes}
    served = {queue for s in idle for queue in s.queues}

    def plan(order: list[WaitingCaller] | Any) -> tuple[list[tuple[str, str]], str]:
        return offer_plan(order, covered, idle, strategy, float(now), relax_after_s=RELAX_S, round_robin_after="1003")

    expected = plan([c.waiting() for c in waiting.ordered_by_sort()])
    assert plan(c.waiting() for c in waiting.in_order(served)) == expected


@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=9), st.sampled_from("abc")), max_size=60))
def test_the_offer_book_knows_the_busy_seats_without_a_scan(steps: list[tuple[bool, int, str]]) -> None:
    book = OfferBook()
    for add, number, seat_id in steps:
        offer_id = f"offer-{number}"
        if add:
            book[offer_id] = Offer(offer_id, seat_id, None, 0.0)
        else:
            book.pop(offer_id, None)
        for candidate in "abc":
            assert book.busy(candidate) == any(o.seat_id == candidate for o in book.values())


# end to end: the same script on both paths


SEATS = (
    seat("1001"),
    seat("1002", skills=("yi",)),
    seat("1003", queues=("general", "complaint")),
    seat("1004", skills=("yi", "bai"), queues=("complaint",)),
    seat("1005", queues=("dialect",)),
)


def observed(rig: Rig) -> tuple[object, ...]:
    """What the dispatcher decided so far: offers (seat → caller), seat states, the queue."""
    offers = sorted((o.seat_id, o.intended or "", o.bound or "", o.withdrawn) for o in rig.engine.offers())
    states = [(s.seat_id, s.state.value) for s in rig.seats.all()]
    rung = [a["Channel"] for a in rig.ami.sent("Originate")]
    return offers, states, rung, [c.call_id for c in rig.engine.waiting()]


async def play(rig: Rig, script_seed: int) -> list[tuple[object, ...]]:
    """A random script (the same for the same seed); the dispatcher run after every step."""
    rng = random.Random(script_seed)
    for config in SEATS:
        await rig.seats.login(config.id)
    trace = []
    arrivals = 0
    for _ in range(120):
        step = rng.random()
        ringing = [o for o in rig.engine.offers() if o.bound is None and not o.withdrawn]
        talking = [o for o in rig.engine.offers() if o.bound is not None]
        waiting = rig.engine.waiting()
        if step < 0.35:
            arrivals += 1
            skills = (rng.choice(("yi", "bai")),) if rng.random() < 0.3 else ()
            priority = rng.choice((0, 0, 0, 1))
            await rig.caller(f"k-{arrivals}", priority=priority, skills=skills, queue=rng.choice(QUEUES))
        elif step < 0.45 and waiting:
            await rig.hang_up(rng.choice(waiting).call_id)
        elif step < 0.6 and ringing:
            offer = rng.choice(ringing)
            await rig.ami.emit("OriginateResponse", Uniqueid=offer.offer_id, Response="Success")
            await rig.engine.bind(offer.offer_id, offer.seat_id)
        elif step < 0.67 and ringing:
            await rig.no_answer(rng.choice(ringing).offer_id)
        elif step < 0.8 and talking:
            await rig.hang_up(rng.choice(talking).offer_id)
        elif step < 0.87:
            config = rng.choice(SEATS)
            state = rig.state(config.id)
            if state is SeatState.NOT_READY:
                await rig.seats.ready(config.id)
            elif state is SeatState.READY:
                await rig.seats.pause(config.id, "break")
        else:
            rig.clock.advance(rng.choice((5, 30, 61)))
        await rig.engine._distribution.dispatch()  # one dispatch per step: no timing involved
        trace.append(observed(rig))
    return trace


@pytest.mark.parametrize("script_seed", [1, 2, 3])
async def test_the_engine_dispatching_incrementally_offers_what_the_plain_path_offers(
    make_rig: MakeRig, script_seed: int
) -> None:
    plain = await play(await make_rig(*SEATS, start=False, reference_dispatch=True), script_seed)
    incremental = await play(await make_rig(*SEATS, start=False), script_seed)
    assert incremental == plain
    assert any(offers for offers, *_ in plain)  # the script did make offers
