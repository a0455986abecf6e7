"""A seat calls a missed caller back, on a real Asterisk with SIPp: the caller who hung up is on
the callback list; the seat clicks 回拨 (the API), its phone (SIPp) rings and answers, then the
citizen (SIPp behind the carrier trunk) is rung showing the platform's 12345 number, answers and
talks. The outbound call record names the seat, the entry is gone, the conversation is recorded.
(Refusal while inbound callers wait: tests/unit/test_dialback.py, on the real ACD engine.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.audio import duration_s, rms_amplitude, tone_wav
from tests.support.platform import SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    INVITE,
    KEEP_DIALOG,
    SippCall,
    SippServer,
    answering_peer,
    pause,
    scenario,
)

pytestmark = pytest.mark.integration

CITIZEN = "13900002301"
SHOWN = "087112345"  # 昆明's 12345 with its area code


def citizen_phone(talk_ms: int, voice: Path) -> str:
    """The citizen behind the carrier: checks who calls (the platform's number) and whom (the
    citizen's), answers, talks (a tone), hangs up. A mismatch fails the SIPp call."""
    checks = (
        f'      <ereg regexp="sip:{SHOWN}@" search_in="hdr" header="From:" check_it="true" assign_to="shown"/>\n'
        f'      <ereg regexp="sip:{CITIZEN}@" search_in="hdr" header="To:" check_it="true" assign_to="dialled"/>\n'
        '      <log message="called from [$shown] to [$dialled]"/>\n'  # SIPp refuses variables never used
    )
    peer = answering_peer(talk_ms=talk_ms, hang_up=True, voice=voice)
    return peer.replace(KEEP_DIALOG, KEEP_DIALOG.replace("    <action>\n", "    <action>\n" + checks, 1), 1)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformUnderTest, int, int]]:
    seat_port, carrier_port = free_tcp_and_udp_port(), free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("dialback"),
        overrides={
            "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"}],
            "acd": {"auto_login": ["1001"], "wrapup_s": 0},
            "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": carrier_port}}},
        },
    )
    platform.start_all()
    try:
        yield platform, seat_port, carrier_port
    finally:
        platform.stop_all()


def entries(platform: PlatformUnderTest) -> list[dict[str, Any]]:
    result = platform.http("/api/v1/seats/1001/callbacks", token=SEAT_TOKEN)
    assert result.status == 200, result
    listed: list[dict[str, Any]] = result.body["callbacks"]
    return listed


def test_a_seat_calls_a_missed_caller_back(platform: tuple[PlatformUnderTest, int, int], tmp_path: Path) -> None:
    hotline, seat_port, carrier_port = platform
    # the citizen hangs up during the greeting: a missed call, on the callback list
    missed = SippCall(hotline.config.sip.port, scenario(INVITE, ANSWERED, pause(500), CALLER_HANGS_UP), caller=CITIZEN)
    assert missed.wait().ok
    entry = wait_for("the callback entry", lambda: next(iter(entries(hotline)), None), timeout_s=30)
    assert entry["caller"] == "139****2301"  # masked on the desk

    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=seat_port, timeout_s=120)
    citizen = SippServer(
        scenario(citizen_phone(talk_ms=3000, voice=tone_wav(tmp_path / "citizen.wav", seconds=2))),
        port=carrier_port,
        timeout_s=120,
    )
    started = hotline.http(
        "/api/v1/seats/1001/callback", token=SEAT_TOKEN, method="POST", body={"entry": entry["entry"]}
    )
    assert started.status == 202, started
    call_id = started.body["call_id"]
    assert citizen.wait().ok  # rung from 087112345, answered, talked, hung up
    assert seat.wait().ok  # rang first, answered, released when the citizen hung up

    record = hotline.wait_call(lambda c: c["call_id"] == call_id and c["state"] == "ended", "the callback's record")
    assert (record["direction"], record["seat"], record["outcome"]) == ("outbound", "1001", "answered")
    assert record["caller"] == "139****2301" and record["called"] == SHOWN
    assert record["tags"]["dial_status"] == "answer" and int(record["tags"]["talk_s"]) >= 2
    assert record["has_call_recording"]
    stored = hotline.stored_call(call_id)
    recording = hotline.config.paths.spool_dir / stored["call_recording"]
    wait_for("the conversation's recording", lambda: recording.is_file() and recording.stat().st_size > 8000)
    assert duration_s(recording) >= 1.5 and rms_amplitude(recording) > 0.01  # the citizen's tone is in it
    wait_for("the entry to go", lambda: entries(hotline) == [], timeout_s=20)
    seats = hotline.http("/api/v1/seats").body["seats"]
    assert next(s for s in seats if s["seat"] == "1001")["state"] == "ready"  # after wrap-up (0 s)
    metrics = hotline.http("/metrics", token=None).body
    assert re.search(r"^hotline_dialback_reached_total(\{[^}]*\})? 1(\.0)?$", metrics, re.M), metrics
