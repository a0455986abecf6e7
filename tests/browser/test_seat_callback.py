"""回拨 on the seat's desk in a real Chromium against a real platform (Asterisk, Redis, SIPp): a
citizen hung up during the greeting, the desk lists the missed call with the number masked, the
seat clicks 回拨, its SIPp phone rings and answers, the citizen (SIPp behind the carrier trunk)
answers and talks; the desk says the citizen was reached and the list is empty."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.support.audio import tone_wav
from tests.support.browser import PageLog
from tests.support.platform import SEAT_TOKEN, PlatformUnderTest
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import ANSWERED, CALLER_HANGS_UP, INVITE, SippCall, SippServer, answering_peer, pause, scenario

pytestmark = pytest.mark.integration

TIMEOUT_MS = 60_000  # a shared machine: Asterisk, SIPp and Chromium at once
CITIZEN = "13912347788"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[PlatformUnderTest, int, int]]:
    seat_port, carrier_port = free_tcp_and_udp_port(), free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path / "platform",
        overrides={
            "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"}],
            "acd": {"wrapup_s": 0},
            "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": carrier_port}}},
        },
    )
    platform.start_all()
    try:
        yield platform, seat_port, carrier_port
    finally:
        platform.stop_all()


async def test_a_seat_clicks_callback_on_a_missed_call(
    platform: tuple[PlatformUnderTest, int, int], page: Page, page_log: PageLog, tmp_path: Path
) -> None:
    hotline, seat_port, carrier_port = platform
    missed = await asyncio.to_thread(
        SippCall, hotline.config.sip.port, scenario(INVITE, ANSWERED, pause(500), CALLER_HANGS_UP), caller=CITIZEN
    )
    assert await asyncio.to_thread(lambda: missed.wait().ok)
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=seat_port, timeout_s=120)
    voice = tone_wav(tmp_path / "citizen.wav", seconds=2)
    citizen = SippServer(scenario(answering_peer(talk_ms=3000, hang_up=True, voice=voice)), port=carrier_port)
    try:
        await page.goto(f"http://127.0.0.1:{hotline.config.http.port}/seat")
        await page.fill("#token", SEAT_TOKEN)
        await page.press("#token", "Enter")
        status = page.locator("#status")
        await expect(status).to_contain_text("seat 1001: logged_out", timeout=TIMEOUT_MS)
        await page.click("[data-act=login]")
        await expect(status).to_contain_text("seat 1001: ready", timeout=TIMEOUT_MS)

        missed_list = page.locator("#missed")
        await expect(missed_list).to_contain_text("139****7788", timeout=TIMEOUT_MS)  # masked on the desk
        assert CITIZEN not in await page.locator("main").inner_text()
        await missed_list.locator("button.callback").first.click()
        await expect(page.locator("#notice")).to_contain_text("回拨", timeout=TIMEOUT_MS)

        assert await asyncio.to_thread(lambda: citizen.wait().ok)  # rung, answered, talked, hung up
        assert await asyncio.to_thread(lambda: seat.wait().ok)
        await expect(page.locator("#notice")).to_contain_text("回拨已接通", timeout=TIMEOUT_MS)
        await expect(missed_list).to_contain_text("无未接来电", timeout=TIMEOUT_MS)
        await expect(status).to_contain_text("seat 1001: ready", timeout=TIMEOUT_MS)
        calls = (await asyncio.to_thread(hotline.http, "/api/v1/calls")).body["calls"]
        outbound = [c for c in calls if c["direction"] == "outbound"]
        assert [(c["seat"], c["outcome"]) for c in outbound] == [("1001", "answered")]
        assert page_log.errors == []
    finally:
        seat.stop()
        citizen.stop()
