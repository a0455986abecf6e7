"""Platform calendars: national holidays, 调休 make-up days, local holidays, missing years."""

from __future__ import annotations

from datetime import date

import pytest

from ivr.calendar import CalendarDataMissing, DayInfo, DayType, LocalHoliday, PlatformCalendar


def test_national_day_2026_is_a_holiday() -> None:
    info = PlatformCalendar().day(date(2026, 10, 1))
    assert info == DayInfo(DayType.HOLIDAY, "国庆节")


def test_spring_festival_2026_and_its_make_up_saturday() -> None:
    calendar = PlatformCalendar()
    assert calendar.day(date(2026, 2, 14)).day_type is DayType.WORKDAY  # Saturday, 调休
    assert calendar.day(date(2026, 2, 14)).name == "春节调休"
    assert calendar.day(date(2026, 2, 17)) == DayInfo(DayType.HOLIDAY, "春节")
    assert calendar.day(date(2026, 3, 7)).day_type is DayType.RESTDAY  # an ordinary Saturday
    assert calendar.day(date(2026, 3, 9)).day_type is DayType.WORKDAY


def test_local_holiday_on_top() -> None:
    water_splashing = LocalHoliday("泼水节", date(2026, 4, 13), date(2026, 4, 15))
    calendar = PlatformCalendar([water_splashing])
    assert calendar.day(date(2026, 4, 14)) == DayInfo(DayType.HOLIDAY, "泼水节")
    assert PlatformCalendar().day(date(2026, 4, 14)).day_type is DayType.WORKDAY


def test_a_year_without_data_is_a_clear_error() -> None:
    with pytest.raises(CalendarDataMissing, match=r"no holiday data for 2027.*calendar_extension"):
        PlatformCalendar().day(date(2027, 3, 3))


def test_extension_covers_a_missing_year() -> None:
    calendar = PlatformCalendar(extension={date(2027, 1, 1): DayInfo(DayType.HOLIDAY, "元旦")})
    assert calendar.day(date(2027, 1, 1)).day_type is DayType.HOLIDAY
    assert calendar.day(date(2027, 1, 2)).day_type is DayType.RESTDAY  # Saturday
    assert calendar.day(date(2027, 1, 4)).day_type is DayType.WORKDAY


def test_working_days_skip_the_spring_festival() -> None:
    calendar = PlatformCalendar()
    # Friday 13 Feb 2026 + 1 working day = Saturday 14 Feb (调休); + 2 = Tuesday 24 Feb
    assert calendar.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert calendar.add_working_days(date(2026, 2, 13), 2) == date(2026, 2, 24)


# Where the package ends (chinesecalendar 1.11: 2026) — and what a fictional extension adds. The
# real 2027 schedule is the State Council's to publish: tests only ever use made-up days.
FICTIONAL_2027 = {date(2027, 1, 1): DayInfo(DayType.HOLIDAY, "fictional holiday")}


def test_coverage_ends_with_the_package_unless_extended_without_a_gap() -> None:
    assert PlatformCalendar().last_covered_day == date(2026, 12, 31)
    assert PlatformCalendar().knows_year(2026) and not PlatformCalendar().knows_year(2027)
    assert PlatformCalendar(extension=FICTIONAL_2027).last_covered_day == date(2027, 12, 31)
    gap = PlatformCalendar(extension={date(2028, 5, 1): DayInfo(DayType.HOLIDAY, "fictional")})
    assert gap.knows_year(2028) and gap.last_covered_day == date(2026, 12, 31)  # 2027 is still missing
    correction = PlatformCalendar(extension={date(2026, 5, 6): DayInfo(DayType.HOLIDAY, "fictional")})
    assert correction.last_covered_day == date(2026, 12, 31)


def test_coverage_is_ending_from_60_days_before_the_last_day() -> None:
    calendar = PlatformCalendar()
    assert calendar.coverage(date(2026, 10, 31)).days_left == 61
    assert not calendar.coverage(date(2026, 10, 31)).ending
    assert calendar.coverage(date(2026, 11, 1)).ending  # 60 days left
    assert calendar.coverage(date(2027, 1, 2)).days_left == -2
    assert not PlatformCalendar(extension=FICTIONAL_2027).coverage(date(2026, 12, 11)).ending


def test_counting_into_a_missing_year_is_provisional_never_an_error() -> None:
    calendar = PlatformCalendar()
    assert calendar.count_working_days(date(2026, 12, 24), 5) == (date(2026, 12, 31), False)
    assert calendar.count_working_days(date(2026, 12, 25), 5) == (date(2027, 1, 1), True)
    with pytest.raises(CalendarDataMissing):
        calendar.add_working_days(date(2026, 12, 25), 5)  # the strict form still refuses
    assert PlatformCalendar(extension=FICTIONAL_2027).count_working_days(date(2026, 12, 25), 5) == (
        date(2027, 1, 4),
        False,
    )
