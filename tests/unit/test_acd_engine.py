"""The ACD engine on a fake AMI link and a real redis-server: offers, late binding, withdrawal,
missed offers, priority, skills and their relaxation, unstaffed queues, resync, wrap-up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from acd.config import AcdConfig, SeatConfig
from acd.engine import OFFER_RETRY_S, ORIGINATE_GRACE_S, AcdEngine
from acd.events import EventBus
from acd.model import CALLBACK_PREFIX, QueuedCall, waiting_key
from acd.seat import SeatState
from acd.seats import DispositionGuard, SeatService
from calls.model import CallOutcome
from calls.redis_budget import RedisBudget
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from telephony.ami_types import AmiActionFailed, AmiNotConnected, AmiTimeout
from telephony.dialplan_names import HOLD_CONTEXT, LEFT_VARIABLE, MAX_WAIT_VARIABLE, SEATED_VARIABLE
from tests.support.fake_ami_link import FakeAmiLink
from tests.support.waiting import wait_until

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "seat-secret-1"


class FakeClock:
    """The engine's clock, moved only by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def seat(seat_id: str, skills: tuple[str, ...] = (), queues: tuple[str, ...] = ("general",)) -> SeatConfig:
    return SeatConfig(id=seat_id, secret=SECRET, skills=skills, queues=queues)


@dataclass
class Rig:
    engine: AcdEngine
    seats: SeatService
    ami: FakeAmiLink
    tracker: CallTracker
    store: RedisCallStore
    client: aioredis.Redis
    clock: FakeClock
    budget: RedisBudget
    channels: dict[str, str] = field(default_factory=dict)  # call id → caller channel
    passes_started: int = 0  # the dispatcher's passes (counted by make_rig)
    passes_done: int = 0

    async def quiet(self) -> None:
        """Return once the dispatcher has run a whole pass begun after this call: whatever it
        would do with the state so far (an offer a test says must not come), it has done."""
        begun = self.passes_started
        self.engine.kick()
        await wait_until(lambda: self.passes_done > begun)

    async def saved(self) -> None:
        """Redis has every write made so far (the engine never waits for them)."""
        await self.budget.drain()
        await self.tracker.flush_dirty()

    async def caller(
        self,
        call_id: str,
        *,
        priority: int = 0,
        skills: tuple[str, ...] = (),
        queue: str = "general",
        max_wait_s: float = 0.0,
    ) -> QueuedCall:
        """A caller arrives, passes the IVR and is queued; the clock moves on a second."""
        channel = f"PJSIP/trunk-{call_id}"
        self.channels[call_id] = channel
        await self.tracker.channel_created(call_id, channel, "13800000000", "", "12345")
        at = self.clock().timestamp()
        call = QueuedCall(call_id, channel, queue, skills, priority, at, caller="13800000000", max_wait_s=max_wait_s)
        await self.engine.enqueue(call)
        self.clock.advance(1)
        return call

    async def originates(self, count: int) -> list[dict[str, str]]:
        """Wait for ``count`` Originate actions in all; returns them."""
        await wait_until(lambda: len(self.ami.sent("Originate")) >= count)
        return self.ami.sent("Originate")

    async def offer_to(self, seat_id: str, nth: int = 1) -> str:
        """The offer id of the ``nth`` Originate so far, checked to ring ``seat_id``."""
        action = (await self.originates(nth))[nth - 1]
        assert action["Channel"] == f"PJSIP/{seat_id}"
        return action["ChannelId"]

    def state(self, seat_id: str) -> SeatState:
        return self.seats.get(seat_id).state

    def intended(self) -> dict[str, str | None]:
        """Seat → the caller its live offer is rung for."""
        return {offer.seat_id: offer.intended for offer in self.engine.offers()}

    async def hang_up(self, uniqueid: str, channel: str = "") -> None:
        await self.ami.emit("Hangup", Uniqueid=uniqueid, Channel=channel or self.channels.get(uniqueid, ""))

    async def no_answer(self, offer_id: str) -> None:
        """The seat's phone rang out: its channel ends, then the OriginateResponse says Failure."""
        await self.ami.emit("Hangup", Uniqueid=offer_id, Channel="PJSIP/x-1", Cause="19")
        await self.ami.emit("OriginateResponse", Uniqueid=offer_id, Response="Failure", Reason="3")


MakeRig = Callable[..., Awaitable[Rig]]
WAITING_KEY_KM = waiting_key("kunming")


