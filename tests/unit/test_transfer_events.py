"""A transfer's progress pushed to the seat's desk (transfer.state): the shape of each event a
consultation and a blind transfer publish, never a whole caller number, and only the seat on the
call receives them — not another seat, not another platform's seat with the same id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import WSMsgType

from acd.events import EventBus
from cases.seat_events import SeatEventHub
from ivr.consult import Consultations
from ivr.dialplan.schema import TransferMode
from ivr.entry import tell_seat_transfer_failed
from ivr.transfer_events import TransferState, final_state
from telephony.ami_types import AmiActionFailed, AmiResponse
from tests.support.waiting import wait_until
from tests.unit.test_case_desk_attacks import HANG_GUARD_S, _desk
from tests.unit.test_consult import CALLER, NOW, SEAT, Rig, rig, seat_transfers  # noqa: F401 - rig: a fixture

WHOLE = "13800000000"  # the rig's caller
MASKED = "138****0000"
KEYS = {"type", "at", "call_id", "seat", "to", "mode", "state", "caller"}


class NoPops:
    async def pop(self, call_id: str) -> dict[str, Any] | None:
        return None


class Bus:
    """TransferEvents: what the controller's EventBus would fan out, kept in order."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def publish(self, kind: str, at: datetime, **fields: Any) -> None:
        self.events.append({"type": kind, "at": at.isoformat(), **fields})

    def states(self) -> list[tuple[str, str]]:
        return [(e["state"], e.get("status", "")) for e in self.events]


@pytest.fixture
async def bus(rig: Rig) -> AsyncIterator[Bus]:  # noqa: F811 - the imported fixture
    published = Bus()
    rig.consultations = Consultations(
        ami=rig.ami, tracker=rig.tracker, handoffs=rig.handoffs, events=published, clock=lambda: NOW
    )
    yield published
    for event in published.events:  # every event: its keys, the seat, never the whole number
        assert set(event) - {"status"} == KEYS, event
        assert (event["type"], event["seat"], event["caller"]) == ("transfer.state", "1001", MASKED)
        assert WHOLE not in json.dumps(event)


async def test_a_consultation_tells_each_step_and_how_it_ended(rig: Rig, bus: Bus) -> None:  # noqa: F811
    await rig.start()
    assert bus.states() == [("started", ""), ("ringing", "")]
    assert bus.events[0] == {
        "type": "transfer.state", "at": NOW.isoformat(), "call_id": "kunming-1.1", "seat": "1001",
        "to": "province", "mode": "attended", "state": "started", "caller": MASKED,
    }  # fmt: skip
    await rig.ami.emit("UserEvent", UserEvent="HotlineConsultAnswered", Call="kunming-1.1")
    rig.bridges("consult", "talk", target_state="6")
    await rig.consultations.cancel("kunming-1.1")
    # the leg's end arriving after the cancel is not told twice
    await rig.ami.emit("UserEvent", UserEvent="HotlineConsultEnded", Call="kunming-1.1", Status="ANSWER")
    assert bus.states()[2:] == [("talking", ""), ("back_to_caller", "cancelled")]

    bus.events.clear()
    await rig.start()
    await rig.ami.emit("UserEvent", UserEvent="HotlineConsultEnded", Call="kunming-1.1", Status="NOANSWER")
    assert bus.states() == [("started", ""), ("ringing", ""), ("back_to_caller", "not_reached_noanswer")]

    bus.events.clear()
    await rig.start()
    await rig.ami.emit("UserEvent", UserEvent="HotlineConsultAnswered", Call="kunming-1.1")
    await rig.ami.emit("AttendedTransfer", OrigTransfererChannel=SEAT, Result="Success", DestType="Link")
    assert bus.states()[-2:] == [("talking", ""), ("completed", "completed")]


async def test_a_three_way_call_and_the_seat_leaving_it(rig: Rig, bus: Bus) -> None:  # noqa: F811
    await rig.start(mode=TransferMode.THREE_WAY)
    await rig.ami.emit("UserEvent", UserEvent="HotlineConsultAnswered", Call="kunming-1.1")
    await rig.ami.emit("AttendedTransfer", OrigTransfererChannel=SEAT, Result="Success", DestType="Threeway")
    await rig.ami.emit("Hangup", Channel=SEAT, Uniqueid="offer-1")
    assert bus.states() == [
        ("started", ""),
        ("ringing", ""),
        ("talking", ""),
        ("three_way", ""),
        ("ended", "three_way"),
    ]
    assert {e["mode"] for e in bus.events} == {"three_way"}


async def test_an_answer_before_atxfers_reply_is_not_followed_by_ringing(rig: Rig, bus: Bus) -> None:  # noqa: F811
    real_send = rig.ami.send_action

    async def answered_first(fields: Mapping[str, str | list[str]], timeout_s: float | None = None) -> AmiResponse:
        reply = await real_send(fields, timeout_s)
        if fields["Action"] == "Atxfer":  # Asterisk's event overtakes the action's reply
            await rig.ami.emit("UserEvent", UserEvent="HotlineConsultAnswered", Call="kunming-1.1")
        return reply

    rig.ami.send_action = answered_first  # type: ignore[method-assign]
    await rig.start()
    assert bus.states() == [("started", ""), ("talking", "")]


