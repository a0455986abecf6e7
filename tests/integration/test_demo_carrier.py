"""``make run``'s demo carrier (hotline/demo_carrier.py, telephony/sipp/carrier.xml) behind the
carrier trunk of a real Asterisk: a seat hands its caller to 110 (blind) and to 95598
(three-way, then the seat leaves); the one carrier process answers both, with a tone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.demo_carrier import DemoCarrier
from tests.support.audio import tone_wav
from tests.support.platform import SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_media_port, free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    INVITE,
    SippCall,
    SippServer,
    answering_peer,
    scenario,
    stays_until_released,
    stream_audio,
)

pytestmark = pytest.mark.integration

RING_S = 10  # transfers.ring_s and consult_ring_s: the carrier answers at once (default 30 s)
# the caller talks on with the carrier this long after the seat left, past the dial's ring
# timeout, then hangs up (until 2026-12 the caller stayed a fixed 45 s after the hotline answered)
WITH_THE_CARRIER_S = RING_S + 3
CALLER_STAYS_MS = 90_000  # at most, if the test never releases the caller


class DemoDesk:
    def __init__(self, platform: PlatformUnderTest, seat_port: int, carrier: DemoCarrier) -> None:
        self.platform = platform
        self.seat_port = seat_port
        self.carrier = carrier

    def caller(self, number: str, tmp_path: Path) -> SippCall:
        voice = tone_wav(tmp_path / f"{number}.wav", seconds=2)
        talk = scenario(
            INVITE, ANSWERED, stream_audio(voice, loops=-1), stays_until_released(CALLER_STAYS_MS), CALLER_HANGS_UP
        )
        return SippCall(self.platform.config.sip.port, talk, caller=number, timeout_s=150)

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

    def consultation_state(self, call_id: str) -> str | None:
        result = self.platform.http(f"/api/v1/calls/{call_id}/transfer", token=SEAT_TOKEN)
        state = str(result.body["state"]) if result.status == 200 else "none"
        return None if state == "none" else state


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoDesk]:
    root = tmp_path_factory.mktemp("demo-carrier")
    seat_port, carrier_port = free_tcp_and_udp_port(), free_tcp_and_udp_port()
    carrier = DemoCarrier(root / "carrier", carrier_port, free_media_port())
    carrier.start()
    platform = PlatformUnderTest(
        root / "platform",
        overrides={
            "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"}],
            "acd": {"auto_login": ["1001"], "wrapup_s": 0},
            "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": carrier_port}}},
            "transfers": {"ring_s": RING_S, "consult_ring_s": RING_S},
        },
        dialplan="consult",
    )
    try:
        platform.start_all()
        yield DemoDesk(platform, seat_port, carrier)
    finally:
        platform.stop_all()
        carrier.stop()


def test_destinations_on_the_carrier_trunk_are_available(desk: DemoDesk) -> None:
    result = desk.platform.http("/api/v1/destinations", token=SEAT_TOKEN)
    assert result.status == 200
    shown = {d["to"]: d["available"] for d in result.body["destinations"]}
    assert shown["police"] is True
    assert shown["power"] is True
    assert all(d["unavailable_reason"] is None for d in result.body["destinations"] if d["available"])


def test_blind_to_110_is_answered_by_the_demo_carrier(desk: DemoDesk, tmp_path: Path) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=desk.seat_port)
    caller = desk.caller("13900002001", tmp_path)
    call_id = desk.talking("13900002001")
    status, body = desk.transfer(call_id, body={"to": "police", "mode": "blind"})
    assert status == 202, body
    assert seat.wait().ok  # the seat was hung up: its caller went to 110
    caller.talk_on(WITH_THE_CARRIER_S)  # never dropped, past the dial's ring timeout
    assert caller.wait().ok  # the caller talked with 110 until they hung up: never dropped
    record = desk.ended("13900002001")
    assert record["outcome"] == "transferred"
    assert record["transfer_to"] == "police:110"
    # not answered, the caller would have gone on to the dialplan's transfer_failed node with a status
    assert "transfer_status" not in record["tags"], record["tags"]
    assert record["tags"]["transfer_mode"] == "blind"


def test_three_way_with_95598_then_the_seat_leaves(desk: DemoDesk, tmp_path: Path) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=desk.seat_port)
    caller = desk.caller("13900002002", tmp_path)
    call_id = desk.talking("13900002002")
    status, body = desk.transfer(call_id, body={"to": "power", "mode": "three_way", "note": "停电"})
    assert status == 202, body
    wait_for("caller, seat and 95598 together", lambda: desk.consultation_state(call_id) == "three_way", timeout_s=30)
    status, body = desk.transfer(call_id, "complete")
    assert status == 202, body
    assert seat.wait().ok
    caller.talk_on(WITH_THE_CARRIER_S)  # never dropped, past the dial's ring timeout
    assert caller.wait().ok  # caller and 95598 talked on until the caller hung up
    record = desk.ended("13900002002")
    assert record["outcome"] == "transferred"
    assert record["transfer_to"] == "power:95598"
    assert record["tags"]["transfer_status"] == "three_way"
