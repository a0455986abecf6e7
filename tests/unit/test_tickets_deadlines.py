"""Ticket clocks: the 18:00 dispatch cut-off, working days over weekends and the Spring Festival."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from ivr.calendar import CalendarDataMissing, PlatformCalendar
from tickets.deadlines import (
    dispatch_deadline,
    extended_resolve_deadline,
    initial_deadlines,
    resolve_deadline,
    return_deadline,
    sign_deadline,
)
from tickets.model import TicketCategory

CST = ZoneInfo("Asia/Shanghai")
CALENDAR = PlatformCalendar()


def cst(text: str) -> datetime:
    """``"2026-03-03 17:59"`` in China Standard Time."""
    return datetime.fromisoformat(text).replace(tzinfo=CST)


def test_accepted_before_18_is_dispatched_the_same_day() -> None:
    assert dispatch_deadline(cst("2026-03-03 17:59")) == cst("2026-03-03 23:59:59")


def test_accepted_from_18_is_dispatched_by_10_the_next_day() -> None:
    assert dispatch_deadline(cst("2026-03-03 18:01")) == cst("2026-03-04 10:00")
    assert dispatch_deadline(cst("2026-03-03 18:00")) == cst("2026-03-04 10:00")  # 18:00 is not before 18:00


def test_times_are_read_in_china_whatever_the_offset() -> None:
    # 10:30 UTC is 18:30 in Kunming
    assert dispatch_deadline(datetime(2026, 3, 3, 10, 30, tzinfo=UTC)) == cst("2026-03-04 10:00")
    with pytest.raises(ValueError, match="time zone"):
        dispatch_deadline(datetime(2026, 3, 3, 10, 30))  # naive on purpose


def test_friday_evening_dispatch_is_saturday_and_resolve_skips_the_weekend() -> None:
    friday_evening = cst("2026-03-06 18:30")
    deadlines = initial_deadlines(friday_evening, TicketCategory.CONSULTATION, CALENDAR)
    assert deadlines.dispatch_by == cst("2026-03-07 10:00")  # next calendar day, a Saturday
    assert deadlines.resolve_by == cst("2026-03-13 23:59:59")  # Mon 9 … Fri 13
    assert deadlines.sign_by is None and deadlines.return_by is None


def test_complaints_and_reports_get_15_working_days() -> None:
    for category in (TicketCategory.COMPLAINT, TicketCategory.REPORT):
        assert resolve_deadline(cst("2026-03-02 09:00"), category, CALENDAR) == cst("2026-03-23 23:59:59")
    for category in (TicketCategory.SERVICE_REQUEST, TicketCategory.SUGGESTION):
        assert resolve_deadline(cst("2026-03-02 09:00"), category, CALENDAR) == cst("2026-03-09 23:59:59")


def test_spring_festival_2026_and_its_make_up_saturdays() -> None:
    # chinese-calendar: holiday 15-23 Feb 2026; Saturdays 14 and 28 Feb are 调休 working days
    eve = cst("2026-02-13 10:00")
    assert resolve_deadline(eve, TicketCategory.CONSULTATION, CALENDAR) == cst("2026-02-27 23:59:59")
    assert resolve_deadline(eve, TicketCategory.COMPLAINT, CALENDAR) == cst("2026-03-12 23:59:59")
    during = cst("2026-02-17 09:00")
    assert dispatch_deadline(during) == cst("2026-02-17 23:59:59")  # the hotline dispatches on holidays
    assert resolve_deadline(during, TicketCategory.CONSULTATION, CALENDAR) == cst("2026-02-28 23:59:59")


def test_sign_and_return_windows() -> None:
    assert sign_deadline(cst("2026-03-03 23:00")) == cst("2026-03-04 01:00")
    assert return_deadline(cst("2026-03-03 09:00")) == cst("2026-03-04 09:00")


def test_an_extension_adds_ten_working_days_over_qingming() -> None:
    first = extended_resolve_deadline(cst("2026-03-13 23:59:59"), CALENDAR)
    assert first == cst("2026-03-27 23:59:59")
    assert extended_resolve_deadline(first, CALENDAR) == cst("2026-04-13 23:59:59")  # 4-6 April off


def test_a_year_the_calendar_lacks_is_a_clear_error() -> None:
    accepted = cst("2099-03-02 09:00")
    assert dispatch_deadline(accepted) == cst("2099-03-02 23:59:59")  # needs no calendar
    with pytest.raises(CalendarDataMissing, match=r"no holiday data for 2099.*calendar_extension"):
        initial_deadlines(accepted, TicketCategory.CONSULTATION, CALENDAR)


def test_a_deadline_running_into_a_missing_year_is_refused_too() -> None:
    with pytest.raises(CalendarDataMissing, match="2027"):
        resolve_deadline(cst("2026-12-28 09:00"), TicketCategory.COMPLAINT, CALENDAR)
    assert CALENDAR.is_working_day(date(2026, 12, 31))
