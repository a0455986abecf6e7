"""The console's 外呼 Outbound section in a real Chromium, against the API's own routes with an
OutboundService on a real Redis (a fake dialler behind its Protocol): the state per kind, the
channels, what holds new calls (the 15 s service level here), the recent attempts with results
and numbers masked; pause / resume for an admin only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page, expect

from hotline.api import build_api
from hotline.redis_process import RedisProcess
from outbound.service import OutboundService
from outbound.store import OutboundStore
from outbound.telephony import DialOutcome
from tests.browser.test_pages import PageBackend, enter_token
from tests.support.browser import AppServer, PageLog
from tests.support.ports import free_port
from tests.unit.test_api import TOKENS
from tests.unit.test_outbound import CALENDAR, CITIZEN, MONDAY_10, FakeClock, FakeDialler, Units, config, resolved
from tickets.store import RedisTicketStore

TIMEOUT_MS = 30_000  # generous: the machine is shared


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def outbound(redis_server: RedisProcess) -> AsyncIterator[tuple[AppServer, OutboundService, list[float]]]:
    client = aioredis.Redis.from_url(redis_server.url)
    level = [0.9]
    dialler = FakeDialler(outcomes=[DialOutcome.NO_ANSWER])
    service = OutboundService(
        config=config(), platform="kunming", area_code="0871", timezone="Asia/Shanghai",
        store=OutboundStore(client, "kunming"), tickets=RedisTicketStore(client, lambda _p: CALENDAR), units=Units,
        calendar=lambda: CALENDAR, dialler=dialler, inbound_waiting=lambda: 0, service_level=lambda: level[0],
        clock=FakeClock(MONDAY_10),
    )  # fmt: skip
    await resolved(client)  # a resolved case: a 回访 is planned and dialled once (no answer)
    await service.sweep()
    assert await service.tick() == 1
    await asyncio.gather(*list(service._calls))
    level[0] = 0.5  # then inbound's service level falls: new calls are held
    server = AppServer(build_api(PageBackend(), TOKENS, outbound=service))
    await server.start()
    yield server, service, level
    await server.stop()
    await client.aclose()


async def test_the_outbound_section_shows_state_holds_attempts_and_pauses_for_admins(
    page: Page, page_log: PageLog, outbound: tuple[AppServer, OutboundService, list[float]]
) -> None:
    server, service, level = outbound
    await page.goto(server.url + "/")
    await enter_token(page, "sup-token")
    state = page.locator("#outbound-state")
    await expect(state).to_contain_text("15 秒服务水平偏低", timeout=TIMEOUT_MS)
    await expect(state).to_have_attribute("data-held", "service_level", timeout=TIMEOUT_MS)
    await expect(state).to_contain_text("50.0 %")
    await expect(state).to_contain_text("channels 0 / 2")
    kinds = page.locator("#outbound-kinds")
    await expect(kinds).to_contain_text("回访 visit")
    attempts = page.locator("#outbound-attempts")
    await expect(attempts).to_contain_text("no_answer", timeout=TIMEOUT_MS)
    await expect(attempts).to_contain_text(CITIZEN[:3] + "****" + CITIZEN[-4:])
    assert CITIZEN not in await page.content()  # the number is masked on the page
    await expect(page.locator("#outbound-pause")).to_be_hidden()  # a supervisor sees, does not pause

    await enter_token(page, "admin-token")
    pause = page.locator("#outbound-pause")
    await expect(pause).to_be_visible(timeout=TIMEOUT_MS)
    await pause.click()
    await expect(state).to_have_attribute("data-held", "paused", timeout=TIMEOUT_MS)
    assert await service.store.paused()
    resume = page.locator("#outbound-resume")
    await expect(resume).to_be_visible(timeout=TIMEOUT_MS)
    await resume.click()
    await expect(state).to_have_attribute("data-held", "service_level", timeout=TIMEOUT_MS)
    assert not await service.store.paused()
    level[0] = 0.95  # the level recovers: nothing holds new calls
    await expect(state).to_have_attribute("data-held", "", timeout=TIMEOUT_MS)
    await expect(state).to_contain_text("可外呼 calls may start")
    assert not page_log.errors
