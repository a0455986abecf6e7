"""The console's tickets board in a real Chromium against the controller's aiohttp application
(the unit tests' fake backend, with a real ticket store on a real Redis and the shipped units
directory): an overdue ticket is listed under its unit's name, found by id and by the caller's
number (matched masked, in the page), and moved on with the button of an allowed transition."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page, expect

from calls.caller_index import CallerKeys
from calls.model import CallRecord
from cases.model import CaseOutcome, CaseRequest
from cases.store import CaseStore
from hotline.api import build_api
from hotline.redis_process import RedisProcess
from ivr.calendar import PlatformCalendar
from tests.browser.test_pages import PageBackend, enter_token
from tests.support.browser import AppServer, PageLog
from tests.support.ports import free_port
from tests.unit.test_api import TOKENS
from tickets.model import TicketCategory
from units.registry import DeskRegistry

TIMEOUT_MS = 30_000
REPO = Path(__file__).resolve().parents[2]
CALLER = "13812340042"


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[AppServer, str, aioredis.Redis]]:
    redis = RedisProcess(tmp_path / "redis", free_port())
    redis.start()
    connection = aioredis.Redis.from_url(redis.url)
    backend = PageBackend()
    backend.tickets = type(backend.tickets)(connection, lambda _platform: PlatformCalendar())
    shutil.copytree(REPO / "directory", tmp_path / "directory")
    desk = DeskRegistry(tmp_path / "directory")
    desk.load_initial()
    # a case dispatched to the housing fund ten days ago, never signed for: overdue
    cases = CaseStore(connection, backend.tickets, lambda _platform: PlatformCalendar(), CallerKeys("test"))
    at = datetime.now(UTC) - timedelta(days=10)
    record = CallRecord(call_id="kunming-170.1", platform="kunming", caller=CALLER, started_at=at)
    request = CaseRequest(TicketCategory.SERVICE_REQUEST, "km_housing_fund", CaseOutcome.DISPATCHED, "公积金提取进度")
    ticket = await cases.register(record, request, seat="1001", actor="张敏", at=at)
    server = AppServer(build_api(backend, TOKENS, desk=desk))
    await server.start()
    try:
        yield server, ticket.id, connection
    finally:
        await server.stop()
        await connection.aclose()
        redis.stop()


async def test_the_tickets_board_lists_an_overdue_ticket_by_unit(
    page: Page, page_log: PageLog, console: tuple[AppServer, str, aioredis.Redis]
) -> None:
    server, ticket_id, _ = console
    await page.goto(server.url + "/")
    await enter_token(page, "sup-token")
    unit = page.locator("#overdue-by-unit tr[data-unit=km_housing_fund]")
    await expect(unit).to_contain_text("昆明市住房公积金管理中心", timeout=TIMEOUT_MS)
    await expect(unit).to_contain_text("1 逾期 overdue")
    row = page.locator(f"#overdue-by-unit tr[data-ticket='{ticket_id}']")
    await expect(row).to_contain_text("dispatched")
    await expect(row).to_contain_text("sign")
    await expect(row).to_contain_text("138****0042")  # masked on the board
    assert CALLER not in await page.locator("#ticket-board").inner_text()

    # search: by id, and by the whole number (matched by its masked form, in the page)
    await page.fill("#ticket-search", ticket_id)
    await page.press("#ticket-search", "Enter")
    await expect(page.locator(f"#ticket-found tr[data-ticket='{ticket_id}']")).to_have_count(1, timeout=TIMEOUT_MS)
    await page.fill("#ticket-search", "13900000000")
    await page.press("#ticket-search", "Enter")
    await expect(page.locator("#ticket-found tr[data-ticket]")).to_have_count(0, timeout=TIMEOUT_MS)
    await page.fill("#ticket-search", CALLER)
    await page.press("#ticket-search", "Enter")
    found = page.locator(f"#ticket-found tr[data-ticket='{ticket_id}']")
    await expect(found).to_have_count(1, timeout=TIMEOUT_MS)

    # the allowed move only (dispatched → signed), as a button; the board follows
    buttons = found.locator("button[data-to]")
    await expect(buttons).to_have_count(1)
    await buttons.click()
    await expect(page.locator("#ticket-board-status")).to_contain_text(f"{ticket_id} → signed", timeout=TIMEOUT_MS)
    # signed: the sign-for clock stopped; the resolve clock (5 working days from ten days ago) still runs late
    row = page.locator(f"#overdue-by-unit tr[data-ticket='{ticket_id}']")
    await expect(row.locator("td").nth(3)).to_contain_text("signed", timeout=TIMEOUT_MS)
    await expect(row.locator("td").nth(6)).to_have_text("resolve")
    moves = row.locator("button[data-to]")
    assert sorted(await moves.evaluate_all("(buttons) => buttons.map((b) => b.dataset.to)")) == [
        "in_progress",
        "returned",
    ]
    assert page_log.errors == []
