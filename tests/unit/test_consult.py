"""A seat's consultation on a fake AMI link and a real redis-server: what is sent to Asterisk,
what is refused after looking at the bridges, and what the record gets from Asterisk's events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from calls.handoff import PENDING, Handoff, RedisHandoffs, new_token
from calls.redis_budget import RedisBudget
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from ivr.consult import Consultations, ConsultRefused, ConsultState
from ivr.dialplan.registry import DialplanRegistry
from ivr.dialplan.schema import TransferMode
from ivr.transfer import SeatTransfers, TransferRefused
from telephony.ami_types import AmiActionFailed, AmiConnectionLost, AmiNotConnected, AmiTimeout
from tests.support.fake_ami_link import FakeAmiLink
from tests.support.waiting import wait_until

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
        """Where Asterisk has the channels now (CoreShowChannels, Status); a bridge named
        rejoin-… is a rejoin label's holding bridge (BridgeWait)."""
        self.ami.channels = [
            {"channel": CALLER, "uniqueid": "kunming-1.1", "bridgeid": caller_bridge, "channelstate": "6"},
            {"channel": SEAT, "uniqueid": "offer-1", "bridgeid": seat_bridge, "channelstate": "6"},
        ]
        for channel in self.ami.channels:
            if channel["bridgeid"].startswith("rejoin-"):
                channel |= {"application": "BridgeWait", "data": channel["bridgeid"] + ",participant,S(10)"}
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
    rig = Rig(ami, tracker, handoffs, consultations, client, budget)
    # Asterisk's side of the rejoin (ivr/rejoin.py): apart in holding bridges, then together again
    ami.reactions["redirect"] = lambda _: rig.bridges("rejoin-seat", "rejoin-caller")
    ami.reactions["bridge"] = lambda _: rig.bridges("talk-again", "talk-again")
    yield rig
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
    # the seat gets the transfer key: apart (each to its rejoin label), then a new bridge together
    [redirect] = rig.ami.sent("Redirect")
    assert (redirect["Channel"], redirect["Context"], redirect["Priority"]) == (SEAT, "hotline-offer", "rejoin")
    assert (redirect["ExtraChannel"], redirect["ExtraContext"]) == (CALLER, "hotline-hold")
    assert redirect["ExtraPriority"] == "rejoin"
    [bridge] = rig.ami.sent("Bridge")
    assert (bridge["Channel1"], bridge["Channel2"], bridge["Tone"]) == (SEAT, CALLER, "no")
    steps = [a["Action"] for a in rig.ami.actions]
    assert steps.index("Redirect") < steps.index("Bridge") < steps.index("Atxfer")
    # the caller is told it waits on a consultation only once rejoined: a seat (or controller)
    # lost while they are apart leaves it the ordinary after-seat path, not a failed transfer's
    told = next(i for i, a in enumerate(rig.ami.actions) if a["Action"] == "Setvar" and a["Channel"] == CALLER)
    assert steps.index("Bridge") < told < steps.index("Atxfer")
    [atxfer] = rig.ami.sent("Atxfer")
    assert (atxfer["Channel"], atxfer["Exten"], atxfer["Context"]) == (SEAT, "1#", "hotline-consult")
    assert rig.consultations.view("kunming-1.1") == {
        "call_id": "kunming-1.1", "to": "province", "mode": "attended", "state": "calling",
    }  # fmt: skip


async def test_where_every_seat_has_the_transfer_key_atxfer_comes_at_once(rig: Rig) -> None:
    """Asterisk records the calls (features.conf has the key for every seat): no rejoin — seat
    and caller stay in their bridge, the caller is told, then Atxfer."""
    rig.consultations = Consultations(ami=rig.ami, tracker=rig.tracker, handoffs=rig.handoffs, transfer_key=True)
    await rig.start()
    steps = [a["Action"] for a in rig.ami.actions]
    assert steps == ["CoreShowChannels", *["Setvar"] * 5, "Setvar", "Atxfer"]  # the seat's 5, the caller's
    assert rig.ami.sent("Setvar")[-1]["Channel"] == CALLER
    assert rig.consultations.view("kunming-1.1") is not None


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


# A failed AMI step never leaves a phantom consultation that blocks the call's next transfer.

TRANSFER_PLAN = """
platform: kunming
name: 昆明市12345
area_code: "0871"
prompts: {welcome: 您好。}
destinations:
  province: {trunk: province, number: "12345", kind: platform, modes: [blind, attended, three_way]}
start: welcome
nodes:
  welcome: {kind: hangup, prompt: welcome}
"""