@pytest.fixture
async def make_rig(client: aioredis.Redis) -> AsyncIterator[MakeRig]:
    engines: list[AcdEngine] = []
    budgets: list[RedisBudget] = []

    async def make(
        *configs: SeatConfig,
        max_missed: int = 2,
        start: bool = True,
        connected: bool = True,
        offer_retry_s: float = OFFER_RETRY_S,
        originate_grace_s: float = ORIGINATE_GRACE_S,
        disposition_guard: DispositionGuard | None = None,
        reference_dispatch: bool = False,
        **acd: Any,
    ) -> Rig:
        clock = FakeClock(T0)
        budget = RedisBudget()
        budgets.append(budget)
        events = EventBus(client, budget, platform="kunming")
        seats = SeatService(
            configs,
            client,
            events=events,
            clock=clock,
            platform="kunming",
            max_missed=max_missed,
            budget=budget,
            disposition_guard=disposition_guard,
        )
        await seats.load()
        ami = FakeAmiLink()
        ami.connected = connected
        store = RedisCallStore(client, timedelta(days=1), "kunming")
        tracker = CallTracker(store, "kunming", clock, budget)
        config = AcdConfig(**{"wrapup_s": 0.0, "relax_skills_after_s": 60.0, **acd})
        engine = AcdEngine(
            config=config,
            seats=seats,
            ami=ami,
            client=client,
            tracker=tracker,
            events=events,
            clock=clock,
            recordings_dir=None,
            platform="kunming",
            budget=budget,
            offer_retry_s=offer_retry_s,
            originate_grace_s=originate_grace_s,
            reference_dispatch=reference_dispatch,
        )
        engines.append(engine)
        rig = Rig(engine, seats, ami, tracker, store, client, clock, budget)
        dispatch = engine._distribution.dispatch

        async def counted_dispatch() -> None:  # passes run one at a time (one dispatch task)
            rig.passes_started += 1
            begun = rig.passes_started
            try:
                await dispatch()
            finally:
                rig.passes_done = begun

        engine._distribution.dispatch = counted_dispatch  # type: ignore[method-assign]
        if start:
            engine.start()
        return rig

    yield make
    for engine in engines:
        await engine.close()
    for budget in budgets:
        await budget.close()


# 1. the plain path


