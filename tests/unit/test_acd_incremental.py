"""The ACD's incremental structures agree with a plain scan and sort (issue 19 item 12, issue 20).

- the router's caller index (``CallerIndex.best_for``) picks what a scan of every waiting
  caller picks, for random seats, skills, priorities, arrivals and departures;
- the waiting callers' per-queue rank lists give the order, positions and per-queue views a
  sort of every caller gives;
- the offer plan made from those lists (only the queues idle seats serve) and the idle pool
  (idle seats grouped by what they may take, one head per group looked at) is the plan made
  from every caller sorted and every idle seat looked at for each;
- the offer book's indexes (busy seats, the callers ringing offers cover and the offers a
  departure orphans, the offers bound to a caller) say what a walk over every offer says,
  through offers made, bound, re-pointed, withdrawn and ended;
- and end to end: the engine dispatching incrementally makes the same offers, step by step,
  as the engine on the plain path (``reference_dispatch``), on a random script of callers
  arriving and leaving, seats answering, missing, pausing, logging out and hanging up — the
  same re-pointing, withdrawals, positions, staffed queues and callers sent on from queues
  nobody staffs; and in the incremental engine, after every step, the offer book's indexes
  and the seats' per-queue counts agree with a scan.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.model import Offer, QueuedCall
from acd.ringing import OfferBook
from acd.router import CallerIndex, IdleSeat, Strategy, WaitingCaller, may_take, offer_plan, offer_plan_by_scan
from acd.seat import Seat, SeatState
from acd.seats import _saved
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
        st.integers(min_value=0, max_value=6),  # idle since: few values, so ties happen
        st.integers(min_value=0, max_value=3),  # calls taken
    ),
    max_size=14,
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

    last_rung = f"{1000 + now % 13}" if now % 3 else ""  # round robin goes on after it

    def plan(order: list[WaitingCaller] | Any, planner: Any = offer_plan) -> tuple[list[tuple[str, str]], str]:
        return cast(
            tuple[list[tuple[str, str]], str],
            planner(order, covered, idle, strategy, float(now), relax_after_s=RELAX_S, round_robin_after=last_rung),
        )

    # the reference: every caller sorted, every idle seat looked at for each
    expected = plan([c.waiting() for c in waiting.ordered_by_sort()], offer_plan_by_scan)
    assert plan([c.waiting() for c in waiting.ordered_by_sort()]) == expected  # the idle pool
    assert plan(c.waiting() for c in waiting.in_order(served)) == expected  # and the rank lists


@pytest.mark.parametrize("strategy", list(Strategy))
def test_the_idle_pool_plans_what_a_scan_of_every_idle_seat_plans_at_size(strategy: Strategy) -> None:
    """Larger shapes than hypothesis tends to draw: up to 40 idle seats with many ties, 80 callers."""
    rng = random.Random(strategy.value)
    for _ in range(200):
        idle = [
            IdleSeat(
                f"{1000 + rng.randrange(100)}-{n}", frozenset(rng.sample(QUEUES, rng.randint(1, 3))),
                frozenset(rng.sample(SKILLS, rng.randint(0, 2))), float(rng.randrange(4)), rng.randrange(3),
            )
            for n in range(rng.randint(0, 40))
        ]  # fmt: skip
        order = [
            WaitingCaller(f"k-{n}", rng.choice(QUEUES), frozenset(rng.sample(SKILLS, rng.randint(0, 1))), 0, float(n))
            for n in range(rng.randint(0, 80))
        ]
        covered = {f"k-{n}" for n in range(0, 80, 7)}
        now, last = float(rng.choice((10, 100))), f"{1000 + rng.randrange(100)}"
        args = (order, covered, idle, strategy, now)
        expected = offer_plan_by_scan(*args, relax_after_s=RELAX_S, round_robin_after=last)
        assert offer_plan(*args, relax_after_s=RELAX_S, round_robin_after=last) == expected


book_steps = st.lists(
    st.tuples(
        st.sampled_from(("add", "pop", "bind", "repoint", "withdraw")),
        st.integers(min_value=0, max_value=9),  # which offer
        st.sampled_from("abc"),  # a seat
        st.sampled_from(("k-1", "k-2", "k-3", None)),  # a caller
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(book_steps)
def test_the_offer_book_indexes_agree_with_a_walk_over_every_offer(
    steps: list[tuple[str, int, str, str | None]],
) -> None:
    book = OfferBook()
    for action, number, seat_id, caller in steps:
        offer_id = f"offer-{number}"
        offer = book.get(offer_id)
        if action == "add":
            book[offer_id] = Offer(offer_id, seat_id, caller, 0.0)
        elif action == "pop":
            book.pop(offer_id, None)
        elif offer is not None and action == "bind":
            book.bind(offer, caller or "k-0", 1.0)
        elif offer is not None and action == "repoint" and caller is not None:
            book.repoint(offer, caller)
        elif offer is not None and action == "withdraw":
            book.withdraw(offer)
        assert book.agrees_with_scan()
        for candidate in "abc":
            assert book.busy(candidate) == any(o.seat_id == candidate for o in book.values())
        ringing = [o for o in book.values() if o.bound is None and not o.withdrawn]
        for who in ("k-0", "k-1", "k-2", "k-3", None):
            assert (who in book.covering()) == any(o.intended == who for o in ringing)
            assert book.ringing_for([who]) == [o for o in ringing if o.intended == who]  # in the order made
            if who is not None:
                assert book.bound_to(who) == [o for o in book.values() if o.bound == who]
        assert book.ringing_for(["k-1", "k-2", None]) == [o for o in ringing if o.intended in ("k-1", "k-2", None)]


@given(
    st.sampled_from(list(SeatState)),
    st.text(max_size=8),
    st.none() | st.datetimes(timezones=st.just(UTC)),
    st.lists(st.tuples(st.text(max_size=8), st.floats(allow_nan=False, allow_infinity=False)), max_size=3),
)
def test_a_seat_is_saved_as_asdict_would_save_it(
    state: SeatState, reason: str, since: datetime | None, totals: list[tuple[str, float]]
) -> None:
    """The shallow copy saved per seat change writes the same JSON as ``dataclasses.asdict``."""
    seat = Seat("1001", state, reason, since, 1, 7, "k-1", True, tuple(totals))
    deep = {**asdict(seat), "state": seat.state.value, "since": seat.since.isoformat() if seat.since else None}
    assert json.dumps(_saved(seat)) == json.dumps(deep)


# end to end: the same script on both paths


SEATS = (
    seat("1001"),
    seat("1002", skills=("yi",)),
    seat("1003", queues=("general", "complaint")),
    seat("1004", skills=("yi", "bai"), queues=("complaint",)),
    seat("1005", queues=("dialect",)),
)


def observed(rig: Rig) -> tuple[object, ...]:
    """What the engine decided so far: offers (seat → caller), seat states, the queue, each
    caller's position and expected wait, which queues are staffed, and every action sent to
    Asterisk (offer ids are random: an offer's channel is named by its seat)."""
    offers = sorted((o.seat_id, o.intended or "", o.bound or "", o.withdrawn, o.bridged) for o in rig.engine.offers())
    states = [(s.seat_id, s.state.value) for s in rig.seats.all()]
    rung = [a["Channel"] for a in rig.ami.sent("Originate")]
    waiting = [c.call_id for c in rig.engine.waiting()]
    positions = [rig.engine.position(call_id) for call_id in waiting]
    staffed = [rig.engine.staffed(queue) for queue in QUEUES]
    actions = [
        (a["Action"], a.get("Variable", ""), a.get("Value", ""), a.get("Channel", "")) for a in rig.ami.actions
        if a["Action"] != "Originate" and not a.get("Channel", "").startswith("offer-")
    ]  # fmt: skip
    return offers, states, rung, waiting, positions, staffed, actions


def agrees_with_scan(rig: Rig) -> None:
    """The incremental engine's indexes say what a walk over every offer and seat says."""
    assert rig.engine._ringing.offers.agrees_with_scan()
    for queue in QUEUES:
        assert rig.seats.serving(queue) == rig.seats.serving_by_scan(queue)
        assert rig.seats.staffed(queue) == rig.seats.staffed_by_scan(queue)
    assert rig.seats.ready_ids() == {s.seat_id for s in rig.seats.all() if s.state is SeatState.READY}


async def toggle(rig: Rig, seat_id: str, rng: random.Random) -> None:
    """A person changes a seat's state: ready, paused, logged out, logged in again."""
    state = rig.state(seat_id)
    if state is SeatState.NOT_READY:
        await (rig.seats.ready(seat_id) if rng.random() < 0.7 else rig.seats.logout(seat_id))
    elif state is SeatState.READY:
        await rig.seats.pause(seat_id, "break")
    elif state is SeatState.LOGGED_OUT:
        await rig.seats.login(seat_id, ready=rng.random() < 0.5)


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
            binding = await rig.engine.bind(offer.offer_id, offer.seat_id)
            if binding is not None and rng.random() < 0.8:
                await rig.ami.emit("BridgeEnter", Uniqueid=binding.call_id, Channel=binding.caller_channel)
        elif step < 0.67 and ringing:
            await rig.no_answer(rng.choice(ringing).offer_id)
        elif step < 0.8 and talking:
            await rig.hang_up(rng.choice(talking).offer_id)
        elif step < 0.87:
            await toggle(rig, rng.choice(SEATS).id, rng)
        else:
            rig.clock.advance(rng.choice((5, 30, 61)))
        await rig.engine._distribution.dispatch()  # one dispatch per step: no timing involved
        if not rig.engine._distribution.reference:
            agrees_with_scan(rig)
        trace.append(observed(rig))
    return trace


@pytest.mark.parametrize("script_seed", [1, 2, 3, 4, 5, 6])
async def test_the_engine_dispatching_incrementally_offers_what_the_plain_path_offers(
    make_rig: MakeRig, script_seed: int
) -> None:
    plain_rig = await make_rig(*SEATS, start=False, reference_dispatch=True)
    plain = await play(plain_rig, script_seed)
    # the second engine starts as a new platform, not as the first one restarted (it would adopt
    # the seat states the first saved, as far as its write-behind had got: a race on timing)
    assert await plain_rig.budget.drain(10)
    await plain_rig.client.flushdb()
    incremental = await play(await make_rig(*SEATS, start=False), script_seed)
    assert incremental == plain
    assert any(offers for offers, *_ in plain)  # the script did make offers
    actions = cast(list[tuple[str, str, str, str]], plain[-1][-1])
    released = [action for action in actions if action[2] == "leaveempty"]
    assert released or script_seed == 2  # callers sent on from a queue nobody staffed (seed 2 never leaves one)
