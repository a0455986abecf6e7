"""The seat's case desk in a real Chromium against a real platform (Asterisk, Redis, SIPp): a
seat logs in with its token, a SIPp caller rings its SIPp phone and the desk pops with the
caller's whole number and history, the seat finds the answer in the knowledge base, registers the
case answered from it, gives the disposition and is ready again — all with the page's keys."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import PageLog
from tests.support.platform import REPO, SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import ANSWERED, HOTLINE_HANGS_UP, INVITE, SippCall, SippServer, answering_peer, scenario

pytestmark = pytest.mark.integration

TIMEOUT_MS = 60_000  # a shared machine: Asterisk, SIPp and Chromium at once
CALLER = "13912340077"


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[PlatformUnderTest, int]]:
    port = free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path / "platform",
        overrides={
            "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{port}"}],
            "acd": {"wrapup_s": 0, "ring_timeout_s": 15, "require_disposition": True},
            "knowledge": {"dir": str(REPO / "knowledge_base")},  # the shipped one (platforms start empty)
        },
        dialplan="queue",
    )
    platform.start_all()
    try:
        yield platform, port
    finally:
        platform.stop_all()


async def test_a_seat_takes_a_call_and_answers_it_from_the_knowledge_base(
    platform: tuple[PlatformUnderTest, int], page: Page, page_log: PageLog
) -> None:
    hotline, seat_port = platform
    seat = SippServer(scenario(answering_peer(talk_ms=12_000, hang_up=True)), port=seat_port, calls=1)
    try:
        await page.goto(f"http://127.0.0.1:{hotline.config.http.port}/seat")
        await page.fill("#token", SEAT_TOKEN)
        await page.press("#token", "Enter")
        status = page.locator("#status")
        await expect(status).to_contain_text("seat 1001: logged_out", timeout=TIMEOUT_MS)
        await page.click("[data-act=login]")
        await expect(status).to_contain_text("seat 1001: ready", timeout=TIMEOUT_MS)
        # the desk's lists came from the units directory and desk codes
        await expect(page.locator("#disposition option[value=answered_directly]")).to_have_count(1)
        await expect(page.locator("#matter-type option[value=housing_fund]")).to_have_text("住房公积金")

        call = await asyncio.to_thread(
            SippCall, hotline.config.sip.port, scenario(INVITE, ANSWERED, HOTLINE_HANGS_UP), caller=CALLER
        )
        # the screen pop: the whole number on the seat's own desk, a first call without history
        await expect(page.locator("#call")).to_contain_text(CALLER, timeout=TIMEOUT_MS)
        await expect(page.locator("#history")).to_contain_text("no earlier calls", timeout=TIMEOUT_MS)

        # the knowledge base, searched in the citizen's word order (Ctrl+K focuses it)
        await page.keyboard.press("Control+k")
        await page.keyboard.type("提取公积金")
        entry = page.locator("#kb-results li[data-entry=km-gjj-tiqu]")
        await expect(entry).to_be_visible(timeout=TIMEOUT_MS)
        await entry.locator("button.use-entry").click()
        await expect(page.locator("#unit")).to_have_value("km_housing_fund", timeout=TIMEOUT_MS)
        await expect(page.locator("#matter-type")).to_have_value("housing_fund")
        await page.fill("#request", "想提取住房公积金，问需要什么材料")
        await page.keyboard.press("Alt+1")  # 咨询
        await page.keyboard.press("Control+Enter")
        result = page.locator("#case-result")
        await expect(result).to_contain_text("工单号 KM-", timeout=TIMEOUT_MS)
        case_id = (await result.inner_text()).split("工单号 ")[1].strip()

        # the seat hangs up: wrap-up, with the disposition the case suggests, given with F4
        assert await asyncio.to_thread(lambda: call.wait().ok)
        await expect(page.locator("#state")).to_contain_text("话后处理", timeout=TIMEOUT_MS)
        await expect(page.locator("#disposition")).to_have_value("answered_directly")
        await page.keyboard.press("F4")
        await expect(status).to_contain_text("seat 1001: ready", timeout=TIMEOUT_MS)

        ticket = (await asyncio.to_thread(hotline.http, f"/api/v1/tickets/{case_id}")).body
        assert (ticket["source"], ticket["state"], ticket["seat"]) == ("phone", "resolved", "1001")
        assert (ticket["knowledge_entry"], ticket["unit"], ticket["category"]) == (
            "km-gjj-tiqu",
            "km_housing_fund",
            "consultation",
        )
        record = await asyncio.to_thread(
            wait_for,
            "the call record with its case and disposition",
            lambda: (r := hotline.http(f"/api/v1/calls/{ticket['call_id']}").body).get("case_id") and r,
        )
        assert record["case_id"] == case_id and record["tags"]["disposition"] == "answered_directly"
        uses = (await asyncio.to_thread(hotline.http, "/api/v1/knowledge/km-gjj-tiqu", SEAT_TOKEN)).body["uses"]
        assert uses == 1
        assert page_log.errors == []
    finally:
        seat.stop()