async def test_an_idle_seat_is_rung_and_bound_to_the_caller_when_it_answers(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("k-1")
    [originate] = await rig.originates(1)
    offer_id = originate["ChannelId"]
    assert offer_id.startswith("offer-")
    assert originate["Channel"] == "PJSIP/1001"
    assert originate["Async"] == "true"
    assert "Variable" not in originate  # the offer is the channel's uniqueid: the seat AGI reads it there
    assert rig.state("1001") is SeatState.RINGING
    assert rig.intended() == {"1001": "k-1"}

    binding = await rig.engine.bind(offer_id, "1001")
    assert binding is not None
    assert (binding.call_id, binding.caller_channel, binding.recording) == ("k-1", "PJSIP/trunk-k-1", "")
    assert rig.state("1001") is SeatState.ON_CALL
    assert rig.engine.waiting() == []
    await rig.saved()
    assert await rig.client.hlen(WAITING_KEY_KM) == 0
    live = rig.tracker.get_live("k-1")
    assert live is not None
    assert (live.seat, live.outcome, live.seat_answered_at) == ("1001", CallOutcome.ANSWERED, T0 + timedelta(seconds=1))
    await rig.saved()
    stored = await rig.store.get("k-1")
    assert stored is not None
    assert (stored.seat, stored.outcome) == ("1001", CallOutcome.ANSWERED)
    # max wait no longer applies: the caller must not be cut off mid-talk
    assert {"Action": "Setvar", "Channel": "PJSIP/trunk-k-1", "Variable": "TIMEOUT(absolute)", "Value": "0"} in (
        rig.ami.sent("Setvar")
    )


# 2. late binding


async def test_an_offer_rung_for_a_caller_who_left_is_re_pointed_to_the_next(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("a")
    offer_id = await rig.offer_to("1001")
    await rig.caller("b")
    assert rig.intended() == {"1001": "a"}
    await rig.hang_up("a")
    assert rig.intended() == {"1001": "b"}
    assert rig.ami.sent("Hangup") == []
    assert [c.call_id for c in rig.engine.waiting()] == ["b"]
    binding = await rig.engine.bind(offer_id, "1001")
    assert binding is not None
    assert binding.caller_channel == "PJSIP/trunk-b"
    await rig.quiet()
    assert len(rig.ami.sent("Originate")) == 1


# 3. withdrawal


async def test_an_offer_nobody_can_take_is_withdrawn_and_not_counted_as_missed(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("a")
    offer_id = await rig.offer_to("1001")
    await rig.ami.emit("Newchannel", Uniqueid=offer_id, Channel="PJSIP/1001-00000007")
    await rig.hang_up("a")
    assert rig.ami.sent("Hangup") == [{"Action": "Hangup", "Channel": "PJSIP/1001-00000007", "Cause": "16"}]
    assert rig.state("1001") is SeatState.RINGING  # until Asterisk says the phone stopped
    await rig.no_answer(offer_id)
    seat_now = rig.seats.get("1001")
    assert (seat_now.state, seat_now.missed_in_a_row) == (SeatState.READY, 0)
    assert rig.engine.offers_missed == 0
    assert rig.engine.offers() == []


# 4. a missed offer


async def test_a_missed_offer_pauses_the_seat_and_the_caller_goes_to_the_next_seat(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), seat("1002"), max_missed=1)
    await rig.seats.login("1001")
    await rig.seats.login("1002")
    await rig.caller("a")
    first = await rig.offer_to("1001")
    await rig.no_answer(first)
    seat_now = rig.seats.get("1001")
    assert (seat_now.state, seat_now.reason, seat_now.missed_in_a_row) == (SeatState.NOT_READY, "no answer", 1)
    assert rig.engine.offers_missed == 1
    await rig.offer_to("1002", nth=2)
    assert rig.intended() == {"1002": "a"}
    assert rig.ami.sent("Setvar") == []  # 1002 still staffs the queue: nobody is sent away


# 4b. an offer that fails for no fault of the seat (AMI, the controller, Asterisk itself)


@pytest.mark.parametrize(
    "error", [AmiActionFailed("Originate: Permission denied"), AmiNotConnected("AMI is not connected")], ids=str
)
async def test_an_originate_asterisk_did_not_take_is_not_the_seats_miss(make_rig: MakeRig, error: Exception) -> None:
    rig = await make_rig(seat("1001"), max_missed=1, offer_retry_s=0.05)
    await rig.seats.login("1001")
    rig.ami.fail_at = {n: error for n in range(3)}  # the first three Originates fail
    await rig.caller("a")
    await rig.originates(4)  # tried again and again (resting between tries), never paused
    seat_now = rig.seats.get("1001")
    assert seat_now.missed_in_a_row == 0
    assert seat_now.state is SeatState.RINGING  # the fourth rings
    assert (rig.engine.offers_missed, rig.engine.offers_not_started) == (0, 3)
    assert rig.intended() == {"1001": "a"}  # the caller is still offered, not lost


async def test_an_originate_without_reply_is_settled_by_asterisk_or_given_up_unheld(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), seat("1002"), max_missed=1, ring_timeout_s=0.1, originate_grace_s=0.1)
    await rig.seats.login("1001")
    rig.ami.fail_at = {len(rig.ami.actions): AmiTimeout("no reply to Originate within 5 s")}
    await rig.caller("a")
    await rig.originates(1)
    await wait_until(lambda: rig.engine.offers_unconfirmed == 1)
    assert rig.state("1001") is SeatState.RINGING  # it may ring after all: not offered twice
    # Asterisk says nothing of it (it never ran): after the ring time and a grace it is given up
    await wait_until(lambda: len(rig.ami.sent("Originate")) == 2)
    assert rig.seats.get("1001").missed_in_a_row == 0
    assert rig.intended() == {"1001": "a"}
    # an Originate whose reply was lost but which rang: its OriginateResponse settles it as usual
    second = rig.ami.sent("Originate")[1]["ChannelId"]
    await rig.no_answer(second)
    assert rig.seats.get("1001").state is SeatState.NOT_READY  # rang out: that is the seat's miss


@pytest.mark.parametrize("reason", ["", "2", "4"])
async def test_a_failure_asterisk_gives_no_seat_reason_for_is_not_counted(make_rig: MakeRig, reason: str) -> None:
    rig = await make_rig(seat("1001"), max_missed=1, offer_retry_s=0.05)
    await rig.seats.login("1001")
    await rig.caller("a")
    offer_id = await rig.offer_to("1001")
    await rig.ami.emit("OriginateResponse", Uniqueid=offer_id, Response="Failure", Reason=reason)
    assert rig.seats.get("1001").missed_in_a_row == 0
    assert rig.engine.offers_missed == 0
    await rig.offer_to("1001", nth=2)  # offered again after a rest


@pytest.mark.parametrize(
    ("reason", "what"), [("0", "unreachable"), ("1", "rejected"), ("5", "busy"), ("8", "congestion")]
)
async def test_no_answer_busy_rejected_or_unreachable_is_the_seats_miss(
    make_rig: MakeRig, reason: str, what: str
) -> None:
    rig = await make_rig(seat("1001"), max_missed=1)
    await rig.seats.login("1001")
    await rig.caller("a")
    offer_id = await rig.offer_to("1001")
    await rig.ami.emit("OriginateResponse", Uniqueid=offer_id, Response="Failure", Reason=reason)
    assert rig.seats.get("1001").state is SeatState.NOT_READY, what
    assert rig.engine.offers_missed == 1


# 5. priority


async def test_a_priority_caller_arriving_later_is_bound_first(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("normal")
    offer_id = await rig.offer_to("1001")
    await rig.caller("elder", priority=5)
    binding = await rig.engine.bind(offer_id, "1001")
    assert binding is not None
    assert binding.call_id == "elder"
    assert [c.call_id for c in rig.engine.waiting()] == ["normal"]


async def test_a_priority_caller_is_offered_first_when_a_seat_comes(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"))
    await rig.caller("normal")
    await rig.caller("elder", priority=5)
    assert rig.engine.waiting()[0].call_id == "elder"
    await rig.seats.login("1001")
    await rig.offer_to("1001")
    assert rig.intended() == {"1001": "elder"}


# 6. skills and their relaxation


async def test_a_skilled_caller_waits_for_a_skilled_seat_until_relaxed(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), seat("1002", skills=("yi",)), relax_skills_after_s=60.0)
    await rig.seats.login("1001")  # longest idle: would be chosen first for anyone
    await rig.seats.login("1002")
    await rig.caller("yi-1", skills=("yi",))
    await rig.offer_to("1002")
    await rig.caller("yi-2", skills=("yi",))
    await rig.quiet()
    assert len(rig.ami.sent("Originate")) == 1  # 1001 lacks the skill
    rig.clock.advance(60)
    rig.engine.kick()
    await rig.offer_to("1001", nth=2)
    assert rig.intended() == {"1002": "yi-1", "1001": "yi-2"}


# 7. an unstaffed queue


async def test_callers_of_a_queue_nobody_staffs_are_sent_to_overflow(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), seat("2001", queues=("dialect",)))
    await rig.seats.login("1001")
    await rig.seats.login("2001")
    await rig.caller("general-1", skills=("yi",))  # no seat has the skill: waits
    await rig.caller("dialect-1", queue="dialect", skills=("yi",))
    await rig.quiet()
    assert rig.ami.sent("Originate") == []
    assert rig.engine.staffed("general")
    await rig.seats.pause("1001", "break")
    assert not rig.engine.staffed("general")
    assert rig.engine.staffed("dialect")
    assert rig.ami.sent("Setvar") == [
        {"Action": "Setvar", "Channel": "PJSIP/trunk-general-1", "Variable": "TIMEOUT(absolute)", "Value": "1"},
        {"Action": "Setvar", "Channel": "PJSIP/trunk-general-1", "Variable": LEFT_VARIABLE, "Value": "leaveempty"},
    ]


# 8. resync after a (re)connect


async def test_resync_keeps_the_callers_and_seats_asterisk_still_has(make_rig: MakeRig, client: aioredis.Redis) -> None:
    rig = await make_rig(seat("1001"), seat("1002"), start=False)
    # what a previous run left: two callers waiting, 1001 talking, 1002 ringing
    await rig.seats.login("1001")
    await rig.seats.offered("1001")
    await rig.seats.answered("1001")
    await rig.seats.login("1002")
    await rig.seats.offered("1002")
    for call_id in ("alive", "gone"):
        call = QueuedCall(call_id, f"PJSIP/trunk-{call_id}", "general", ("yi",), 0, T0.timestamp())
        await client.hset(WAITING_KEY_KM, call_id, call.to_json())
    rig.ami.channels = [
        {"Uniqueid": "alive", "Channel": "PJSIP/trunk-alive", "BridgeId": ""},
        {"Uniqueid": "offer-old", "Channel": "PJSIP/1001-00000003", "BridgeId": "bridge-1"},
    ]
    await rig.ami.reconnect()
    assert [c.call_id for c in rig.engine.waiting()] == ["alive"]
    await rig.saved()
    assert await client.hkeys(WAITING_KEY_KM) == [b"alive"]
    assert rig.state("1001") is SeatState.ON_CALL
    assert rig.state("1002") is SeatState.READY
    [adopted] = rig.engine.offers()
    assert (adopted.offer_id, adopted.seat_id, adopted.adopted) == ("offer-old", "1001", True)
    assert adopted.bound is not None
    # the adopted call ends like any other
    await rig.hang_up("offer-old", "PJSIP/1001-00000003")
    assert rig.state("1001") is SeatState.READY
    assert rig.engine.offers() == []


# 9. wrap-up


async def test_after_the_call_the_seat_wraps_up_then_takes_the_next_caller(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), wrapup_s=0.05)
    await rig.seats.login("1001")
    await rig.caller("a")
    await rig.caller("b")
    offer_id = await rig.offer_to("1001")
    binding = await rig.engine.bind(offer_id, "1001")
    assert binding is not None
    assert binding.call_id == "a"
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")
    assert rig.state("1001") is SeatState.WRAP_UP
    assert rig.engine.offers() == []
    await rig.offer_to("1001", nth=2)
    assert rig.intended() == {"1001": "b"}
    assert rig.state("1001") is SeatState.RINGING


