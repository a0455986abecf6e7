"""A seat consults before handing its caller on (attended), joins all three (three-way), or
goes back to its caller (cancel): real Asterisk, SIPp caller, seat and peer hotline on the
carrier trunk (the shipped directory's 95598 and 110)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.audio import tone_wav
from tests.support.platform import SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    HOTLINE_HANGS_UP,
    INVITE,
    RINGING_PEER,
    SippCall,
    SippServer,
    answering_peer,
    scenario,
    stream_audio,
)

pytestmark = pytest.mark.integration


class Desk:
    def __init__(self, platform: PlatformUnderTest, seat_port: int, carrier_port: int) -> None:
        self.platform = platform
        self.seat_port = seat_port
        self.carrier_port = carrier_port

    def caller(self, number: str, tmp_path: Path) -> SippCall:
        """A caller who talks (a tone) until the hotline hangs up."""
        voice = tone_wav(tmp_path / f"{number}.wav", seconds=2)
        return SippCall(
            self.platform.config.sip.port,
            scenario(INVITE, ANSWERED, stream_audio(voice, loops=-1), HOTLINE_HANGS_UP),
            caller=number,
            timeout_s=120,
        )

    def talking(self, number: str) -> str:
        masked = number[:3] + "****" + number[-4:]
        record = self.platform.wait_call(
            lambda c: c["caller"] == masked and c["seat"] == "1001" and c["state"] != "ended", f"{number} with 1001"
        )
        return str(record["call_id"])

    def ended(self, number: str) -> dict[str, Any]:
        masked = number[:3] + "****" + number[-4:]
        return self.platform.wait_call(lambda c: c["caller"] == masked and c["state"] == "ended", f"{number} ended")

    def transfer(self, call_id: str, action: str = "", body: dict[str, Any] | None = None) -> tuple[int, Any]:
        path = f"/api/v1/calls/{call_id}/transfer" + (f"/{action}" if action else "")
        result = self.platform.http(path, token=SEAT_TOKEN, method="POST", body=body)
        return result.status, result.body

    def bridges(self) -> list[tuple[str, str, str]]:
        """Every bridge Asterisk has now (``bridge show all``): its id, channels and technology."""
        out = self.platform.asterisk.cli("bridge show all").stdout  # Bridge-ID Chans Type Technology Duration
        return [(f[0], f[-4], f[-2]) for f in (line.split() for line in out.splitlines()) if len(f) >= 6]

    def bridge_technologies(self) -> list[str]:
        """The technology of every two-channel bridge Asterisk has now."""
        return [technology for _, chans, technology in self.bridges() if chans == "2"]

    def consultation_state(self, call_id: str) -> str | None:
        result = self.platform.http(f"/api/v1/calls/{call_id}/transfer", token=SEAT_TOKEN)
        state = str(result.body["state"]) if result.status == 200 else "none"
        return None if state == "none" else state


def start_desk(root: Path, *, recorded: bool) -> Desk:
    seat_port, carrier_port = free_tcp_and_udp_port(), free_tcp_and_udp_port()
    overrides: dict[str, Any] = {
        "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"}],
        "acd": {"auto_login": ["1001"], "wrapup_s": 0},
        "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": carrier_port}}},
        "transfers": {"consult_ring_s": 8},
    }
    if not recorded:
        # MixMonitor's audiohook would keep every bridge off native RTP (bridge_native_rtp.c)
        overrides["recordings"] = {"enabled": False}
    platform = PlatformUnderTest(root, overrides=overrides, dialplan="consult")
    platform.start_all()
    return Desk(platform, seat_port, carrier_port)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """Asterisk records no call: conversations bridge natively, a consultation rejoins first."""
    started = start_desk(tmp_path_factory.mktemp("consult"), recorded=False)
    try:
        yield started
    finally:
        started.platform.stop_all()


def test_attended_transfer_to_a_utility_hotline(desk: Desk, tmp_path: Path) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=desk.seat_port)
    power = SippServer(scenario(answering_peer(talk_ms=6000, hang_up=True)), port=desk.carrier_port)
    caller = desk.caller("13900001001", tmp_path)
    call_id = desk.talking("13900001001")

    status, body = desk.transfer(call_id, body={"to": "power", "mode": "attended", "note": "停电报修"})
    assert status == 202, body
    assert body["mode"] == "attended"
    wait_for("the seat talking to 95598", lambda: desk.consultation_state(call_id) == "talking", timeout_s=20)
    status, body = desk.transfer(call_id, "complete")
    assert status == 202, body

    assert seat.wait().ok  # the seat's phone was hung up: it is free
    assert power.wait().ok  # 95598 talked with the caller, then hung up
    assert caller.wait().ok  # the caller stayed until 95598 hung up: never dropped
    record = desk.ended("13900001001")
    assert record["outcome"] == "transferred"
    assert record["transfer_to"] == "power:95598"
    assert record["tags"]["transfer_mode"] == "attended"
    assert record["tags"]["transfer_kind"] == "utility"
    assert record["tags"]["transfer_status"] == "completed"
    assert "after_seat" not in record["tags"]  # handed on: no survey when 95598 hangs up
    assert record["seat"] == "1001"
    assert desk.consultation_state(call_id) is None


def test_cancelled_consultation_returns_the_seat_to_its_caller(desk: Desk, tmp_path: Path) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=14000, hang_up=True)), port=desk.seat_port)
    power = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=desk.carrier_port)
    caller = desk.caller("13900001002", tmp_path)
    call_id = desk.talking("13900001002")
    # no transfer key on the talking seat's channel (no DTMF hook): Asterisk bridges RTP to RTP
    wait_for("the conversation bridged natively", lambda: desk.bridge_technologies() == ["native_rtp"])

    # an emergency number is never consulted first
    status, body = desk.transfer(call_id, body={"to": "police", "mode": "attended"})
    assert status == 409
    assert "three_way, blind" in body["error"]

    status, body = desk.transfer(call_id, body={"to": "power", "mode": "attended"})
    assert status == 202, body
    wait_for("the seat talking to 95598", lambda: desk.consultation_state(call_id) == "talking", timeout_s=20)
    status, body = desk.transfer(call_id, "cancel")
    assert status == 202, body
    assert power.wait().ok  # 95598 was hung up
    status, body = desk.transfer(call_id, "complete")
    assert status == 409  # nothing to complete: the seat is back with its caller

    assert seat.wait().ok  # the seat talked on with the caller, then hung up
    assert caller.wait().ok
    record = desk.ended("13900001002")
    assert record["outcome"] == "answered"
    assert record["tags"]["transfer_status"] == "cancelled"
    assert record["tags"]["after_seat"] == "rate"  # not handed on: the seat hung up first, the survey ran


def test_three_way_with_110_then_the_seat_leaves(desk: Desk, tmp_path: Path) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=desk.seat_port)
    police = SippServer(scenario(answering_peer(talk_ms=8000, hang_up=True)), port=desk.carrier_port)
    caller = desk.caller("13900001003", tmp_path)
    call_id = desk.talking("13900001003")

    status, body = desk.transfer(call_id, body={"to": "police", "mode": "three_way"})
    assert status == 202, body
    # 110 answers: Asterisk joins the caller at once (AttendedTransfer, DestType Threeway)
    wait_for("caller, seat and 110 together", lambda: desk.consultation_state(call_id) == "three_way", timeout_s=20)
    status, body = desk.transfer(call_id, "complete")  # the seat leaves; caller and 110 talk on
    assert status == 202, body
    assert seat.wait().ok
    assert police.wait().ok
    assert caller.wait().ok
    record = desk.ended("13900001003")
    assert record["outcome"] == "transferred"
    assert record["transfer_to"] == "police:110"
    assert record["tags"]["transfer_kind"] == "emergency"
    assert record["tags"]["transfer_status"] == "three_way"
    assert "after_seat" not in record["tags"]


def test_a_destination_nobody_answers_leaves_the_seat_with_its_caller(desk: Desk, tmp_path: Path) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=12000, hang_up=True)), port=desk.seat_port)
    caller = desk.caller("13900001004", tmp_path)  # nobody listens on the carrier port now
    call_id = desk.talking("13900001004")
    status, body = desk.transfer(call_id, body={"to": "power", "mode": "attended"})
    assert status == 202, body
    wait_for("the failed consultation to end", lambda: desk.consultation_state(call_id) is None, timeout_s=30)
    status, _ = desk.transfer(call_id, "complete")
    assert status == 409  # nothing to complete
    assert seat.wait().ok  # the seat talked on with its caller
    assert caller.wait().ok
    record = desk.ended("13900001004")
    assert record["outcome"] == "answered"
    assert record["tags"]["transfer_status"].startswith("not_reached_")
    assert record["tags"]["after_seat"] == "rate"


def test_seat_hanging_up_while_the_other_side_rings_never_drops_the_caller(desk: Desk, tmp_path: Path) -> None:
    """The seat hangs up before 95598 answers (Asterisk then hands the caller over on answer);
    95598 never answers: the caller leaves a message (the dialplan's transfer_failed node)."""
    seat = SippServer(scenario(answering_peer(talk_ms=4000, hang_up=True)), port=desk.seat_port)
    power = SippServer(scenario(RINGING_PEER), port=desk.carrier_port)
    caller = desk.caller("13900001005", tmp_path)
    call_id = desk.talking("13900001005")
    status, body = desk.transfer(call_id, body={"to": "power", "mode": "attended"})
    assert status == 202, body
    wait_for("95598 ringing", lambda: desk.consultation_state(call_id) == "calling", timeout_s=10)
    assert seat.wait().ok  # hung up while 95598 was still ringing
    assert power.wait().ok  # rang out (CANCEL)
    assert caller.wait().ok  # message taken, then the goodbye: never dropped
    record = desk.ended("13900001005")
    assert record["outcome"] == "voicemail"
    assert record["ivr_path"][-2:] == ["vm", "bye"]
    assert "after_seat" not in record["tags"]  # a failed transfer, not the end of the seat's talk
    assert record["tags"]["transfer_status"] == "consult_not_answered"


def test_a_double_click_on_a_blind_emergency_transfer_hands_the_caller_on_once(desk: Desk, tmp_path: Path) -> None:
    """Two clicks on the 110 button at once, and a third later: one Redirect, one call to 110
    (a second Redirect would tear down the first dial and ring 110 again)."""
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=desk.seat_port)
    police = SippServer(scenario(answering_peer(talk_ms=6000, hang_up=True)), port=desk.carrier_port)
    caller = desk.caller("13900001006", tmp_path)
    call_id = desk.talking("13900001006")

    def click(_: int) -> tuple[int, Any]:
        return desk.transfer(call_id, body={"to": "police", "mode": "blind"})

    with ThreadPoolExecutor(max_workers=2) as pool:
        clicks = list(pool.map(click, range(2)))
    assert sorted(status for status, _ in clicks) == [202, 409], clicks
    status, body = click(3)
    assert status == 409, body
    assert "already" in body["error"] or "being made" in body["error"]

    assert seat.wait().ok  # the seat's phone was hung up when its caller left
    assert police.wait().ok  # one call: answered, 6 s of talk, hung up by 110 — never torn down
    assert caller.wait().ok
    record = desk.ended("13900001006")
    assert record["outcome"] == "transferred"
    assert record["transfer_to"] == "police:110"
    assert record["tags"]["transfer_mode"] == "blind"
    assert "after_seat" not in record["tags"]


