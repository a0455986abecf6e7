"""Is manual service open now? (pure: a dialplan's hours and calendar, and a local time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ivr.calendar import CalendarDataMissing, DayInfo, DayType, PlatformCalendar
from ivr.dialplan.schema import ServiceHours, parse_time_range


@dataclass(frozen=True)
class ServiceState:
    """Open or closed, on what kind of day, and whether the calendar had to be guessed."""

    open: bool
    day: DayInfo
    calendar_missing: str = ""


def service_state(hours: ServiceHours, calendar: PlatformCalendar, local_now: datetime) -> ServiceState:
    """Whether ``local_now`` falls within the hours of its day type.

    A year the calendar lacks is not guessed silently: the day is taken by its weekday and the
    reason is returned (and logged and recorded on the call by the caller of this function).
    """
    missing = ""
    try:
        day = calendar.day(local_now.date())
    except CalendarDataMissing as exc:
        missing = str(exc)
        day = DayInfo(DayType.RESTDAY if local_now.weekday() >= 5 else DayType.WORKDAY)
    ranges = {DayType.WORKDAY: hours.workday, DayType.RESTDAY: hours.restday, DayType.HOLIDAY: hours.holiday}[
        day.day_type
    ]
    now = local_now.time()
    is_open = any(start <= now < end for start, end in (parse_time_range(r) for r in ranges))
    return ServiceState(open=is_open, day=day, calendar_missing=missing)