# 10. position


async def test_the_position_counts_only_callers_still_ahead(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001", ready=False)  # serving the queue, not taking calls now
    for call_id in ("a", "b", "c"):
        await rig.caller(call_id)
    where = rig.engine.position("c")
    assert where is not None
    assert (where.position, where.expected_wait_s) == (3, 3 * rig.engine.handle_time_s)
    await rig.hang_up("a")
    where = rig.engine.position("c")
    assert where is not None
    assert (where.position, where.expected_wait_s) == (2, 2 * rig.engine.handle_time_s)
    await rig.caller("elder", priority=3)
    assert [rig.engine.position(c).position for c in ("elder", "b", "c")] == [1, 2, 3]  # type: ignore[union-attr]
    assert rig.engine.position("a") is None


# races and leftovers found in review


async def test_a_withdrawn_offer_answered_in_the_same_instant_binds_nobody(make_rig: MakeRig) -> None:
    """We hung up the seat's channel: a caller bound to it now would be cut off and lost."""
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("a")
    offer_id = await rig.offer_to("1001")
    await rig.hang_up("a")
    assert len(rig.ami.sent("Hangup")) == 1  # withdrawn
    await rig.caller("b")
    # the seat's phone answered just before our Hangup reached it: its AGI asks for a caller
    assert await rig.engine.bind(offer_id, "1001") is None
    assert [c.call_id for c in rig.engine.waiting()] == ["b"]
    await rig.saved()
    assert await rig.client.hkeys(WAITING_KEY_KM) == [b"b"]
    await rig.offer_to("1001", nth=2)  # the seat is free again: rung for b
    assert rig.intended() == {"1001": "b"}


async def test_an_offer_answered_then_hung_up_before_binding_frees_the_seat(make_rig: MakeRig) -> None:
    """OriginateResponse Success came (so no Failure will), then the seat's channel ended
    before its AGI bound a caller (hung up at once, or the AGI failed)."""
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("a")
    offer_id = await rig.offer_to("1001")
    await rig.ami.emit("OriginateResponse", Uniqueid=offer_id, Response="Success", Reason="4")
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")
    assert rig.engine.offers() == []
    await rig.offer_to("1001", nth=2)  # the caller is offered again
    assert rig.intended() == {"1001": "a"}


async def test_an_offer_made_while_resync_waits_for_asterisk_is_kept(make_rig: MakeRig) -> None:
    """An offer started after the channel snapshot was asked for is not in it: dropping it
    sets its ringing seat ready and rings it a second time."""
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    rig.ami.channels = [{"Uniqueid": "a", "Channel": "PJSIP/trunk-a", "BridgeId": ""}]
    gate = rig.ami.gates["coreshowchannels"] = asyncio.Event()
    resync = asyncio.create_task(rig.ami.reconnect())
    await wait_until(lambda: rig.ami.sent("CoreShowChannels"))
    await rig.caller("a")
    offer_id = await rig.offer_to("1001")
    gate.set()
    await resync
    await rig.quiet()
    assert [o.offer_id for o in rig.engine.offers()] == [offer_id]
    assert rig.state("1001") is SeatState.RINGING
    assert len(rig.ami.sent("Originate")) == 1


async def test_a_seat_paused_while_the_dispatcher_is_busy_is_not_left_with_a_phantom_offer(
    make_rig: MakeRig,
) -> None:
    rig = await make_rig(seat("1001"), seat("1002"), connected=False)
    await rig.seats.login("1001")
    await rig.seats.login("1002")
    await rig.caller("a")
    await rig.caller("b")
    gate = rig.ami.gates["originate"] = asyncio.Event()
    rig.ami.connected = True
    rig.engine.kick()
    await rig.offer_to("1001")  # sent, its reply held: the dispatcher waits on it
    await rig.seats.pause("1002", "break")  # between the dispatcher's choice and its offer
    gate.set()
    await rig.quiet()
    assert rig.intended() == {"1001": "a"}
    await rig.seats.ready("1002")
    await rig.offer_to("1002", nth=2)
    assert rig.intended() == {"1001": "a", "1002": "b"}


async def test_a_caller_who_left_while_the_dispatcher_was_busy_is_not_offered(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"), seat("1002"), connected=False)
    await rig.seats.login("1001")
    await rig.seats.login("1002")
    await rig.caller("a")
    await rig.caller("b")
    gate = rig.ami.gates["originate"] = asyncio.Event()
    rig.ami.connected = True
    rig.engine.kick()
    await rig.offer_to("1001")
    await rig.hang_up("b")
    gate.set()
    await rig.quiet()
    assert len(rig.ami.sent("Originate")) == 1
    assert rig.state("1002") is SeatState.READY


async def test_a_seat_hanging_up_while_bind_is_in_progress_is_not_left_on_call(make_rig: MakeRig) -> None:
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("a")
    offer_id = await rig.offer_to("1001")
    bind = asyncio.create_task(rig.engine.bind(offer_id, "1001"))
    await asyncio.sleep(0)  # bind runs to its first Redis round trip
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")
    binding = await bind
    assert binding is not None
    assert rig.state("1001") is SeatState.READY  # wrapup_s 0: the call is over


async def test_a_seat_paused_while_ringing_that_answers_does_not_lose_the_caller(make_rig: MakeRig) -> None:
    """The seat's state machine forbids not_ready → on_call: bind() must refuse before it takes
    the caller out of the queue, not raise halfway (caller gone from the queue, never bridged)."""
    rig = await make_rig(seat("1001"), seat("1002"))
    await rig.seats.login("1001")
    await rig.seats.login("1002")
    await rig.caller("a")
    offer_id = await rig.offer_to("1001")
    await rig.seats.pause("1001", "break")  # from the web console, while the phone rings
    assert await rig.engine.bind(offer_id, "1001") is None  # the phone is answered anyway
    assert [c.call_id for c in rig.engine.waiting()] == ["a"]
    await rig.saved()
    assert await rig.client.hkeys(WAITING_KEY_KM) == [b"a"]
    assert rig.seats.get("1001").reason == "break"  # the pause stands
    await rig.offer_to("1002", nth=2)
    assert rig.intended() == {"1002": "a"}


async def test_a_seat_found_ringing_whose_offer_is_talking_ends_its_call_normally(
    make_rig: MakeRig,
) -> None:
    """Saved as ringing; the controller was away when the seat answered (the offer context's
    own fallback bridged it): after the call the seat must not stay ringing."""
    rig = await make_rig(seat("1001"), start=False)
    await rig.seats.login("1001")
    await rig.seats.offered("1001")
    rig.ami.channels = [{"Uniqueid": "offer-old", "Channel": "PJSIP/1001-00000003", "BridgeId": "bridge-1"}]
    await rig.ami.reconnect()
    await rig.hang_up("offer-old", "PJSIP/1001-00000003")
    assert rig.state("1001") is SeatState.READY


async def test_an_old_wrap_up_timer_does_not_cut_a_later_wrap_up_short(make_rig: MakeRig) -> None:
    wrapup_s = 0.5
    rig = await make_rig(seat("1001"), wrapup_s=wrapup_s)
    await rig.seats.login("1001")
    await rig.caller("a")
    first = await rig.offer_to("1001")
    await rig.engine.bind(first, "1001")
    await rig.hang_up(first, "PJSIP/1001-00000001")  # wrap-up timer 1
    rig.clock.advance(1)
    await rig.seats.ready("1001")  # the agent ends wrap-up early
    await rig.caller("b")
    second = await rig.offer_to("1001", nth=2)
    await rig.engine.bind(second, "1001")
    await asyncio.sleep(wrapup_s / 2)
    await rig.hang_up(second, "PJSIP/1001-00000002")  # wrap-up timer 2
    ended = asyncio.get_running_loop().time()
    await wait_until(lambda: rig.state("1001") is SeatState.READY)
    assert asyncio.get_running_loop().time() - ended >= wrapup_s * 0.9


async def test_a_skilled_caller_found_again_by_resync_is_relaxed_in_time(
    make_rig: MakeRig, client: aioredis.Redis
) -> None:
    """Enqueue sets a timer for the relaxation; a caller adopted from Redis needs one too, or
    it waits for a skilled seat until something unrelated wakes the dispatcher."""
    rig = await make_rig(seat("1001"), relax_skills_after_s=0.3)
    await rig.seats.login("1001")
    call = QueuedCall("yi-1", "PJSIP/trunk-yi-1", "general", ("yi",), 0, T0.timestamp())
    await client.hset(WAITING_KEY_KM, call.call_id, call.to_json())
    rig.ami.channels = [{"Uniqueid": "yi-1", "Channel": "PJSIP/trunk-yi-1", "BridgeId": ""}]
    await rig.ami.reconnect()
    await rig.quiet()
    assert rig.ami.sent("Originate") == []  # not relaxed yet
    rig.clock.advance(1)  # the relaxation is due (no kick from the test)
    await rig.offer_to("1001")


async def test_a_caller_who_leaves_at_the_bridge_is_not_counted_answered(make_rig: MakeRig) -> None:
    """The caller hangs up between the bind and the Bridge: the seat asks again and takes the
    next caller; the first call's record is put right (abandoned, no seat)."""
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("k-1")
    await rig.caller("k-2")
    offer_id = await rig.offer_to("1001")
    first = await rig.engine.bind(offer_id, "1001")
    assert first is not None and first.call_id == "k-1"
    await rig.hang_up("k-1")  # gone before Bridge() ran
    await rig.tracker.hung_up("k-1", "Normal Clearing")  # (the call-event bridge does this in the controller)
    second = await rig.engine.bind(offer_id, "1001")  # the offer context asks again
    assert second is not None and second.call_id == "k-2"
    await rig.saved()
    record = await rig.store.get("k-1")
    assert record is not None
    assert (record.outcome, record.seat, record.seat_answered_at) == (CallOutcome.ABANDONED, "", None)
    assert record.tags["queue_status"] == "left_at_bridge"
    assert rig.state("1001") is SeatState.ON_CALL


# a seat that never took the caller bound to it (the hold slice race, acd.left_at_bridge's twin)


def holding(rig: Rig, *call_ids: str) -> None:
    """Asterisk's channels: these callers wait in the hold context's holding bridge."""
    rig.ami.channels = [
        {"Uniqueid": c, "Channel": rig.channels[c], "Context": HOLD_CONTEXT, "Exten": "s", "BridgeId": "holding-1"}
        for c in call_ids
    ]


async def bound_and_holding(make_rig: MakeRig, max_wait_s: float = 300) -> tuple[Rig, str]:
    """Seat 1001 bound to k-1 (k-2 behind it), both callers still in the hold context's bridge:
    the seat's Bridge() is about to fail or its channel to end. Returns the rig and the offer."""
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("k-1", max_wait_s=max_wait_s)
    await rig.caller("k-2", max_wait_s=max_wait_s)
    offer_id = await rig.offer_to("1001")
    first = await rig.engine.bind(offer_id, "1001")
    assert first is not None and first.call_id == "k-1"
    holding(rig, "k-1", "k-2")
    return rig, offer_id


async def test_a_caller_the_seat_never_took_goes_back_in_line_at_its_place(make_rig: MakeRig) -> None:
    """The seat hangs up after the bind, before its Bridge() (the caller still holds on): the
    caller is not forgotten. SEATED is cleared and the rest of its max wait restored in
    Asterisk, it is waiting again ahead of a later caller, its record no longer says
    answered, and the next seat gets it."""
    rig = await make_rig(seat("1001"), seat("1002"))
    await rig.seats.login("1001")
    await rig.caller("k-1", max_wait_s=300)
    offer_id = await rig.offer_to("1001")
    bound = await rig.engine.bind(offer_id, "1001")
    assert bound is not None and bound.call_id == "k-1"
    await rig.caller("k-2", max_wait_s=300)  # arrives after k-1 was bound
    live = rig.tracker.get_live("k-1")
    assert live is not None and live.outcome is CallOutcome.ANSWERED
    rig.clock.advance(10)  # 12 s after it queued: 288 s of max wait left
    holding(rig, "k-1", "k-2")
    await rig.ami.emit("BridgeEnter", Uniqueid="k-1", BridgeName=HOLD_CONTEXT, BridgeTechnology="holding_bridge")
    rig.ami.actions.clear()
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")  # the seat's channel ends: never bridged
    assert [(a["Variable"], a["Value"]) for a in rig.ami.sent("Setvar")] == [
        (SEATED_VARIABLE, ""),
        (MAX_WAIT_VARIABLE, "288"),
        ("TIMEOUT(absolute)", "288"),
    ]
    assert [c.call_id for c in rig.engine.waiting()] == ["k-1", "k-2"]  # its own place, first
    live = rig.tracker.get_live("k-1")
    assert live is not None
    assert (live.outcome, live.seat, live.seat_answered_at) == (None, "", None)
    assert live.tags["requeued_from"] == "1001"
    await rig.saved()
    assert set(await rig.client.hkeys(WAITING_KEY_KM)) == {b"k-1", b"k-2"}
    await rig.seats.login("1002")
    offer_2 = await rig.offer_to("1002", 2)
    again = await rig.engine.bind(offer_2, "1002")
    assert again is not None and again.call_id == "k-1"


async def test_a_failed_bridge_with_the_caller_still_holding_binds_it_again(make_rig: MakeRig) -> None:
    """The seat's Bridge() failed (the caller was between two priorities of the hold context)
    and it asks again: the same caller, still holding, is bound again rather than forgotten;
    without a max wait known (saved by an older version) only SEATED is cleared."""
    rig, offer_id = await bound_and_holding(make_rig, max_wait_s=0)
    rig.ami.actions.clear()
    second = await rig.engine.bind(offer_id, "1001")  # the offer context asks again
    assert second is not None and second.call_id == "k-1"
    setvars = [(a["Variable"], a["Value"]) for a in rig.ami.sent("Setvar")]
    assert setvars[0] == (SEATED_VARIABLE, "")  # before the new binding's SEATED=1
    assert setvars[-1] == (SEATED_VARIABLE, "1")
    assert [c.call_id for c in rig.engine.waiting()] == ["k-2"]
    assert rig.state("1001") is SeatState.ON_CALL


async def test_a_caller_talking_elsewhere_is_not_put_back_in_line(make_rig: MakeRig) -> None:
    """Bound but not bridged by this seat, and yet in a seat's bridge or out of the hold
    context (max wait's overflow ran first): not requeued, nothing set on its channel."""
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("k-1", max_wait_s=300)
    offer_id = await rig.offer_to("1001")
    assert await rig.engine.bind(offer_id, "1001") is not None
    rig.ami.channels = [{"Uniqueid": "k-1", "Channel": rig.channels["k-1"], "Context": "hotline-ivr", "BridgeId": ""}]
    rig.ami.actions.clear()
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")
    assert rig.ami.sent("Setvar") == []
    assert rig.engine.waiting() == []
    live = rig.tracker.get_live("k-1")
    assert live is not None and live.outcome is CallOutcome.ANSWERED  # still here: nothing undone


async def test_a_caller_who_hangs_up_while_it_is_put_back_is_no_ghost(make_rig: MakeRig) -> None:
    """The seat's Bridge() failed and it asks again (the AGI's task, beside the AMI event
    dispatcher): the caller hangs up while its SEATED is being cleared, and that Setvar still
    succeeded (Asterisk found the channel in the instant before it went). The caller's Hangup,
    handled meanwhile, must not be lost: it is not put back in line (a ghost a seat would be
    rung and bound for), nor bound again, and its record is not answered."""
    rig, offer_id = await bound_and_holding(make_rig)
    gate = rig.ami.gates["setvar"] = asyncio.Event()
    rig.ami.actions.clear()
    again = asyncio.create_task(rig.engine.bind(offer_id, "1001"))  # the offer context asks again
    await wait_until(lambda: rig.ami.sent("Setvar") != [])  # SEATED= in flight
    await rig.hang_up("k-1")  # the caller's Hangup, dispatched while the engine awaits the reply
    await rig.tracker.hung_up("k-1", "Normal Clearing")
    gate.set()
    second = await again
    assert second is not None and second.call_id == "k-2"
    assert [c.call_id for c in rig.engine.waiting()] == []
    await rig.saved()
    assert set(await rig.client.hkeys(WAITING_KEY_KM)) == set()
    record = await rig.store.get("k-1")
    assert record is not None
    assert (record.outcome, record.seat, record.seat_answered_at) == (CallOutcome.ABANDONED, "", None)


async def test_a_caller_gone_before_it_is_put_back_is_not_counted_answered(make_rig: MakeRig) -> None:
    """The seat's channel ends before its Bridge(); the caller, still in the hold context in
    the channel list, hangs up before its SEATED is cleared (the Setvar fails: no such channel)
    and its Hangup is only handled after the seat's (one event dispatcher). Its record must
    not end as answered by a seat it never talked to."""
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("k-1", max_wait_s=300)
    offer_id = await rig.offer_to("1001")
    bound = await rig.engine.bind(offer_id, "1001")
    assert bound is not None and bound.call_id == "k-1"
    holding(rig, "k-1")
    rig.ami.failing.add("setvar")  # the caller's channel is gone
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")  # the seat's channel ends: never bridged
    await rig.hang_up("k-1")  # then the caller's Hangup (queued behind the seat's)
    await rig.tracker.hung_up("k-1", "Normal Clearing")
    assert rig.engine.waiting() == []
    await rig.saved()
    record = await rig.store.get("k-1")
    assert record is not None
    assert (record.outcome, record.seat, record.seat_answered_at) == (CallOutcome.ABANDONED, "", None)
    assert record.tags["queue_status"] == "left_at_bridge"


async def test_a_seat_whose_channel_ended_before_its_bind_binds_nobody(make_rig: MakeRig) -> None:
    """The seat answers and hangs up at once; its AGI (another socket) reaches the engine after
    the channel's Hangup. That offer is over: bind() binds no caller to a channel that is gone
    (it would never end again: the seat on a call for good, the caller SEATED and answered),
    and the caller stays in line for the next seat."""
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("k-1", max_wait_s=300)
    offer_id = await rig.offer_to("1001")
    await rig.ami.emit("OriginateResponse", Uniqueid=offer_id, Response="Success", Reason="4")
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")
    rig.ami.actions.clear()
    assert await rig.engine.bind(offer_id, "1001") is None
    assert rig.ami.sent("Setvar") == []
    assert [c.call_id for c in rig.engine.waiting()] == ["k-1"]
    assert offer_id not in {o.offer_id for o in rig.engine.offers()}
    assert rig.state("1001") in (SeatState.READY, SeatState.RINGING)  # free for the next offer
    live = rig.tracker.get_live("k-1")
    assert live is not None and live.outcome is None and live.seat == ""


async def test_a_caller_whose_max_wait_ran_out_at_the_bind_is_not_put_back(make_rig: MakeRig) -> None:
    """Max wait ran out in the instant of the bind (before its SEATED Setvar): the caller is in
    the hold context's T extension, on its overflow path (the overflow AGI walking the queue
    node's next: voicemail …), in no bridge, so the seat's Bridge() failed. It is not put back
    in line (a seat would be rung and bound for a caller leaving a message), nothing is set on
    its channel (a 1 s TIMEOUT(absolute) would restart the T extension)."""
    rig = await make_rig(seat("1001"))
    await rig.seats.login("1001")
    await rig.caller("k-1", max_wait_s=300)
    offer_id = await rig.offer_to("1001")
    assert await rig.engine.bind(offer_id, "1001") is not None
    rig.ami.channels = [
        {"Uniqueid": "k-1", "Channel": rig.channels["k-1"], "Context": HOLD_CONTEXT, "Exten": "T",
         "Application": "AGI", "BridgeId": ""}
    ]  # fmt: skip
    rig.ami.actions.clear()
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")
    assert rig.ami.sent("Setvar") == []
    assert rig.engine.waiting() == []


async def test_a_seat_that_hangs_up_while_it_asks_again_binds_nobody(make_rig: MakeRig) -> None:
    """The seat's Bridge() failed and it asks again; while the engine looks for its caller in
    Asterisk (CoreShowChannels), the seat's channel ends (no wrap-up: ready at once). The
    caller goes back in line, and nobody is bound to the channel that is gone (no Hangup would
    ever end that offer: the seat on a call for good)."""
    rig, offer_id = await bound_and_holding(make_rig)
    gate = rig.ami.gates["coreshowchannels"] = asyncio.Event()
    again = asyncio.create_task(rig.engine.bind(offer_id, "1001"))
    await wait_until(lambda: rig.ami.sent("CoreShowChannels") != [])
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")  # the seat's channel ends meanwhile
    gate.set()
    assert await again is None
    assert [c.call_id for c in rig.engine.waiting()] == ["k-1", "k-2"]
    assert rig.state("1001") is not SeatState.ON_CALL
    assert offer_id not in {o.offer_id for o in rig.engine.offers()}


async def test_a_seat_that_never_took_its_caller_owes_no_disposition_for_it(make_rig: MakeRig) -> None:
    """acd.require_disposition: the seat's channel ends before its Bridge() took the caller,
    who goes back in line (another seat talks to it next). The seat never talked to that
    caller: no disposition of that call is due from it (it would sit in wrap-up, then be made
    not ready as overdue, or its code would overwrite the disposition of the seat that did)."""
    rig = await make_rig(seat("1001"), seat("1002"), require_disposition=True)
    await rig.seats.login("1001")
    await rig.caller("k-1", max_wait_s=300)
    offer_id = await rig.offer_to("1001")
    assert await rig.engine.bind(offer_id, "1001") is not None
    holding(rig, "k-1")
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")
    assert [c.call_id for c in rig.engine.waiting()] == ["k-1"]  # requeued
    first = rig.seats.get("1001")
    assert not first.disposition_due
    assert first.last_call != "k-1"


async def test_a_seat_that_called_a_caller_back_owes_the_disposition_of_that_call(make_rig: MakeRig) -> None:
    """A callback's dialled leg never enters the seat's bridge as the bound caller (the offer
    stays "not bridged"): the seat that called back still owes the disposition of the call
    whose place the callback kept."""
    rig = await make_rig(seat("1001"), require_disposition=True)
    await rig.seats.login("1001")
    origin = "c-1"
    call = QueuedCall(f"{CALLBACK_PREFIX}{origin}", "", "general", (), 0, rig.clock().timestamp(),
                      caller="13800000000", callback_trunk="carrier", origin_call_id=origin)  # fmt: skip
    await rig.engine.enqueue(call)
    offer_id = await rig.offer_to("1001")
    bound = await rig.engine.bind(offer_id, "1001")
    assert bound is not None and bound.dial == "PJSIP/13800000000@carrier"
    await rig.hang_up(offer_id, "PJSIP/1001-00000001")
    after = rig.seats.get("1001")
    assert (after.state, after.disposition_due, after.last_call) == (SeatState.WRAP_UP, True, origin)


def test_a_waiting_caller_saved_by_a_later_release_reads_without_its_new_fields() -> None:
    """A rollback: the entries a newer controller saved (a field this one lacks) still read."""
    saved = QueuedCall("kunming-1.1", "PJSIP/trunk-1", "general", ("yue",), 0, 100.0, max_wait_s=300)
    newer = {**json.loads(saved.to_json()), "a_later_field": {"x": 1}}
    assert QueuedCall.from_json(json.dumps(newer)) == saved