def test_where_asterisk_records_a_consultation_starts_without_a_rejoin(tmp_path: Path) -> None:
    """Recorded calls (the shipped default) are never bridged natively (MixMonitor's audiohook):
    every seat's channel has the transfer key (features.conf), so the consultation starts with
    Atxfer at once — the caller stays in the conversation's bridge, on hold, while the seat
    consults (a rejoin would have moved both into a new one) — and completes as in the other mode."""
    recorded = start_desk(tmp_path / "platform", recorded=True)
    try:
        features = (recorded.platform.asterisk.layout.etc_dir / "features.conf").read_text(encoding="utf-8")
        assert "\natxfer = A\n" in features
        seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=recorded.seat_port)
        power = SippServer(scenario(answering_peer(talk_ms=6000, hang_up=True)), port=recorded.carrier_port)
        caller = recorded.caller("13900001007", tmp_path)
        call_id = recorded.talking("13900001007")
        wait_for("the conversation bridged", lambda: recorded.bridge_technologies() == ["simple_bridge"])
        [conversation] = [bridge_id for bridge_id, chans, _ in recorded.bridges() if chans == "2"]

        status, body = recorded.transfer(call_id, body={"to": "power", "mode": "attended"})
        assert status == 202, body
        wait_for("the seat talking to 95598", lambda: recorded.consultation_state(call_id) == "talking", timeout_s=20)
        assert (conversation, "1") in [(bridge_id, chans) for bridge_id, chans, _ in recorded.bridges()]
        status, body = recorded.transfer(call_id, "complete")
        assert status == 202, body
        assert seat.wait().ok
        assert power.wait().ok
        assert caller.wait().ok  # never dropped: 95598 talked with the caller, then hung up
        record = recorded.ended("13900001007")
        assert record["outcome"] == "transferred"
        assert record["tags"]["transfer_status"] == "completed"
    finally:
        recorded.platform.stop_all()
