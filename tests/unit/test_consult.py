"""A seat's consultation on a fake AMI link and a real redis-server: what is sent to Asterisk,
what is refused after looking at the bridges, and what the record gets from Asterisk's events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from calls.handoff import PENDING, Handoff, RedisHandoffs, new_token
from calls.redis_budget import RedisBudget
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from ivr.consult import Consultations, ConsultRefused, ConsultState
from ivr.dialplan.schema import TransferMode
from tests.support.fake_ami_link import FakeAmiLink

CALLER, SEAT, TARGET = "PJSIP/trunk-00000001", "PJSIP/1001-00000002", "Local/1@hotline-consult-00000001;1"
NOW = datetime(2026, 3, 9, 2, 0, tzinfo=UTC)
BOTH_WAYS = (TransferMode.BLIND, TransferMode.ATTENDED, TransferMode.THREE_WAY)


@dataclass
class Rig:
    ami: FakeAmiLink
    tracker: CallTracker
    handoffs: RedisHandoffs
    consultations: Consultations
    client: aioredis.Redis
    budget: RedisBudget

    def bridges(self, seat_bridge: str, caller_bridge: str, target_state: str | None = None) -> None:
        """Where Asterisk has the channels now (CoreShowChannels)."""
        self.ami.channels = [
            {"channel": CALLER, "uniqueid": "kunming-1.1", "bridgeid": caller_bridge, "channelstate": "6"},
            {"channel": SEAT, "uniqueid": "offer-1", "bridgeid": seat_bridge, "channelstate": "6"},
        ]
        if target_state is not None:
            self.ami.channels.append(
                {"channel": TARGET, "uniqueid": "kunming-9.9", "bridgeid": seat_bridge, "channelstate": target_state}
            )

    async def start(self, mode: TransferMode = TransferMode.ATTENDED, handoff: Handoff | None = None) -> None:
        self.bridges("talk", "talk")
        await self.consultations.start(
            call_id="kunming-1.1", seat="1001", caller="13800000000", dial="PJSIP/12345@province",
            to="province", mode=mode, allowed=BOTH_WAYS, handoff=handoff,
        )  # fmt: skip


@pytest.fixture
async def rig(client: aioredis.Redis) -> AsyncIterator[Rig]:
    ami = FakeAmiLink()
    budget = RedisBudget()
    tracker = CallTracker(RedisCallStore(client, timedelta(days=1), "kunming"), "kunming", lambda: NOW, budget)
    await tracker.channel_created("kunming-1.1", CALLER, "13800000000", "", "12345")
    await tracker.amend("kunming-1.1", {"seat": "1001"})
    handoffs = RedisHandoffs(client, budget)
    consultations = Consultations(ami=ami, tracker=tracker, handoffs=handoffs)
    yield Rig(ami, tracker, handoffs, consultations, client, budget)
    await budget.close()


def handoff() -> Handoff:
    return Handoff(
        token=new_token(), from_platform="kunming", from_call_id="kunming-1.1", to="province", created_at=NOW
    )


async def test_start_finds_the_seat_in_the_callers_bridge_and_sends_atxfer(rig: Rig) -> None:
    case = await rig.handoffs.create(handoff())
    await rig.start(handoff=case)
    variables = {a["Variable"]: a["Value"] for a in rig.ami.sent("Setvar") if a["Channel"] == SEAT}
    assert variables["__HOTLINE_CONSULT_DIAL"] == "PJSIP/12345@province"
    assert variables["__HOTLINE_HANDOFF"] == case.token
    assert variables["__HOTLINE_CONSULT_SEAT_CHANNEL"] == SEAT
    caller_vars = {a["Variable"]: a["Value"] for a in rig.ami.sent("Setvar") if a["Channel"] == CALLER}
    assert caller_vars == {"SHARED(HOTLINE_CONSULTING)": "1"}
    [atxfer] = rig.ami.sent("Atxfer")
    assert (atxfer["Channel"], atxfer["Exten"], atxfer["Context"]) == (SEAT, "1#", "hotline-consult")
    assert rig.consultations.view("kunming-1.1") == {
        "call_id": "kunming-1.1", "to": "province", "mode": "attended", "state": "calling",
    }  # fmt: skip


async def test_no_seat_in_the_callers_bridge_is_refused(rig: Rig) -> None:
    rig.ami.channels = [{"channel": CALLER, "uniqueid": "kunming-1.1", "bridgeid": "hold", "channelstate": "6"}]
    with pytest.raises(ConsultRefused, match="not talking to the caller"):
        await rig.consultations.start(
            call_id="kunming-1.1", seat="1001", caller="1", dial="PJSIP/1@x", to="x",
            mode=TransferMode.ATTENDED, allowed=BOTH_WAYS, handoff=None,
        )  # fmt: skip
    assert rig.ami.sent("Atxfer") == []


async def test_complete_is_refused_while_ringing_or_back_with_the_caller(rig: Rig) -> None:
    await rig.start()
    rig.bridges("consult", "talk", target_state="5")  # the other side rings
    with pytest.raises(ConsultRefused, match="not answered yet"):
        await rig.consultations.complete("kunming-1.1")
    rig.bridges("talk", "talk")  # the other side hung up: Asterisk put the seat back with its caller
    with pytest.raises(ConsultRefused, match="talking to the caller"):
        await rig.consultations.complete("kunming-1.1")
    assert rig.ami.sent("Hangup") == []  # the citizen is never hung up by mistake
    assert rig.consultations.get("kunming-1.1") is None  # over in Asterisk (its event lost): over here
    await rig.start()
    rig.bridges("consult", "talk", target_state="6")
    await rig.consultations.complete("kunming-1.1")
    assert rig.ami.sent("Hangup")[0]["Channel"] == SEAT


async def test_three_way_presses_the_feature_code_on_the_seats_channel(rig: Rig) -> None:
    await rig.start()
    rig.bridges("consult", "talk", target_state="6")
    await rig.consultations.three_way("kunming-1.1")
    digits = [(a["Digit"], a["Receive"]) for a in rig.ami.sent("PlayDTMF") if a["Channel"] == SEAT]
    assert digits == [("*", "yes"), ("3", "yes")]


async def test_a_three_way_transfer_joins_the_caller_when_answered(rig: Rig) -> None:
    await rig.start(mode=TransferMode.THREE_WAY)
    await rig.ami.emit("UserEvent", UserEvent="HotlineConsultAnswered", Call="kunming-1.1")
    assert [a["Digit"] for a in rig.ami.sent("PlayDTMF")] == ["*", "3"]
    await rig.ami.emit("AttendedTransfer", OrigTransfererChannel=SEAT, Result="Success", DestType="Threeway")
    record = rig.tracker.get_live("kunming-1.1")
    assert record is not None and record.outcome == "transferred"
    assert record.tags["transfer_status"] == "three_way"
    consult = rig.consultations.get("kunming-1.1")
    assert consult is not None and consult.state is ConsultState.THREE_WAY
    await rig.ami.emit("Hangup", Channel=SEAT, Uniqueid="offer-1")  # the seat leaves; the others talk on
    assert rig.consultations.get("kunming-1.1") is None


async def test_cancel_keeps_the_case_here_and_completion_hands_it_over(rig: Rig) -> None:
    case = await rig.handoffs.create(handoff())
    await rig.start(handoff=case)
    rig.bridges("consult", "talk", target_state="6")
    await rig.consultations.cancel("kunming-1.1")
    assert rig.ami.sent("CancelAtxfer")[0]["Channel"] == SEAT
    await rig.budget.drain()  # (settled in the background: the seat never waits on Redis)
    assert await rig.client.zscore(PENDING, case.token) is None  # settled: it will not expire into a ticket
    record = rig.tracker.get_live("kunming-1.1")
    assert record is not None and record.tags["transfer_status"] == "cancelled"

    second = await rig.handoffs.create(handoff())
    await rig.start(handoff=second)
    await rig.ami.emit("AttendedTransfer", OrigTransfererChannel=SEAT, Result="Success", DestType="Link")
    record = rig.tracker.get_live("kunming-1.1")
    assert record is not None and (record.outcome, record.tags["transfer_status"]) == ("transferred", "completed")
    await rig.budget.drain()
    assert await rig.client.zscore(PENDING, second.token) is not None  # the province has the case now


async def test_a_leg_that_is_never_answered_ends_the_consultation(rig: Rig) -> None:
    await rig.start()
    await rig.ami.emit("UserEvent", UserEvent="HotlineConsultEnded", Call="kunming-1.1", Status="NOANSWER")
    assert rig.consultations.get("kunming-1.1") is None
    record = rig.tracker.get_live("kunming-1.1")
    assert record is not None and record.tags["transfer_status"] == "not_reached_noanswer"
    with pytest.raises(ConsultRefused, match="no consultation"):
        await rig.consultations.cancel("kunming-1.1")