async def test_a_consultation_that_never_started_is_told_failed(rig: Rig, bus: Bus) -> None:  # noqa: F811
    rig.ami.fail_at = {7: AmiActionFailed("Redirect: No such channel")}  # CoreShowChannels, 6 Setvar, Redirect
    with pytest.raises(AmiActionFailed):
        await rig.start()
    assert bus.states() == [("started", ""), ("failed", "not_started")]


async def test_the_caller_hanging_up_mid_consultation_ends_it(rig: Rig, bus: Bus) -> None:  # noqa: F811
    await rig.start()
    await rig.ami.emit("Hangup", Channel=CALLER, Uniqueid="kunming-1.1")
    assert bus.states()[-1] == ("ended", "caller_hung_up")


async def test_a_blind_transfer_tells_it_started_and_that_it_failed(rig: Rig, bus: Bus, tmp_path: Path) -> None:  # noqa: F811
    transfers = await seat_transfers(rig, tmp_path)
    transfers._events = bus  # what hotline/wiring/network.py gives it
    rig.bridges("talk", "talk")
    await transfers.transfer("kunming-1.1", "province", "1001", "", TransferMode.BLIND)
    assert bus.states() == [("started", "")]
    assert (bus.events[0]["mode"], bus.events[0]["to"]) == ("blind", "province")
    # nobody answered: the transfer-failed AGI script tells the seat that handed the caller on
    await tell_seat_transfer_failed(bus, rig.tracker, NOW, "kunming-1.1", "noanswer")
    assert bus.states()[-1] == ("failed", "noanswer")
    assert (bus.events[-1]["mode"], bus.events[-1]["to"], bus.events[-1]["seat"]) == ("blind", "province", "1001")
    await tell_seat_transfer_failed(bus, rig.tracker, NOW, "kunming-9.9", "noanswer")  # no such call: nothing
    assert len(bus.events) == 2


def test_final_states_from_the_records_transfer_status() -> None:
    assert final_state("completed") is TransferState.COMPLETED
    for status in ("cancelled", "other_side_hung_up", "not_reached_busy"):
        assert final_state(status) is TransferState.BACK_TO_CALLER
    assert final_state("caller_hung_up") is TransferState.ENDED
    assert final_state("failed") is TransferState.FAILED


async def test_only_the_seat_on_the_call_and_only_this_platform_receive_them(
    client: aioredis.Redis,
    rig: Rig,  # noqa: F811
) -> None:
    """Through the real bus and the seat's socket: seat 1001's own desk gets the event (masked);
    another seat's queue gets nothing; the province's seat "1001" is refused this seat's socket;
    the province's own hub (its own controller's bus) never sees a prefecture's consultation."""
    desk, hub = await _desk(client)
    here = EventBus(client, platform="kunming")
    province_bus = EventBus(client, platform="province")  # the province's controller, on the same (shared) Redis
    province_hub = SeatEventHub(province_bus, NoPops())
    province_routing = asyncio.create_task(province_hub.run())
    rig.consultations = Consultations(ami=rig.ami, tracker=rig.tracker, handoffs=rig.handoffs, events=here)
    feed = here.subscribe()
    try:
        mine = await desk.client.ws_connect("/api/v1/seats/1001/events")
        await mine.send_json({"token": "km-seat-token"})
        assert json.loads((await mine.receive(timeout=HANG_GUARD_S)).data)["type"] == "hello"
        theirs = await desk.client.ws_connect("/api/v1/seats/1001/events")
        await theirs.send_json({"token": "yn-seat-token"})
        refused = await theirs.receive(timeout=HANG_GUARD_S)
        assert refused.type is WSMsgType.CLOSE and theirs.close_code == 4403
        other_seat = hub.subscribe("1002")
        province_seat = province_hub.subscribe("1001")

        await rig.start()
        while not feed.empty():
            await hub.route(feed.get_nowait())  # what hub.run() does with the controller's bus
        got = [json.loads((await mine.receive(timeout=HANG_GUARD_S)).data) for _ in range(2)]
        assert [(e["type"], e["state"], e["call_id"]) for e in got] == [
            ("transfer.state", "started", "kunming-1.1"),
            ("transfer.state", "ringing", "kunming-1.1"),
        ]
        assert got[0]["caller"] == MASKED and WHOLE not in json.dumps(got)
        # the province's hub routes its own bus only: its seat 1001 gets its own event, and that first
        await wait_until(lambda: province_bus._subscribers)
        await province_bus.publish("seat.state", NOW, seat="1001", old="ready", new="ringing", reason="", cause="")
        await wait_until(lambda: not province_seat.empty())
        assert province_seat.get_nowait()["type"] == "seat.state" and province_seat.empty()
        assert other_seat.empty()
        await mine.close()
    finally:
        here.unsubscribe(feed)
        province_routing.cancel()
        await asyncio.gather(province_routing, return_exceptions=True)
        await desk.client.close()
