"""Working days, rest days and holidays of one platform (pure).

National holidays and 调休 make-up working days come from ``chinese-calendar``; a platform adds
its statutory local holidays (西双版纳 泼水节, 楚雄 火把节 …) and may extend the calendar for
years the package lacks (``calendar_extension``: a year named there is known in full, its
unlisted days following the week). ``day`` refuses a year nobody knows with a clear message;
``count_working_days`` (ticket deadlines) never refuses: it counts such days Monday–Friday, local
holidays still off, and says the result is provisional, to be recomputed once the year is known.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import NamedTuple

import chinese_calendar

# chinese-calendar knows the years from its first to its last holiday entry, and refuses others
_FIRST_YEAR = min(day.year for day in chinese_calendar.constants.holidays)
_LAST_YEAR = max(day.year for day in chinese_calendar.constants.holidays)
_COVERED = f"{_FIRST_YEAR}-{_LAST_YEAR}"
COVERAGE_WARNING_DAYS = 60  # health turns degraded this many days before the last known day


class DayType(StrEnum):
    """What kind of day it is for service hours and ticket deadlines."""

    WORKDAY = "workday"  # Monday-Friday, and 调休 make-up Saturdays/Sundays
    RESTDAY = "restday"  # an ordinary weekend day
    HOLIDAY = "holiday"  # a national or local statutory holiday


class CalendarDataMissing(LookupError):
    """Neither chinese-calendar nor the platform's extension knows this date's year."""


@dataclass(frozen=True)
class DayInfo:
    """A day's type and, for holidays and make-up days, the name."""

    day_type: DayType
    name: str = ""

    @property
    def is_working_day(self) -> bool:
        return self.day_type is DayType.WORKDAY


@dataclass(frozen=True)
class LocalHoliday:
    """A local statutory holiday, inclusive date range."""

    name: str
    first: date
    last: date

    def days(self) -> Iterable[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)


class WorkingDayCount(NamedTuple):
    """A date some working days on, and whether a day on the way had to be judged by its weekday
    (its year has no holiday data yet): then the date is provisional."""

    day: date
    provisional: bool = False


@dataclass(frozen=True)
class Coverage:
    """How far a platform's calendar reaches from ``today``."""

    last_day: date  # the last day of the last year known without a gap (package + extension)
    days_left: int  # from today to last_day (negative once past it)

    @property
    def ending(self) -> bool:
        """Within COVERAGE_WARNING_DAYS of the end (or past it): someone must add the next year."""
        return self.days_left <= COVERAGE_WARNING_DAYS


class PlatformCalendar:
    """Day types for one platform."""

    def __init__(
        self,
        local_holidays: Iterable[LocalHoliday] = (),
        extension: dict[date, DayInfo] | None = None,
    ) -> None:
        self._local: dict[date, str] = {}
        for holiday in local_holidays:
            for day in holiday.days():
                self._local[day] = holiday.name
        self._extension = dict(extension or {})
        self._extended_years = {day.year for day in self._extension}

    def day(self, when: date) -> DayInfo:
        """The type of ``when``; raises CalendarDataMissing for a year nobody knows."""
        if when in self._local:
            return DayInfo(DayType.HOLIDAY, self._local[when])
        if when in self._extension:
            return self._extension[when]
        try:
            is_holiday, name = chinese_calendar.get_holiday_detail(when)
        except NotImplementedError:
            if when.year in self._extended_years:
                # an extended year lists its holidays and make-up days; other days follow the week
                return DayInfo(DayType.RESTDAY if when.weekday() >= 5 else DayType.WORKDAY)
            raise CalendarDataMissing(
                f"no holiday data for {when.year}: chinese-calendar covers {_COVERED}; add that year's "
                "holidays and make-up working days under calendar_extension in the dialplan, "
                "or upgrade chinesecalendar"
            ) from None
        if is_holiday:
            # chinese-calendar names statutory holidays; an unnamed 'holiday' is a plain weekend
            return DayInfo(DayType.HOLIDAY, _chinese_name(name)) if name else DayInfo(DayType.RESTDAY)
        if when.weekday() >= 5:
            return DayInfo(DayType.WORKDAY, f"{_chinese_name(name)}调休" if name else "调休")
        return DayInfo(DayType.WORKDAY)

    def knows_year(self, year: int) -> bool:
        """Whether chinese-calendar or the extension has this year's holidays and make-up days."""
        return _FIRST_YEAR <= year <= _LAST_YEAR or year in self._extended_years

    @property
    def last_covered_day(self) -> date:
        """The end of the package's years and the extension's years that follow them without a gap."""
        year = _LAST_YEAR
        while year + 1 in self._extended_years:
            year += 1
        return date(year, 12, 31)

    def coverage(self, today: date) -> Coverage:
        last = self.last_covered_day
        return Coverage(last, (last - today).days)

    def is_working_day(self, when: date) -> bool:
        return self.day(when).is_working_day

    def count_working_days(self, start: date, count: int) -> WorkingDayCount:
        """The date ``count`` working days after ``start``; never refuses. A day of a year nobody
        knows counts by its weekday (local holidays still off) and makes the result provisional."""
        day = start
        remaining = count
        provisional = False
        while remaining > 0:
            day += timedelta(days=1)
            if day in self._local or self.knows_year(day.year):
                working = self.day(day).is_working_day
            else:
                working = day.weekday() < 5
                provisional = True
            if working:
                remaining -= 1
        return WorkingDayCount(day, provisional)

    def add_working_days(self, start: date, count: int) -> date:
        """The date ``count`` working days after ``start``; CalendarDataMissing for a day of a year
        nobody knows (ticket deadlines use ``count_working_days``, which never refuses)."""
        day = start
        remaining = count
        while remaining > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day


_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}


def _chinese_name(name: str | None) -> str:
    return _NAMES.get(name or "", name or "")
