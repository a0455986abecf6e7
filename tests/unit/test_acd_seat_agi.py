"""The seat script (acd/agi.py SeatAnswered) against a scripted Asterisk: what it asks and sets on
the seat's channel. Every AGI command is a round trip Asterisk pays for on each answered offer."""

from __future__ import annotations

import asyncio

import pytest

from acd.agi import SeatAnswered
from acd.model import Binding
from telephony.agi_server import AgiServer
from tests.support.fake_asterisk_agi import ReplayingAsterisk


class _Binder:
    """The ACD's side (acd/agi.py OfferBinder): one answer, and what it was asked."""

    def __init__(self, binding: Binding | None) -> None:
        self.binding = binding
        self.asked: list[tuple[str, str]] = []

    async def bind(self, offer_id: str, seat_id: str) -> Binding | None:
        self.asked.append((offer_id, seat_id))
        return self.binding


class _AfterSeat:
    """ivr/after_seat.py's side (acd/agi.py AfterSeat): a fixed answer, and what it was asked."""

    def __init__(self, needed: bool) -> None:
        self.answer = needed
        self.asked: list[tuple[str, str]] = []

    def needed(self, call_id: str, seat_id: str) -> bool:
        self.asked.append((call_id, seat_id))
        return self.answer


async def _session(
    binding: Binding | None, *, seat_argument: bool = True, after_seat: _AfterSeat | None = None
) -> tuple[list[str], _Binder]:
    binder = _Binder(binding)
    server = AgiServer("127.0.0.1", 0, {"seat": SeatAnswered(binder, after_seat)})
    await server.start()
    environment = "agi_network: yes\nagi_network_script: seat\nagi_uniqueid: offer-7f3a\n"
    environment += "agi_channel: PJSIP/1001-00000002\n"
    environment += "agi_arg_1: 1001\n\n" if seat_argument else "\n"
    replies = {'GET VARIABLE "CHANNEL(endpoint)"': "200 result=1 (1001)\n"}
    asterisk = ReplayingAsterisk(environment, replies, default_reply="200 result=1\n")
    try:
        async with asyncio.timeout(10):
            await asterisk.run(server.port)
    finally:
        await server.close(drain_timeout_s=1)
    return asterisk.received, binder


async def test_an_answered_offer_costs_asterisk_one_command_the_offer_and_seat_come_with_the_session() -> None:
    received, binder = await _session(Binding("k-1", "PJSIP/trunk-00000001", ""))
    # the offer is the channel's uniqueid, the seat the dialplan's argument: no Getvar
    assert binder.asked == [("offer-7f3a", "1001")]
    assert received == ['SET VARIABLE "HOTLINE_CALLER" "PJSIP/trunk-00000001"']  # no empty recording set


async def test_a_recorded_call_sets_caller_and_recording_in_one_round_trip() -> None:
    received, _ = await _session(Binding("k-1", "PJSIP/trunk-00000001", "/srv/hotline/rec/k-1_2026.wav"))
    both = "HOTLINE_CALLER=PJSIP/trunk-00000001,HOTLINE_RECORDING=/srv/hotline/rec/k-1_2026.wav"
    assert received == [f'EXEC MSet "{both}"']


@pytest.mark.parametrize("recording", ["/srv/rec/a,HOTLINE_CALLER=x.wav", '/srv/rec/"a b".wav', "/srv/rec/a=b.wav"])
async def test_a_value_msets_would_split_goes_whole_in_its_own_set_variable(recording: str) -> None:
    """MSet splits on ',' and '=' and strips quotes: such a value must never reach it."""
    received, _ = await _session(Binding("k-1", "PJSIP/trunk-00000001", recording))
    assert not any(c.startswith("EXEC") for c in received)
    quoted = recording.replace('"', '\\"')
    caller = 'SET VARIABLE "HOTLINE_CALLER" "PJSIP/trunk-00000001"'
    assert received == [caller, f'SET VARIABLE "HOTLINE_RECORDING" "{quoted}"']


async def test_a_callback_dials_and_nobody_to_bind_sets_nothing() -> None:
    received, _ = await _session(Binding("k-1", "", "", dial="PJSIP/13900000001@trunk"))
    assert received == ['SET VARIABLE "HOTLINE_DIAL" "PJSIP/13900000001@trunk"']
    received, binder = await _session(None)
    assert received == [] and binder.asked == [("offer-7f3a", "1001")]


async def test_a_dialplan_rendered_before_the_seat_argument_still_names_the_seat() -> None:
    received, binder = await _session(Binding("k-1", "PJSIP/trunk-00000001", ""), seat_argument=False)
    assert received[0] == 'GET VARIABLE "CHANNEL(endpoint)"'
    assert binder.asked == [("offer-7f3a", "1001")]


async def test_nothing_after_this_seat_rides_in_the_same_round_trip_and_only_for_a_caller() -> None:
    quiet = _AfterSeat(needed=False)
    received, _ = await _session(Binding("k-1", "PJSIP/trunk-00000001", ""), after_seat=quiet)
    assert quiet.asked == [("k-1", "1001")]  # the bound caller and the answering seat
    assert received == ['EXEC MSet "HOTLINE_CALLER=PJSIP/trunk-00000001,HOTLINE_AFTER_SEAT=0"']
    # something may run after the seat (a survey, a browser phone): nothing more is said
    received, _ = await _session(Binding("k-1", "PJSIP/trunk-00000001", ""), after_seat=_AfterSeat(needed=True))
    assert received == ['SET VARIABLE "HOTLINE_CALLER" "PJSIP/trunk-00000001"']
    # a callback: the seat dials the citizen, no Bridge and no after-seat route: not asked
    quiet = _AfterSeat(needed=False)
    received, _ = await _session(Binding("cb-1", "", "", dial="PJSIP/13800000001@carrier"), after_seat=quiet)
    assert quiet.asked == [] and received == ['SET VARIABLE "HOTLINE_DIAL" "PJSIP/13800000001@carrier"']
