"""The wallboard (/wall) in a real Chromium against a real platform (Asterisk, Redis, SIPp): the
board updates while SIPp callers come in, an alert shows while its threshold is crossed (a
caller waiting) and clears, and the page recovers by itself after a controller restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import PageLog
from tests.support.platform import ADMIN_TOKEN, PlatformUnderTest
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import ANSWERED, HOTLINE_HANGS_UP, INVITE, SippCall, SippServer, answering_peer, scenario

pytestmark = pytest.mark.integration

TIMEOUT_MS = 60_000  # a shared machine: Asterisk, SIPp and Chromium at once


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[PlatformUnderTest, int]]:
    port = free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path / "platform",
        overrides={
            "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{port}"}],
            "acd": {"wrapup_s": 0, "ring_timeout_s": 15},
            "wallboard": {
                "push_interval_s": 1,
                "alerts": [{"name": "callers_waiting", "figure": "waiting", "above": 0}],
            },
        },
        dialplan="queue",
    )
    platform.start_all()
    try:
        yield platform, port
    finally:
        platform.stop_all()


async def test_the_wallboard_follows_sipp_calls_and_alerts(
    platform: tuple[PlatformUnderTest, int], page: Page, page_log: PageLog
) -> None:
    hotline, seat_port = platform
    seat = SippServer(scenario(answering_peer(talk_ms=8_000, hang_up=True)), port=seat_port, calls=2)
    try:
        await page.goto(f"http://127.0.0.1:{hotline.config.http.port}/wall")
        await page.fill("#token", ADMIN_TOKEN)
        await page.press("#token", "Enter")
        await expect(page.locator("#t-waiting")).to_have_text("0", timeout=TIMEOUT_MS)
        await expect(page.locator("#t-answer_rate")).to_have_text("—")  # nothing offered: no score
        await expect(page.locator(".seat[data-seat='1001']")).to_have_attribute("data-state", "logged_out")
        login = await asyncio.to_thread(hotline.http, "/api/v1/seats/1001/login", method="POST")
        assert login.status == 200, login.body
        await expect(page.locator(".seat[data-seat='1001']")).to_have_attribute(
            "data-state", "ready", timeout=TIMEOUT_MS
        )

        # two callers, one seat: the first talks, the second waits — the alert is up
        call = scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP)
        callers = await asyncio.to_thread(SippCall, hotline.config.sip.port, call, calls=2, timeout_s=120)
        await expect(page.locator(".seat[data-seat='1001']")).to_have_attribute(
            "data-state", "on_call", timeout=TIMEOUT_MS
        )
        await expect(page.locator("#t-waiting")).to_have_text("1", timeout=TIMEOUT_MS)
        alert = page.locator("#alerts .alert[data-alert=callers_waiting][data-queue=general]")
        await expect(alert).to_be_visible(timeout=TIMEOUT_MS)
        await expect(page.locator(".tile[data-figure=waiting]")).to_have_attribute("data-level", "alert")
        await expect(page.locator("#queues tr[data-queue=general] td.alert-cell")).to_have_count(1)
        metrics = (await asyncio.to_thread(hotline.http, "/metrics", None)).body
        assert 'hotline_alert_active{alert="callers_waiting",platform="kunming",queue="general"} 1.0' in metrics

        # the seat hangs up, takes the second caller: nobody waits, the alert clears
        await expect(page.locator("#t-waiting")).to_have_text("0", timeout=TIMEOUT_MS)
        await expect(alert).to_have_count(0, timeout=TIMEOUT_MS)
        await expect(page.locator(".tile[data-figure=waiting]")).to_have_attribute("data-level", "ok")
        assert await asyncio.to_thread(lambda: callers.wait().ok)
        # both calls counted today, both answered by the seat
        await expect(page.locator("#queues tr[data-queue=general] td").nth(3)).to_have_text("2", timeout=TIMEOUT_MS)
        await expect(page.locator("#t-answer_rate")).to_have_text("100.0%", timeout=TIMEOUT_MS)
        await expect(page.locator("#t-abandon_rate")).to_have_text("0.0%")
        assert "callers_waiting" not in await page.locator("#alerts").inner_text()

        # the controller goes away: a banner, old figures greyed; it comes back: the page recovers
        await asyncio.to_thread(hotline.stop_controller)
        banner = page.locator("#offline")
        await expect(banner).to_be_visible(timeout=TIMEOUT_MS)
        await expect(banner).to_contain_text("Connection to the controller lost")
        await expect(page.locator("body")).to_have_class("stale")
        await asyncio.to_thread(hotline.start_controller)
        await expect(banner).to_be_hidden(timeout=TIMEOUT_MS)
        # today's calls were counted again from the records after the restart
        await expect(page.locator("#t-answer_rate")).to_have_text("100.0%", timeout=TIMEOUT_MS)
        assert [e for e in page_log.errors if "WebSocket" not in e] == []
    finally:
        seat.stop()
