"""After the seat, on a real Asterisk with SIPp callers, seats and a peer hotline: the seat
hangs up first and the caller rates the call (RFC 4733 key 1); the caller hanging up first,
or a seat's blind transfer, asks nothing. The score is on the record, the seat's and the
queue's figures and /metrics."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.audio import duration_s
from tests.support.platform import ADMIN_TOKEN, SEAT_TOKEN, PlatformUnderTest, wait_for
from tests.support.ports import free_tcp_and_udp_port
from tests.support.sipp import (
    ANSWERED,
    CALLER_HANGS_UP,
    HOTLINE_HANGS_UP,
    INVITE,
    SippCall,
    SippServer,
    answering_peer,
    dtmf,
    pause,
    scenario,
)

pytestmark = pytest.mark.integration

TALK_MS = 2000


class Desk:
    def __init__(self, platform: PlatformUnderTest, seat_port: int, carrier_port: int) -> None:
        self.platform = platform
        self.seat_port = seat_port
        self.carrier_port = carrier_port

    def prompt_ms(self, name: str) -> int:
        path = self.platform.config.paths.runtime_dir / "prompts" / "ivr" / f"{name}.wav"
        return int(duration_s(path) * 1000)

    def call(self, number: str, *parts: str) -> SippCall:
        return SippCall(self.platform.config.sip.port, scenario(INVITE, ANSWERED, *parts), caller=number, timeout_s=120)

    def ended(self, number: str) -> dict[str, Any]:
        masked = number[:3] + "****" + number[-4:]
        return self.platform.wait_call(
            lambda c: c["caller"] == masked and c["state"] == "ended", f"{number} ended", timeout_s=60
        )

    def seat(self) -> dict[str, Any]:
        seats = self.platform.http("/api/v1/seats").body["seats"]
        found: dict[str, Any] = next(s for s in seats if s["seat"] == "1001")
        return found

    def queues(self) -> dict[str, Any]:
        body: dict[str, Any] = self.platform.http("/api/v1/queues").body
        return body


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    seat_port, carrier_port = free_tcp_and_udp_port(), free_tcp_and_udp_port()
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("after_seat"),
        overrides={
            "seats": [{"id": "1001", "name": "1001", "contact": f"sip:1001@127.0.0.1:{seat_port}"}],
            "acd": {"auto_login": ["1001"], "wrapup_s": 0},
            "sip": {"trunks": {"carrier": {"host": "127.0.0.1", "port": carrier_port}}},
        },
        dialplan="after_seat",
    )
    platform.start_all()
    try:
        yield Desk(platform, seat_port, carrier_port)
    finally:
        platform.stop_all()


def test_the_seat_hangs_up_first_and_the_caller_rates_the_call(desk: Desk) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=TALK_MS, hang_up=True)), port=desk.seat_port)
    # no figure before any survey: null, not 0 % and not 100 %
    assert desk.seat()["satisfaction_rate_24h"] is None
    assert desk.queues()["satisfaction_rate"] is None
    # the key goes a few seconds into the survey: its prompt and a 20 s wait leave a wide window
    key_at = desk.prompt_ms("welcome") + TALK_MS + 6000
    caller = desk.call("13900002001", pause(key_at), dtmf("1"), HOTLINE_HANGS_UP)
    assert seat.wait().ok  # the seat hung up
    assert caller.wait().ok  # the caller stayed, pressed 1, and was released by the hotline
    record = desk.ended("13900002001")
    assert record["outcome"] == "answered"
    assert record["seat"] == "1001"
    assert record["survey_score"] == 1
    assert record["digits"] == ["survey=1"]
    assert record["ivr_path"][-3:] == ["case", "survey", "bye"]  # no case on the record: no number read
    assert record["tags"]["after_seat"] == "case"

    figures = wait_for("the seat's figures", lambda: desk.seat() if desk.seat()["surveys_24h"] else None)
    assert figures["satisfaction_rate_24h"] == 1.0
    queues = desk.queues()
    general = next(q for q in queues["queues"] if q["queue"] == "general")
    assert (general["surveys"], general["satisfaction_rate"]) == (1, 1.0)
    assert (queues["surveys"], queues["satisfaction_rate"]) == (1, 1.0)
    metrics = desk.platform.http("/metrics", token=None).body
    assert 'hotline_survey_answers_total{platform="kunming",queue="general",score="1"} 1' in metrics
    assert 'hotline_seat_satisfaction_rate_24h{seat="1001"} 1' in metrics
    assert 'hotline_satisfaction_rate_24h{platform="kunming"} 1' in metrics


def test_the_console_shows_the_satisfaction(desk: Desk, tmp_path: Path) -> None:
    """满意率 per queue, per seat and for the platform, in a real browser (after the rated call)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(desk.platform.base_url + "/")
            page.fill("#token", ADMIN_TOKEN)
            page.dispatch_event("#token", "change")
            try:  # locators poll without eval (the page's CSP forbids it)
                expect(page.locator("#seats")).to_contain_text("满意率", timeout=20_000)
                expect(page.locator("#satisfaction")).to_contain_text("100.0 %", timeout=20_000)
            except AssertionError:
                page.screenshot(path=str(tmp_path / "console.png"))  # kept in the test's folder
                raise
            seats = page.inner_text("#seats")
            queues = page.inner_text("#queues")
        finally:
            browser.close()
    assert "满意率" in queues and "100.0 %" in queues
    row = next(line for line in seats.splitlines() if line.startswith("1001"))
    assert row.rstrip().endswith("100.0 %"), row


