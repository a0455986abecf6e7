"""The calendar runs out: a complaint left on 11 December 2026 (chinesecalendar 1.11 knows no
2027) still becomes a ticket, with provisional deadlines; health and /metrics say how long the
calendar lasts; adding a year to the dialplan confirms the deadlines by itself.

Real Asterisk, SIPp leaving the message, real Redis, the controller filing tickets itself (no
ASR model: the voicemail → ASR job → ticket sink path with an empty transcript). The 2027 day
added here is fictional: the real schedule is the State Council's to publish.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_messages import leave_message, ticket_of
from tests.support.platform import PlatformUnderTest, wait_for
from tests.support.speech import korean_message_ulaw

pytestmark = pytest.mark.integration

FRIDAY_NIGHT = "2026-12-11T21:00:00+08:00"  # closed; 15 working days from here reach 2027
FICTIONAL_2027 = "calendar_extension:\n  - {date: 2027-01-01, type: holiday, name: fictional test holiday}\n"


@pytest.fixture(scope="module")
def year_end(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformUnderTest]:
    platform = PlatformUnderTest(
        tmp_path_factory.mktemp("year-end"),
        dialplan="after_hours",
        environment={"HOTLINE_TEST_NOW": FRIDAY_NIGHT},
    )
    platform.start_all()
    try:
        yield platform
    finally:
        platform.stop_all()


def days_left(platform: PlatformUnderTest) -> int:
    text = platform.http("/metrics", token=None).body
    found = re.search(r'^hotline_calendar_days_left\{platform="kunming"\} (-?\d+)(?:\.0)?$', text, re.MULTILINE)
    assert found, text
    return int(found.group(1))


def test_a_complaint_past_the_calendar_is_filed_and_confirmed_once_the_year_is_added(
    year_end: PlatformUnderTest, tmp_path: Path
) -> None:
    health = year_end.http("/api/v1/health", token=None).body
    assert health["status"] == "degraded"
    assert health["calendar"] == {"covered_through": "2026-12-31", "days_left": 20}
    (reason,) = health["reasons"]
    assert "20 days left" in reason and "calendar_extension in kunming.yaml" in reason
    assert days_left(year_end) == 20

    call = leave_message(year_end, "13955550011", korean_message_ulaw(tmp_path / "message.wav", "감사합니다"))
    assert call["outcome"] == "voicemail" and call["tags"]["category"] == "complaint"
    ticket = ticket_of(year_end, call["call_id"], timeout_s=90)
    assert ticket["id"].startswith("KM-20261211-")
    assert ticket["category"] == "complaint"
    assert ticket["deadlines_provisional"] is True
    assert ticket["deadlines"]["resolve_by"].startswith("2027-01-01")  # Monday–Friday: Fri 1 Jan
    assert year_end.http("/api/v1/asr/parked").body["parked"] == []  # it used to fail: CalendarDataMissing
    assert 'hotline_tickets_provisional{platform="kunming"} 1' in year_end.http("/metrics", token=None).body

    # the administrator adds 2027 (here: one fictional day) to the dialplan; the controller
    # reloads it and counts the provisional deadlines again, with nobody asking
    year_end.install_dialplan("after_hours", lambda text: text + FICTIONAL_2027)

    def confirmed() -> dict[str, Any] | None:
        found = year_end.http(f"/api/v1/tickets/{ticket['id']}").body
        return found if found.get("deadlines_provisional") is False else None

    after = wait_for("the deadlines to be confirmed", confirmed, timeout_s=60, interval_s=0.5)
    assert after["deadlines"]["resolve_by"].startswith("2027-01-04")  # 1 Jan is a holiday now
    assert after["deadlines"]["dispatch_by"] == ticket["deadlines"]["dispatch_by"]
    last = after["timeline"][-1]
    assert last["actor"] == "system" and "confirmed" in last["note"] and "was 2027-01-01" in last["note"]
    assert last["at"].startswith("2026-12-11")  # the controller's clock (HOTLINE_TEST_NOW), not the host's
    health = year_end.http("/api/v1/health", token=None).body
    assert health["calendar"]["covered_through"] == "2027-12-31" and health["reasons"] == []
    assert days_left(year_end) == 385
