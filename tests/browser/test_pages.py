"""The console and the seat desk in a real Chromium, against the controller's aiohttp application
(the API's own routes and pages; the backend is the unit tests' fake behind ``ApiBackend``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page, expect

from acd.config import SeatConfig
from acd.events import EventBus
from acd.seats import SeatService
from acd.stats import QueueStats
from common.clock import system_clock
from hotline.api import build_api
from tests.support.browser import AppServer, PageLog
from tests.unit.test_api import TOKENS, Backend

TIMEOUT_MS = 30_000  # generous: the machine is shared


class PageBackend(Backend):
    """The fake backend with seats, queue figures and destinations a page can show."""

    def __init__(self, generation: int = 1) -> None:
        super().__init__()
        self.generation = generation  # tells a restarted controller's figures from the old ones
        self._redis = aioredis.Redis(port=1)  # never reached: seat states stay in memory here
        self._seats = SeatService(
            (SeatConfig(id="1001", secret="s3cret-1001"),),
            self._redis,
            events=EventBus(self._redis, platform="kunming"),
            clock=system_clock,
            platform="kunming",
        )

    @property
    def seats(self) -> SeatService:
        return self._seats

    async def queue_stats(self) -> list[QueueStats]:
        nothing = QueueStats("general", 0, 0.0, 0, 0, 0, 0, 0, 0.0, 0.0)
        some = QueueStats("dialect", 0, 0.0, 4 * self.generation, 2, 1, 1, 1, 17.5, 150.0)
        return [nothing, some]

    async def destinations(self) -> list[dict[str, Any]]:
        return [
            {"to": "police", "name": "公安报警 110", "kind": "emergency", "number": "110",
             "modes": ["three_way", "blind"], "available": True},
            {"to": "fire", "name": "消防 119", "kind": "emergency", "number": "119",
             "modes": ["three_way", "blind"], "available": False,
             "unavailable_reason": "no trunk 'carrier' in config.yaml (sip.trunks): a transfer there is refused"},
        ]  # fmt: skip

    async def platforms(self) -> list[dict[str, Any]]:
        return [
            {"platform": "kunming", "name": "昆明", "reporting": True, "status": "ok", "live_calls": 0,
             "seats": {"ready": 1}, "queues": [{"queue": "general", "waiting_now": 0, "answer_rate_24h": None,
                                                "service_level_15s_24h": None, "offered_24h": 0}]},
        ]  # fmt: skip


@pytest.fixture
async def controller() -> AsyncIterator[AppServer]:
    server = AppServer(build_api(PageBackend(), TOKENS))
    await server.start()
    yield server
    await server.stop()


async def enter_token(page: Page, token: str) -> None:
    await page.fill("#token", token)
    await page.press("#token", "Enter")
    await page.locator("#token").blur()


async def test_no_page_load_ends_in_a_404(page: Page, page_log: PageLog, controller: AppServer) -> None:
    """Issue 18.5: the pages declare /favicon.ico and it is an icon Chromium decodes (headless
    Chromium does not fetch icons by itself, so the page loads it as an image)."""
    for path in ("/", "/seat"):
        await page.goto(controller.url + path)
        assert await page.locator("link[rel=icon]").get_attribute("href") == "/favicon.ico"
        width = await page.evaluate(
            """() => new Promise((done, failed) => {
                 const icon = new Image(); icon.onload = () => done(icon.naturalWidth);
                 icon.onerror = () => failed(new Error("not an image")); icon.src = "/favicon.ico"; })"""
        )
        assert width == 16
    assert page_log.failed_responses == []
    assert page_log.errors == []


async def test_nothing_offered_is_no_score(page: Page, page_log: PageLog, controller: AppServer) -> None:
    """Issue 18.3: a queue or platform with nothing offered shows "—", never "100.0 %"."""
    await page.goto(controller.url + "/")
    await enter_token(page, "sup-token")
    general = page.locator("#queues tr", has_text="general")
    await expect(general).to_contain_text("—", timeout=TIMEOUT_MS)
    assert "100.0 %" not in await general.inner_text()
    dialect = page.locator("#queues tr", has_text="dialect")
    await expect(dialect).to_contain_text("50.0 %")  # 2 of 4 answered: real figures still show
    platform_row = page.locator("#platforms tr", has_text="kunming")
    await expect(platform_row).to_contain_text("—", timeout=TIMEOUT_MS)
    assert "%" not in await platform_row.inner_text()
    assert page_log.errors == []


async def test_the_seat_desk_says_where_it_stands(page: Page, page_log: PageLog, controller: AppServer) -> None:
    """Issue 18.2: "Enter your seat token." goes once a token works; the line tells the state."""
    await page.goto(controller.url + "/seat")
    status = page.locator("#status")
    await expect(status).to_have_text("Enter your seat token.", timeout=TIMEOUT_MS)
    await enter_token(page, "not-a-token")
    await expect(status).to_contain_text("not accepted (401)", timeout=TIMEOUT_MS)
    await enter_token(page, "seat-token")
    await expect(status).to_contain_text("seat 1001: logged_out", timeout=TIMEOUT_MS)
    await expect(page.locator("#error")).to_have_text("")
    await page.click("[data-act=login]")
    await expect(status).to_contain_text("seat 1001: ready", timeout=TIMEOUT_MS)
    assert "Enter your seat token" not in await page.locator("body").inner_text()
    assert page_log.errors == []


async def test_an_unavailable_destination_shows_before_it_is_pressed(page: Page, controller: AppServer) -> None:
    """Issue 18.4: a destination without a trunk is a disabled button that says why."""
    await page.goto(controller.url + "/seat")
    await enter_token(page, "seat-token")
    police = page.locator("#emergency button", has_text="110")
    fire = page.locator("#emergency button", has_text="119")
    await expect(police).to_be_enabled(timeout=TIMEOUT_MS)
    await expect(fire).to_be_disabled()
    await expect(fire).to_contain_text("unavailable")
    assert "no trunk 'carrier'" in (await fire.get_attribute("title") or "")


@pytest.mark.parametrize(
    ("path", "token", "figure"), [("/", "sup-token", "#queues"), ("/seat", "seat-token", "#state")]
)
async def test_a_page_left_open_across_a_controller_restart(
    page: Page, controller: AppServer, path: str, token: str, figure: str
) -> None:
    """Issue 18.6: the controller goes away: a banner says so and the figures are marked old;
    it comes back: the banner goes by itself and the figures are the new controller's."""
    await page.goto(controller.url + path)
    await enter_token(page, token)
    banner = page.locator("#offline")
    await expect(page.locator(figure)).not_to_have_text(re.compile(r"^…?$"), timeout=TIMEOUT_MS)
    await expect(banner).to_be_hidden()
    await controller.stop()
    await expect(banner).to_be_visible(timeout=TIMEOUT_MS)
    await expect(banner).to_contain_text("Connection to the controller lost")
    await expect(page.locator("main")).to_have_class(re.compile(r"\bstale\b"))
    await controller.start(build_api(PageBackend(generation=2), TOKENS))
    await expect(banner).to_be_hidden(timeout=TIMEOUT_MS)
    await expect(page.locator("main")).not_to_have_class(re.compile(r"\bstale\b"))
    if path == "/":  # the restarted controller's figures, not the old ones
        await expect(page.locator("#queues tr", has_text="dialect")).to_contain_text("8", timeout=TIMEOUT_MS)
    else:
        await expect(page.locator("#status")).to_contain_text("seat 1001", timeout=TIMEOUT_MS)