def test_the_caller_hanging_up_first_just_ends_the_call(desk: Desk) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=desk.seat_port)
    caller = desk.call("13900002002", pause(desk.prompt_ms("welcome") + 4000), CALLER_HANGS_UP)
    assert caller.wait().ok
    assert seat.wait().ok  # the hotline hung the seat up
    record = desk.ended("13900002002")
    assert record["outcome"] == "answered"
    assert record["survey_score"] is None
    assert "after_seat" not in record["tags"]
    assert record["ivr_path"][-1] == "seat"


def test_a_blind_transfer_is_not_followed_by_the_survey(desk: Desk) -> None:
    seat = SippServer(scenario(answering_peer(talk_ms=0, hang_up=False)), port=desk.seat_port)
    police = SippServer(scenario(answering_peer(talk_ms=3000, hang_up=True)), port=desk.carrier_port)
    caller = desk.call("13900002003", HOTLINE_HANGS_UP)
    masked = "139****2003"
    talking = desk.platform.wait_call(
        lambda c: c["caller"] == masked and c["seat"] == "1001" and c["state"] != "ended", "2003 with 1001"
    )
    result = desk.platform.http(
        f"/api/v1/calls/{talking['call_id']}/transfer", token=SEAT_TOKEN, method="POST",
        body={"to": "police", "mode": "blind"},
    )  # fmt: skip
    assert result.status == 202, result.body
    assert seat.wait().ok
    assert police.wait().ok  # 110 answered, talked, hung up
    assert caller.wait().ok  # and the caller was released, never asked to rate
    record = desk.ended("13900002003")
    assert record["outcome"] == "transferred"
    assert record["survey_score"] is None
    assert "after_seat" not in record["tags"]
    assert "survey" not in record["ivr_path"]


def test_the_caller_hears_the_case_number_and_the_rating_goes_on_the_case(desk: Desk) -> None:
    """Issue 12's whole path: the seat registers the call's case while they talk, hangs up; the
    caller hears the case number read back, presses 1; the record, the ticket and the figures
    carry it."""
    talk_ms = 8000
    seat = SippServer(scenario(answering_peer(talk_ms=talk_ms, hang_up=True)), port=desk.seat_port)
    before = desk.queues()["surveys"]
    # the number (KM-yyyymmdd-nnnn: 14 letters and digits, each well under a second) is read
    # before the survey starts; the survey then waits 20 s, so the key lands inside it
    key_at = desk.prompt_ms("welcome") + talk_ms + desk.prompt_ms("case") + 14_000
    caller = desk.call("13900002004", pause(key_at), dtmf("1"), HOTLINE_HANGS_UP)
    talking = desk.platform.wait_call(
        lambda c: c["caller"] == "139****2004" and c["seat"] == "1001" and c["state"] != "ended", "2004 with 1001"
    )
    case = {
        "category": "consultation",
        "matter_type": "housing_fund",
        "request": "公积金提取要带什么材料",
        "unit": "km_housing_fund",
        "outcome": "dispatched",
    }
    registered = desk.platform.http(
        f"/api/v1/calls/{talking['call_id']}/case", token=SEAT_TOKEN, method="POST", body=case
    )
    assert registered.status == 201, registered.body
    case_id = registered.body["case_id"]
    assert seat.wait().ok
    assert caller.wait().ok
    record = desk.ended("13900002004")
    assert (record["case_id"], record["survey_score"]) == (case_id, 1)
    assert record["ivr_path"][-3:] == ["case", "survey", "bye"]
    ticket = wait_for(
        "the rating on the case",
        lambda: (t := desk.platform.http(f"/api/v1/tickets/{case_id}").body).get("satisfaction") and t,
    )
    assert ticket["satisfaction"] == 1 and ticket["timeline"][-1]["note"].endswith(": 满意")
    assert desk.queues()["surveys"] == before + 1

    # read in Mandarin: Asterisk played our sound set's file for each character, in order, and
    # none of its own (English) digits/ or letters/ files (its log at verbose 3)
    runtime = desk.platform.config.paths.runtime_dir
    log = (runtime / "asterisk" / "log" / "messages.log").read_text(errors="replace")
    zh = str(runtime / "prompts" / "zh")
    heard = re.findall(r"Playing '" + re.escape(zh) + r"/char_([0-9a-z])\.", log)  # res_agi's STREAM FILE
    assert "".join(heard) == "".join(ch for ch in case_id if ch.isalnum()).lower(), heard
    assert not re.search(r"Playing '(digits|letters)/", log)
