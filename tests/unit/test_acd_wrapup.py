"""After the call: wrap-up gated by a disposition (acd.require_disposition, acd.max_wrapup_s),
the disposition on the call's record, pause reasons and pause time by reason; and the IVR's
tag-derived skills and priority as the engine routes them (the fake AMI link, a real Redis)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from acd.codes import UnknownCode
from acd.events import EventBus
from acd.seat import IllegalSeatTransition, SeatState
from acd.seats import OVERDUE_REASON, DispositionDue, SeatService
from calls.redis_budget import RedisBudget
from ivr.dialplan.schema import QueueNode
from ivr.routing import queue_priority, queue_skills
from tests.support.waiting import wait_until
from tests.unit.test_acd_engine import T0, FakeClock, MakeRig, Rig, make_rig, seat

__all__ = ["make_rig"]  # the fixture, shared with test_acd_engine.py


async def talked(rig: Rig, seat_id: str, call_id: str, nth: int = 1) -> str:
    """``call_id`` waits, ``seat_id`` answers and talks, then the call ends; the offer id."""
    await rig.caller(call_id)
    offer_id = await rig.offer_to(seat_id, nth)
    binding = await rig.engine.bind(offer_id, seat_id)
    assert binding is not None and binding.call_id == call_id
    # the seat's Bridge() took the caller: it enters the seat's bridge (a call never bridged owes no disposition)
    await rig.ami.emit("BridgeEnter", Uniqueid=call_id, BridgeUniqueid=f"talk-{nth}", BridgeTechnology="simple_bridge")
    await rig.hang_up(offer_id, f"PJSIP/{seat_id}-0000000{nth}")
    return offer_id


# disposition


async def test_a_seat_owing_a_disposition_is_offered_no_call_until_it_gives_one(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), require_disposition=True, wrapup_s=0.05)
    await rig.seats.login("1001")
    await talked(rig, "1001", "a")
    seat_now = rig.seats.get("1001")
    assert (seat_now.state, seat_now.disposition_due, seat_now.last_call) == (SeatState.WRAP_UP, True, "a")
    await rig.caller("b")
    rig.clock.advance(30)
    assert rig.seats.work_view(rig.seats.get("1001"))["wrap_up_s"] == 31.0  # shown while it lasts
    with pytest.raises(DispositionDue):
        await rig.seats.ready("1001")
    await asyncio.sleep(0.15)  # wrapup_s (0.05 s, a real timer) is over …
    await rig.quiet()  # … the dispatcher has looked since …
    assert len(rig.ami.sent("Originate")) == 1  # … and still no offer
    with pytest.raises(UnknownCode, match="not one of this platform's codes"):
        await rig.seats.dispose("1001", "made_up")
    assert rig.state("1001") is SeatState.WRAP_UP  # nothing changed
    seat_after = await rig.seats.dispose("1001", "dispatched")
    assert (seat_after.state, seat_after.disposition_due) == (SeatState.READY, False)
    await rig.offer_to("1001", nth=2)  # rung for b at once
    await rig.saved()
    record = await rig.store.get("a")
    assert record is not None and record.tags["disposition"] == "dispatched"


async def test_a_disposition_the_guard_refuses_leaves_the_seat_owing_it(make_rig: MakeRig) -> None:
    """The app shell's guard (e.g. a code that needs the call's case before there is one) is
    asked with the platform, the call and the code; a refusal changes nothing."""
    asked: list[tuple[str, str, str]] = []
    cases: set[str] = set()

    async def guard(platform: str, call_id: str, code: str) -> str:
        asked.append((platform, call_id, code))
        return "" if code != "dispatched" or call_id in cases else "needs the call's case"

    rig = await make_rig(seat("1001"), require_disposition=True, wrapup_s=0.05, disposition_guard=guard)
    await rig.seats.login("1001")
    await talked(rig, "1001", "a")
    with pytest.raises(IllegalSeatTransition, match="needs the call's case"):
        await rig.seats.dispose("1001", "dispatched")
    seat_now = rig.seats.get("1001")
    assert (seat_now.state, seat_now.disposition_due) == (SeatState.WRAP_UP, True)
    cases.add("a")  # the seat registered the case
    assert (await rig.seats.dispose("1001", "dispatched")).state is SeatState.READY
    assert asked == [("kunming", "a", "dispatched")] * 2


async def test_without_the_requirement_wrap_up_ends_by_itself_and_a_disposition_may_still_be_given(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(seat("1001"), wrapup_s=0.05)
    await rig.seats.login("1001")
    await talked(rig, "1001", "a")
    assert not rig.seats.get("1001").disposition_due
    await wait_until(lambda: rig.state("1001") is SeatState.READY)
    assert (await rig.seats.dispose("1001", "answered")).state is SeatState.READY
    await rig.saved()
    record = await rig.store.get("a")
    assert record is not None and record.tags["disposition"] == "answered"


async def test_a_wrap_up_past_its_maximum_leaves_the_seat_not_ready_until_the_disposition(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), require_disposition=True, max_wrapup_s=0.1)
    await rig.seats.login("1001")
    await talked(rig, "1001", "a")
    await wait_until(lambda: rig.state("1001") is SeatState.NOT_READY)
    assert rig.seats.get("1001").reason == OVERDUE_REASON
    await rig.caller("b")
    with pytest.raises(DispositionDue):
        await rig.seats.ready("1001")
    await rig.seats.dispose("1001", "answered")
    await rig.offer_to("1001", nth=2)  # back at work: rung for b


async def test_a_seat_with_no_call_has_nothing_to_give_a_disposition_for(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), require_disposition=True)
    await rig.seats.login("1001")
    with pytest.raises(ValueError, match="no call to give a disposition for"):
        await rig.seats.dispose("1001", "answered")


async def test_logging_out_drops_what_was_owed(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), require_disposition=True)
    await rig.seats.login("1001")
    await talked(rig, "1001", "a")
    await rig.seats.logout("1001")
    await rig.seats.login("1001")
    assert rig.state("1001") is SeatState.READY and not rig.seats.get("1001").disposition_due


# the codes' seam and pause reasons


@pytest.fixture
async def seats(client: aioredis.Redis) -> SeatService:
    budget = RedisBudget()
    clock = FakeClock(T0)
    service = SeatService(
        (seat("1001"),), client, events=EventBus(client, budget, platform="dali"), clock=clock, platform="dali",
        budget=budget,
        pause_reasons=lambda platform, code: platform == "dali" and code in {"break", "sanyuejie"},
        dispositions=lambda platform, code: code == "answered",
    )  # fmt: skip
    service.clock = clock  # type: ignore[attr-defined]
    return service


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("meal", "not one of this platform's codes"),  # built in, but not in this platform's list
        ("Break", "is not a code"),
        ("break\nx", "is not a code"),
        ("b" * 33, "is not a code"),
        (7, "int is not a code"),
        (None, "NoneType is not a code"),
    ],
)
async def test_a_pause_reason_is_a_code_the_platform_has(seats: SeatService, code: object, message: str) -> None:
    await seats.login("1001")
    with pytest.raises(UnknownCode, match=message):
        await seats.pause_for("1001", code)
    assert seats.get("1001").state is SeatState.READY


async def test_pause_time_is_summed_by_reason_over_the_shift(seats: SeatService) -> None:
    clock: FakeClock = seats.clock  # type: ignore[attr-defined]
    await seats.login("1001")
    await seats.pause_for("1001", "break")
    clock.advance(60)
    await seats.pause_for("1001", "sanyuejie")  # from one pause straight into another
    clock.advance(30)
    view = seats.work_view(seats.get("1001"))
    assert (view["paused_s"], view["pause_s_by_reason"]) == (30.0, {"break": 60.0, "sanyuejie": 30.0})
    await seats.ready("1001")
    clock.advance(100)
    await seats.pause_for("1001", "break")
    clock.advance(15)
    await seats.ready("1001")
    assert seats.work_view(seats.get("1001"))["pause_s_by_reason"] == {"break": 75.0, "sanyuejie": 30.0}
    await seats.logout("1001")
    await seats.login("1001")  # a new shift
    assert seats.work_view(seats.get("1001"))["pause_s_by_reason"] == {}


async def test_seat_figures_survive_a_restart(seats: SeatService, client: aioredis.Redis) -> None:
    clock: FakeClock = seats.clock  # type: ignore[attr-defined]
    await seats.login("1001")
    await seats.pause_for("1001", "break")
    clock.advance(20)
    await seats.ready("1001")
    await seats._budget.drain()
    again = SeatService(
        (seat("1001"),),
        client,
        events=EventBus(client, RedisBudget(), platform="dali"),
        clock=clock,
        platform="dali",
    )
    await again.load()
    assert again.get("1001").pause_totals == (("break", 20.0),)


# routing from the IVR's tags


async def test_a_dialect_caller_goes_to_the_dialect_seat_while_a_plain_seat_is_free(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), seat("1002", skills=("dialect",)), relax_skills_after_s=60.0)
    await rig.seats.login("1001")  # longest idle: would be chosen for a plain caller
    rig.clock.advance(5)
    await rig.seats.login("1002")
    node = QueueNode(kind="queue", skills=("language",), next="vm")
    tags = {"language": "dialect", "priority": "3"}
    call = await rig.caller("d", skills=queue_skills(node, tags), priority=queue_priority(node, tags))
    assert (call.skills, call.priority) == (("dialect",), 3)
    await rig.offer_to("1002")
    assert rig.intended() == {"1002": "d"}


async def test_a_dialect_caller_nobody_can_serve_goes_to_any_seat_after_the_relaxation(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), relax_skills_after_s=60.0)
    await rig.seats.login("1001")
    await rig.caller("d", skills=("dialect",))
    await rig.caller("plain")
    await rig.offer_to("1001")
    assert rig.intended() == {"1001": "plain"}  # the dialect caller waits for its seat first …
    rig.clock.advance(60)  # … until it has waited relax_skills_after_s
    binding = await rig.engine.bind(rig.ami.sent("Originate")[0]["ChannelId"], "1001")
    assert binding is not None and binding.call_id == "d"  # bound at answer: it waited longest


async def test_priority_callers_are_served_first_and_in_arrival_order_among_themselves(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001", ready=False)
    for call_id, priority in (("p0-a", 0), ("p5-a", 5), ("p0-b", 0), ("p5-b", 5), ("p7", 7)):
        await rig.caller(call_id, priority=priority)
    assert [c.call_id for c in rig.engine.waiting()] == ["p7", "p5-a", "p5-b", "p0-a", "p0-b"]
    positions = {c: rig.engine.position(c) for c in ("p7", "p5-b", "p0-b")}
    assert {c: p.position for c, p in positions.items() if p} == {"p7": 1, "p5-b": 3, "p0-b": 5}
    await rig.seats.ready("1001")
    bound = []
    for nth in range(1, 4):
        offer_id = await rig.offer_to("1001", nth)
        binding = await rig.engine.bind(offer_id, "1001")
        assert binding is not None
        bound.append(binding.call_id)
        await rig.hang_up(offer_id, f"PJSIP/1001-0000000{nth}")
    assert bound == ["p7", "p5-a", "p5-b"]
