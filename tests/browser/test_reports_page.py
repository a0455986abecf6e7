"""The console's 报表 Reports section in a real Chromium, on a real Redis: a period's rows show,
and the report downloads as a CSV file (fetched with the token, saved by the browser)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Page, expect

from calls.caller_index import CallerKeys
from calls.model import CallOutcome, CallRecord, CallState
from calls.store import RedisCallStore
from hotline.api import build_api
from hotline.redis_process import RedisProcess
from reports.search import CallSearch
from reports.service import ReportService
from reports.store import RedisRollups
from tests.browser.test_pages import TIMEOUT_MS, PageBackend, enter_token
from tests.support.browser import AppServer, PageLog
from tests.support.ports import free_port
from tests.unit.test_api import TOKENS


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def controller(redis_server: RedisProcess) -> AsyncIterator[AppServer]:
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushdb()
    rollups = RedisRollups(client, keep=timedelta(days=40), marker_ttl=timedelta(days=1))
    reports = ReportService(rollups, "kunming", "Asia/Shanghai", lambda what, job: None)
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in China
    for n in range(4):
        at = start + timedelta(minutes=n)
        await reports.on_call_ended(
            CallRecord(
                call_id=f"k-{n}", platform="kunming", caller="13812345678", state=CallState.ENDED, started_at=at,
                queue="general", queued_at=at, seat="1001" if n < 3 else "",
                seat_answered_at=at + timedelta(seconds=5) if n < 3 else None, ended_at=at + timedelta(minutes=1),
                outcome=CallOutcome.ANSWERED if n < 3 else CallOutcome.ABANDONED,
            )
        )  # fmt: skip
    store = RedisCallStore(client, timedelta(days=30), "kunming", CallerKeys("k"))
    server = AppServer(build_api(PageBackend(), TOKENS, reports=(reports, CallSearch(client, store.many, None))))
    await server.start()
    yield server
    await server.stop()
    await client.aclose()


async def test_a_report_shows_and_downloads_as_csv(
    page: Page, page_log: PageLog, controller: AppServer, tmp_path: Path
) -> None:
    await page.goto(controller.url + "/")
    await enter_token(page, "sup-token")
    await page.fill("#report-from", "2026-03-01")
    await page.fill("#report-to", "2026-03-31")
    await page.select_option("#report-by", "week")
    await page.click("#report-form button[type=submit]")
    row = page.locator("#report tr", has_text="general")
    await expect(row).to_contain_text("2026-W10", timeout=TIMEOUT_MS)
    await expect(row).to_contain_text("75.0 %")  # answer rate: 3 of 4
    async with page.expect_download(timeout=TIMEOUT_MS) as waiting:
        await page.click("#report-csv")
    download = await waiting.value
    assert download.suggested_filename == "kunming-queues-20260301-20260331-week.csv"
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    lines = saved.read_text(encoding="utf-8-sig").splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    figures = dict(zip(header, first, strict=True))
    assert (figures["period"], figures["queue"]) == ("2026-W10", "general")
    assert (figures["offered"], figures["answered"]) == ("4", "3")
    assert figures["answer_rate"] == "0.75" and figures["abandoned"] == "1"
    assert page_log.errors == []