class NoSnapshot:
    """PlatformAvailability: nothing known about the other platform's seats (try)."""

    async def has_free_seat(self, platform: str) -> bool | None:
        return None


async def seat_transfers(rig: Rig, tmp_path: Path) -> SeatTransfers:
    """The API's transfers over the rig's consultations (a real dialplan registry)."""
    path = tmp_path / "dialplans" / "kunming.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TRANSFER_PLAN, encoding="utf-8")

    async def no_prompts(_plan: object) -> None:
        return None

    registry = DialplanRegistry(path, tmp_path / "prompts", "kunming", no_prompts)
    await registry.load_initial()
    return SeatTransfers(
        platform="kunming", tracker=rig.tracker, dialplans=registry, ami=rig.ami, handoffs=rig.handoffs,
        platform_trunks={"province": "province"}, trunks=frozenset({"province"}), availability=NoSnapshot(),
        consultations=rig.consultations, clock=lambda: NOW,
    )  # fmt: skip


async def attended(transfers: SeatTransfers) -> None:
    await transfers.transfer("kunming-1.1", "province", "1001", "", TransferMode.ATTENDED)


INJECTED = [
    AmiActionFailed("Setvar: No such channel"),
    AmiTimeout("no reply within 5 s"),
    AmiConnectionLost("AMI connection lost"),
    AmiNotConnected("AMI is not connected"),
]


@pytest.mark.parametrize("error", INJECTED, ids=lambda e: type(e).__name__)
async def test_a_step_failing_while_a_consultation_starts_leaves_none_behind(
    rig: Rig, tmp_path: Path, error: Exception
) -> None:
    transfers = await seat_transfers(rig, tmp_path)
    rig.bridges("talk", "talk")
    await attended(transfers)  # once without faults: which AMI steps a start takes
    steps = [a["Action"] for a in rig.ami.actions]
    assert steps == ["CoreShowChannels", *["Setvar"] * 6, "Redirect", "Status", "Status", "Bridge", "Setvar", "Atxfer"]
    await rig.ami.emit("UserEvent", UserEvent="HotlineConsultEnded", Call="kunming-1.1", Status="NOANSWER")
    assert rig.consultations.get("kunming-1.1") is None

    for step in range(len(steps)):
        rig.ami.actions.clear()
        rig.ami.fail_at = {step: error}
        with pytest.raises(TransferRefused):  # the seat is told; the caller stays with the seat
            await attended(transfers)
        assert rig.consultations.get("kunming-1.1") is None, f"phantom after a failed step {step} ({steps[step]})"
        where = {c["channel"]: c["bridgeid"] for c in rig.ami.channels}
        assert where[SEAT] == where[CALLER], f"seat and caller left apart after a failed step {step} ({steps[step]})"
        sent = rig.ami.actions[step + 1 :]
        if step >= 11:  # the caller was told to wait on the consultation: not any more
            assert sent[-1] == {
                "Action": "Setvar", "Channel": CALLER, "Variable": "SHARED(HOTLINE_CONSULTING)", "Value": "",
            }  # fmt: skip
        elif step >= 7:  # failed while rejoined: together again, and the caller was never told
            assert [a["Action"] for a in sent if a["Action"] != "Status"] in ([], ["Bridge"])
            told = [a for a in rig.ami.actions if a.get("Channel") == CALLER and a["Action"] != "Status"]
            assert not told, "the caller was told"
        else:
            assert sent == []
        rig.ami.fail_at = {}
        rig.ami.actions.clear()
        await attended(transfers)  # the next transfer of the call is allowed
        assert rig.consultations.get("kunming-1.1") is not None
        await rig.ami.emit("UserEvent", UserEvent="HotlineConsultEnded", Call="kunming-1.1", Status="NOANSWER")
    await rig.budget.drain()
    assert await rig.client.zcard(PENDING) == 0  # no hand-off of a failed try expires into a ticket


async def test_an_atxfer_without_reply_that_asterisk_did_start_is_kept(rig: Rig, tmp_path: Path) -> None:
    transfers = await seat_transfers(rig, tmp_path)
    rig.bridges("talk", "talk")
    rig.ami.gates["atxfer"] = gate = asyncio.Event()
    rig.ami.fail_at = {12: AmiTimeout("no reply to Atxfer within 5 s")}
    transfer = asyncio.create_task(attended(transfers))
    await wait_until(lambda: rig.ami.sent("Atxfer"))
    rig.bridges("consult", "talk", target_state="5")  # Asterisk did it: the other side rings
    gate.set()
    await transfer  # the seat is told it started, and it is tracked like any other
    consult = rig.consultations.get("kunming-1.1")
    assert consult is not None and consult.state is ConsultState.CALLING
    assert rig.consultations.cleaned_up == 0


