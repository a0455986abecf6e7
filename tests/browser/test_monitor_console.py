"""The console's listen button in a real Chromium: it starts a monitor on the seat's call with
the phone picked, and the monitor can be stopped from the console (the controller's aiohttp
application; behind it a fake AMI link, so the ChanSpy Originate the click caused is checked)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page, expect

from hotline.api import build_api
from monitor.service import MonitorService, MonitorSettings
from tests.browser.test_pages import PageBackend, enter_token
from tests.support.browser import AppServer, PageLog
from tests.support.fake_ami_link import FakeAmiLink
from tests.unit.test_api import TOKENS
from tests.unit.test_monitor import SEAT_CHANNEL, SeatCalls

TIMEOUT_MS = 30_000


class TalkingBackend(PageBackend):
    async def current_calls(self) -> dict[str, dict[str, Any]]:
        return {"1001": {"call_id": "kunming-1.1", "caller": "139****0777", "phase": "talking", "tags": {},
                         "handoff": None}}  # fmt: skip


@pytest.fixture
async def console() -> AsyncIterator[tuple[AppServer, FakeAmiLink]]:
    backend, ami = TalkingBackend(), FakeAmiLink()
    monitors = MonitorService(ami, SeatCalls(), MonitorSettings(frozenset({"1090", "1091"}), 20.0, "kunming"), backend)
    server = AppServer(build_api(backend, TOKENS, monitors=monitors))
    await server.start()
    yield server, ami
    await server.stop()


async def test_the_listen_button_starts_a_monitor_on_the_phone_picked(
    page: Page, page_log: PageLog, console: tuple[AppServer, FakeAmiLink]
) -> None:
    server, ami = console
    await page.goto(server.url + "/")
    await enter_token(page, "sup-token")
    row = page.locator("#seats tr", has_text="1001")
    listen = row.locator("button[data-monitor=listen]")
    await expect(listen).to_have_text("监听", timeout=TIMEOUT_MS)
    await expect(row.locator("button[data-monitor=whisper]")).to_have_text("耳语")
    await expect(row.locator("button[data-monitor=barge]")).to_have_text("强插")
    await page.select_option("#monitor-phone", "1091")
    await listen.click()
    monitors = page.locator("#monitors")
    await expect(monitors).to_contain_text("1091 → 1001 listen (ringing", timeout=TIMEOUT_MS)
    (originate,) = ami.sent("Originate")
    assert originate["Channel"] == "PJSIP/1091"
    assert originate["Application"] == "ChanSpy" and originate["Data"] == f"{SEAT_CHANNEL},qdES"

    await monitors.locator("button", has_text="结束 stop").click()
    await expect(monitors).to_have_text("", timeout=TIMEOUT_MS)
    assert ami.sent("Hangup")
    assert page_log.errors == []
