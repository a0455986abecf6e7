"""Ticket clocks: the 18:00 dispatch cut-off, working days over weekends and the Spring Festival,
and provisional deadlines where the calendar lacks a year."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from ivr.calendar import DayInfo, DayType, LocalHoliday, PlatformCalendar
from tickets.deadlines import (
    Due,
    dispatch_deadline,
    extended_resolve_deadline,
    initial_deadlines,
    resolve_deadline,
    resolve_deadline_after_extensions,
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
    deadlines, provisional = initial_deadlines(friday_evening, TicketCategory.CONSULTATION, CALENDAR)
    assert not provisional
    assert deadlines.dispatch_by == cst("2026-03-07 10:00")  # next calendar day, a Saturday
    assert deadlines.resolve_by == cst("2026-03-13 23:59:59")  # Mon 9 … Fri 13
    assert deadlines.sign_by is None and deadlines.return_by is None


def test_complaints_and_reports_get_15_working_days() -> None:
    for category in (TicketCategory.COMPLAINT, TicketCategory.REPORT):
        assert resolve_deadline(cst("2026-03-02 09:00"), category, CALENDAR) == Due(cst("2026-03-23 23:59:59"))
    for category in (TicketCategory.SERVICE_REQUEST, TicketCategory.SUGGESTION):
        assert resolve_deadline(cst("2026-03-02 09:00"), category, CALENDAR) == Due(cst("2026-03-09 23:59:59"))


def test_spring_festival_2026_and_its_make_up_saturdays() -> None:
    # chinese-calendar: holiday 15-23 Feb 2026; Saturdays 14 and 28 Feb are 调休 working days
    eve = cst("2026-02-13 10:00")
    assert resolve_deadline(eve, TicketCategory.CONSULTATION, CALENDAR) == Due(cst("2026-02-27 23:59:59"))
    assert resolve_deadline(eve, TicketCategory.COMPLAINT, CALENDAR) == Due(cst("2026-03-12 23:59:59"))
    during = cst("2026-02-17 09:00")
    assert dispatch_deadline(during) == cst("2026-02-17 23:59:59")  # the hotline dispatches on holidays
    assert resolve_deadline(during, TicketCategory.CONSULTATION, CALENDAR) == Due(cst("2026-02-28 23:59:59"))


def test_sign_and_return_windows() -> None:
    assert sign_deadline(cst("2026-03-03 23:00")) == cst("2026-03-04 01:00")
    assert return_deadline(cst("2026-03-03 09:00")) == cst("2026-03-04 09:00")


def test_an_extension_adds_ten_working_days_over_qingming() -> None:
    first = extended_resolve_deadline(cst("2026-03-13 23:59:59"), CALENDAR)
    assert first == Due(cst("2026-03-27 23:59:59"))
    assert extended_resolve_deadline(first.at, CALENDAR) == Due(cst("2026-04-13 23:59:59"))  # 4-6 April off


def test_a_complaint_on_11_december_2026_gets_provisional_deadlines() -> None:
    """chinesecalendar 1.11 ends with 2026: 15 working days from Friday 11 Dec reach 2027. The
    ticket is filed; 2027's days count Monday–Friday and the deadline says it is provisional."""
    accepted = cst("2026-12-11 21:00")
    deadlines, provisional = initial_deadlines(accepted, TicketCategory.COMPLAINT, CALENDAR)
    assert provisional
    assert deadlines.dispatch_by == cst("2026-12-12 10:00")  # needs no calendar
    assert deadlines.resolve_by == cst("2027-01-01 23:59:59")  # Fri 1 Jan 2027 counted as a working day
    # a day earlier, 15 working days end on 31 Dec 2026: known, not provisional
    assert resolve_deadline(cst("2026-12-10 09:00"), TicketCategory.COMPLAINT, CALENDAR) == Due(
        cst("2026-12-31 23:59:59")
    )


def test_a_consultation_on_28_december_2026_gets_provisional_deadlines() -> None:
    due = resolve_deadline(cst("2026-12-28 09:00"), TicketCategory.CONSULTATION, CALENDAR)
    assert due == Due(cst("2027-01-04 23:59:59"), provisional=True)  # 29, 30, 31 Dec, 1 and 4 Jan


def test_provisional_days_keep_the_local_holidays_already_known() -> None:
    # a prefecture's own holiday in a year the package lacks is still a day off (a fictional one here)
    local = PlatformCalendar([LocalHoliday("测试节 (fictional)", date(2027, 1, 4), date(2027, 1, 5))])
    due = resolve_deadline(cst("2026-12-28 09:00"), TicketCategory.CONSULTATION, local)
    assert due == Due(cst("2027-01-06 23:59:59"), provisional=True)


def test_once_the_year_is_known_the_same_deadline_is_firm() -> None:
    # a fictional extension (tests only: the real 2027 schedule is the State Council's to publish)
    extended = PlatformCalendar(extension={date(2027, 1, 1): DayInfo(DayType.HOLIDAY, "fictional")})
    due = resolve_deadline(cst("2026-12-11 21:00"), TicketCategory.COMPLAINT, extended)
    assert due == Due(cst("2027-01-04 23:59:59"))  # 1 Jan is off: Monday 4 Jan, not provisional


def test_a_recount_with_extensions_equals_the_extensions_made_one_by_one() -> None:
    accepted = cst("2026-03-02 09:00")
    first = extended_resolve_deadline(resolve_deadline(accepted, TicketCategory.COMPLAINT, CALENDAR).at, CALENDAR)
    second = extended_resolve_deadline(first.at, CALENDAR)
    assert resolve_deadline_after_extensions(accepted, TicketCategory.COMPLAINT, 2, CALENDAR) == second
    late = resolve_deadline_after_extensions(cst("2026-11-16 09:00"), TicketCategory.COMPLAINT, 2, CALENDAR)
    assert late == Due(cst("2027-01-04 23:59:59"), provisional=True)  # 15 + 10 + 10 working days
    assert not resolve_deadline(cst("2026-11-16 09:00"), TicketCategory.COMPLAINT, CALENDAR).provisional
    assert CALENDAR.is_working_day(date(2026, 12, 31))