async def test_a_step_failing_mid_consultation_ends_it_when_asterisk_has(rig: Rig, tmp_path: Path) -> None:
    transfers = await seat_transfers(rig, tmp_path)
    rig.bridges("talk", "talk")
    await attended(transfers)
    rig.bridges("consult", "talk", target_state="6")  # the other side answered
    rig.ami.gates["hangup"] = gate = asyncio.Event()
    completing = asyncio.create_task(rig.consultations.complete("kunming-1.1"))
    await wait_until(lambda: rig.ami.sent("Hangup"))
    # the seat's phone hung up just then (the AttendedTransfer event lost): Hangup fails
    rig.ami.channels = [c for c in rig.ami.channels if c["channel"] != SEAT]
    rig.ami.failing.add("hangup")
    gate.set()
    with pytest.raises(AmiActionFailed):
        await completing
    assert rig.consultations.get("kunming-1.1") is None  # Asterisk has no consultation: nor do we
    assert rig.consultations.cleaned_up == 1
    record = rig.tracker.get_live("kunming-1.1")
    assert record is not None and record.tags["transfer_status"] == "failed"

    rig.ami.failing.clear()
    del rig.ami.gates["hangup"]
    rig.bridges("talk", "talk")  # the seat took the call back from the phone
    await attended(transfers)  # allowed
    assert rig.consultations.get("kunming-1.1") is not None


async def test_a_step_failing_while_asterisk_still_consults_keeps_it_until_it_is_over(rig: Rig, tmp_path: Path) -> None:
    transfers = await seat_transfers(rig, tmp_path)
    rig.bridges("talk", "talk")
    await attended(transfers)
    rig.bridges("consult", "talk", target_state="6")
    rig.ami.failing.add("playdtmf")
    with pytest.raises(AmiActionFailed):
        await rig.consultations.three_way("kunming-1.1")
    assert rig.consultations.get("kunming-1.1") is not None  # still consulting in Asterisk: not a phantom
    with pytest.raises(TransferRefused, match="consultation is in progress"):
        await attended(transfers)
    # the other side hangs up and its event never reaches us: Asterisk has the seat back with its caller
    rig.bridges("talk", "talk")
    await attended(transfers)  # the next transfer looks at Asterisk, not at a stale memory
    assert rig.ami.sent("Atxfer")[-1]["Channel"] == SEAT
    assert rig.consultations.cleaned_up == 1


async def test_a_transfer_while_asterisk_cannot_be_asked_is_refused_not_blocked(rig: Rig, tmp_path: Path) -> None:
    transfers = await seat_transfers(rig, tmp_path)
    rig.bridges("talk", "talk")
    await attended(transfers)
    rig.ami.failing.add("coreshowchannels")
    with pytest.raises(TransferRefused, match="Asterisk did not answer"):
        await attended(transfers)
    rig.ami.failing.clear()
    rig.bridges("talk", "talk")
    await attended(transfers)


async def test_a_finish_asked_while_the_consultation_starts_is_refused_and_nothing_is_lost(rig: Rig) -> None:
    """A cancel (or completion, or three-way) asked while seat and caller are being rejoined, or
    before Atxfer has answered, would act on a seat that is not consulting yet (CancelAtxfer is
    acknowledged whatever the seat does) and end here a consultation Asterisk then starts: the
    desk would say "cancelled" while the seat's phone dials. It is refused until the start is
    done; the consultation is then finished as usual."""
    rig.ami.gates["bridge"] = gate = asyncio.Event()
    start = asyncio.create_task(rig.start())
    await wait_until(lambda: rig.ami.sent("Bridge"))  # apart, about to be bridged again
    for finish in (rig.consultations.cancel, rig.consultations.complete, rig.consultations.three_way):
        with pytest.raises(ConsultRefused, match="still starting"):
            await finish("kunming-1.1")
    assert rig.ami.sent("CancelAtxfer") == [] and rig.ami.sent("Hangup") == [] and rig.ami.sent("PlayDTMF") == []
    gate.set()
    await start
    assert rig.consultations.view("kunming-1.1") is not None  # still known: its events will find it
    rig.bridges("consult", "talk", target_state="6")
    await rig.consultations.cancel("kunming-1.1")
    assert [a["Channel"] for a in rig.ami.sent("CancelAtxfer")] == [SEAT]
