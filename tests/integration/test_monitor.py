"""Listen, whisper, barge on a real Asterisk: a SIPp caller talks with a SIPp seat; a SIPp
"supervisor phone" answers the monitor call. Each phone's media is an RtpPhone (it streams its
own tone and keeps what it hears), so what each person hears is measured by band-pass energy:
caller 500 Hz, seat 1200 Hz, supervisor 2200 Hz. The controller is killed mid-monitor: the next
one takes the monitor back from Redis (Asterisk kept it going), and its end is audited."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.platform import ADMIN_TOKEN, SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.rtp_phone import RtpPhone, band_rms
from tests.support.sipp import (
    ANSWERED,
    HOTLINE_HANGS_UP,
    INVITE,
    SippCall,
    SippServer,
    answering_peer,
    scenario,
)
from web.auth import token_sha256

pytestmark = pytest.mark.integration

SUPERVISOR_TOKEN = "test-supervisor-token"
CALLER_HZ, SEAT_HZ, SUPERVISOR_HZ = 500, 1200, 2200
HEARS, SILENT = 0.02, 0.005  # band RMS of a tone one hears / of one one does not (tone ≈ 0.35)
WINDOW_S = 2.0


def band(phone: RtpPhone, since: float, hz: int, path: Path) -> float:
    return band_rms(phone.heard_since(since, path), hz - 60, hz + 60)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[PlatformUnderTest, int, int]]:
    seat_port, phone_port = free_tcp_and_udp_port(), free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path / "platform",
        overrides={
            "seats": [
                {"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"},
                {"id": "1090", "name": "值班长", "contact": f"sip:1090@127.0.0.1:{phone_port}"},
            ],
            "acd": {"wrapup_s": 0, "ring_timeout_s": 10},
            "monitor": {"phones": ["1090"], "ring_timeout_s": 20},
            "http": {
                "tokens": [
                    {"name": "test-admin", "role": "admin", "sha256": token_sha256(ADMIN_TOKEN)},
                    {"name": "test-seat", "role": "seat", "sha256": token_sha256(SEAT_TOKEN), "seat": "1001"},
                    {"name": "duty-chief", "role": "supervisor", "sha256": token_sha256(SUPERVISOR_TOKEN)},
                ]
            },
        },
        dialplan="queue",
    )
    platform.start_all()
    try:
        assert platform.http("/api/v1/seats/1001/login", method="POST").status == 200
        yield platform, seat_port, phone_port
    finally:
        platform.stop_all()


def test_listen_whisper_barge_by_what_each_phone_hears(
    platform: tuple[PlatformUnderTest, int, int], tmp_path: Path
) -> None:
    hotline, seat_port, phone_port = platform
    caller, seat, supervisor = RtpPhone(CALLER_HZ), RtpPhone(SEAT_HZ), RtpPhone(SUPERVISOR_HZ)
    seat_sipp = SippServer(seat.sdp_port(scenario(answering_peer(talk_ms=90000, hang_up=True))), port=seat_port)
    phone_sipp = SippServer(supervisor.sdp_port(scenario(answering_peer(0, hang_up=False))), port=phone_port)
    call_sipp = SippCall(hotline.config.sip.port, caller.sdp_port(scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP)),
                         caller="13900000777", timeout_s=120)  # fmt: skip
    try:
        call = hotline.wait_call(lambda c: c["seat"] == "1001" and c["state"] != "ended", "the seat's call")
        url = f"/api/v1/calls/{call['call_id']}/monitor"

        # refused: a seat's token, a phone that is not a supervisor's, a dial string
        assert hotline.http(url, SEAT_TOKEN, "POST", {"mode": "listen", "phone": "1090"}).status == 403
        assert hotline.http(url, SUPERVISOR_TOKEN, "POST", {"mode": "listen", "phone": "1001"}).status == 422
        assert hotline.http(url, SUPERVISOR_TOKEN, "POST", {"mode": "listen", "phone": "PJSIP/1090"}).status == 422

        def started() -> dict[str, Any] | None:  # 409 until the seat is in the caller's bridge
            answer = hotline.http(url, SUPERVISOR_TOKEN, "POST", {"mode": "listen", "phone": "1090"})
            return answer.body if answer.status == 201 else None

        monitor = wait_for("the monitor to start", started, timeout_s=30, interval_s=0.5)

        def active() -> dict[str, Any] | None:
            found = hotline.http("/api/v1/monitors", SUPERVISOR_TOKEN).body["monitors"]
            return next((m for m in found if m["id"] == monitor["id"] and m["state"] == "active"), None)

        wait_for("the supervisor's phone to answer", active, timeout_s=30, interval_s=0.3)
        wait_for("the supervisor to hear", lambda: band(supervisor, 0, CALLER_HZ, tmp_path / "first.wav") > HEARS,
                 timeout_s=20, interval_s=0.5)  # fmt: skip

        def window(name: str) -> dict[str, float]:
            time.sleep(0.6)  # the switch settles
            since = time.monotonic()
            time.sleep(WINDOW_S)
            heard = {
                "supervisor<caller": band(supervisor, since, CALLER_HZ, tmp_path / f"{name}-sup-c.wav"),
                "supervisor<seat": band(supervisor, since, SEAT_HZ, tmp_path / f"{name}-sup-s.wav"),
                "seat<supervisor": band(seat, since, SUPERVISOR_HZ, tmp_path / f"{name}-seat.wav"),
                "caller<supervisor": band(caller, since, SUPERVISOR_HZ, tmp_path / f"{name}-caller.wav"),
                "caller<seat": band(caller, since, SEAT_HZ, tmp_path / f"{name}-caller-s.wav"),
            }
            print(name, heard)  # shown when the test fails
            return heard

        listen = window("listen")
        assert listen["supervisor<caller"] > HEARS and listen["supervisor<seat"] > HEARS, listen
        assert listen["caller<seat"] > HEARS, listen  # the call itself goes on
        assert listen["caller<supervisor"] < SILENT and listen["seat<supervisor"] < SILENT, listen

        mode_url = f"/api/v1/monitors/{monitor['id']}/mode"
        assert hotline.http(mode_url, SUPERVISOR_TOKEN, "POST", {"mode": "whisper"}).status == 200
        whisper = window("whisper")
        assert whisper["seat<supervisor"] > HEARS and whisper["caller<supervisor"] < SILENT, whisper
        assert whisper["supervisor<caller"] > HEARS, whisper

        assert hotline.http(mode_url, SUPERVISOR_TOKEN, "POST", {"mode": "barge"}).status == 200
        barge = window("barge")
        assert barge["seat<supervisor"] > HEARS and barge["caller<supervisor"] > HEARS, barge

        # the controller dies mid-monitor; the next one takes the monitor back (monitor/store.py)
        hotline.stop_controller(signal.SIGKILL)
        hotline.start_controller()

        def restored() -> dict[str, Any] | None:
            answer = hotline.http("/api/v1/monitors", SUPERVISOR_TOKEN)
            found = answer.body["monitors"] if answer.status == 200 else []
            return next((m for m in found if m["id"] == monitor["id"]), None)

        back = wait_for("the monitor back after the restart", restored, timeout_s=30, interval_s=0.3)
        assert (back["state"], back["mode"], back["who"], back["call_id"]) == ("active", "barge", "duty-chief",
                                                                                call["call_id"])  # fmt: skip
        again = window("after the restart")  # it is the same session, still going in Asterisk
        assert again["seat<supervisor"] > HEARS and again["supervisor<caller"] > HEARS, again

        stopped = hotline.http(f"/api/v1/monitors/{monitor['id']}/stop", SUPERVISOR_TOKEN, "POST")
        assert stopped.status == 200 and stopped.body["modes"] == ["listen", "whisper", "barge"]
        assert phone_sipp.wait().ok  # Asterisk hung the supervisor's phone up
        assert hotline.http("/api/v1/monitors", SUPERVISOR_TOKEN).body["monitors"] == []

        trail = hotline.http("/api/v1/audit").body["audit"]
        mine = [(e["who"], e["action"].split(" ")[0], e["result"]) for e in trail if e["call_id"] == call["call_id"]]
        assert ("duty-chief", "monitor.start", "allowed") in mine
        assert [a for _, a, _ in mine].count("monitor.mode") == 2
        assert ("duty-chief", "monitor.end", "ended") in mine and ("duty-chief", "monitor.stop", "allowed") in mine
        assert ("test-seat", "monitor.start", "denied") in mine
    finally:
        for sipp in (call_sipp, seat_sipp, phone_sipp):
            sipp.stop()
        for phone in (caller, seat, supervisor):
            phone.close()
