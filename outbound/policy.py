"""The rules of when and whom we may call (pure): calling hours per kind and day type, the
do-not-call list, and whether a channel may be taken now (inbound first)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from acd.stats import service_level_holds
from common.yamlsource import YamlSyntaxError, parse_yaml
from ivr.calendar import CalendarDataMissing, DayInfo, DayType
from ivr.dialplan.schema import parse_time_range
from outbound.config import KindPolicy

_NUMBER = re.compile(r"\+?[0-9]{3,20}")
MAX_DNC_NUMBERS = 100_000
LOOKAHEAD_DAYS = 15  # the next opening is searched this far (a long holiday with no hours)


class DayTypes(Protocol):
    """The platform calendar (ivr/calendar.py's PlatformCalendar)."""

    def day(self, when: date) -> DayInfo: ...


def day_type(calendar: DayTypes, when: date) -> DayType:
    """The day's type; a year the calendar lacks is taken by its weekday (never a stop)."""
    try:
        return calendar.day(when).day_type
    except CalendarDataMissing:
        return DayType.RESTDAY if when.weekday() >= 5 else DayType.WORKDAY


def hours_of(policy: KindPolicy, kind_of_day: DayType) -> tuple[str, ...]:
    return {
        DayType.WORKDAY: policy.workday_hours,
        DayType.RESTDAY: policy.restday_hours,
        DayType.HOLIDAY: policy.holiday_hours,
    }[kind_of_day]


def may_call(policy: KindPolicy, calendar: DayTypes, local_now: datetime) -> bool:
    """Whether ``local_now`` (platform time) is within the kind's calling hours for its day type."""
    now = local_now.time()
    ranges = hours_of(policy, day_type(calendar, local_now.date()))
    return any(start <= now < end for start, end in (parse_time_range(r) for r in ranges))


def next_opening(policy: KindPolicy, calendar: DayTypes, local_now: datetime) -> datetime | None:
    """The first moment at or after ``local_now`` within calling hours (None: none within
    LOOKAHEAD_DAYS, e.g. every day type has empty hours)."""
    if may_call(policy, calendar, local_now):
        return local_now
    for offset in range(LOOKAHEAD_DAYS + 1):
        day = local_now.date() + timedelta(days=offset)
        starts = sorted(parse_time_range(r)[0] for r in hours_of(policy, day_type(calendar, day)))
        for start in starts:
            candidate = datetime.combine(day, start, local_now.tzinfo)
            if candidate >= local_now:
                return candidate
    return None


@dataclass(frozen=True)
class ChannelBudget:
    """Inbound first: how many automated calls may start now."""

    max_channels: int
    in_use: int
    inbound_waiting: int
    paused: bool
    service_level: float | None = None  # the 15 s service level of the last 15 min (None: no call)
    min_service_level: float = 0.0  # below it no new call starts (0: off)

    @property
    def free(self) -> int:
        if self.paused or self.inbound_waiting > 0 or not self.service_level_holds:
            return 0
        return max(0, self.max_channels - self.in_use)

    @property
    def service_level_holds(self) -> bool:
        return service_level_holds(self.service_level, self.min_service_level)

    @property
    def held_by(self) -> str:
        """Why no call may start ("" when one may)."""
        if self.paused:
            return "paused"
        if self.inbound_waiting > 0:
            return "inbound_waiting"
        if not self.service_level_holds:
            return "service_level"
        if self.in_use >= self.max_channels:
            return "channels_full"
        return ""


class DncInvalid(ValueError):
    """The do-not-call file cannot be used; the message names file:line."""


def normalise(number: str) -> str:
    """A number as compared against the list: digits (and a leading +) only."""
    return number.strip()


def load_dnc(path: Path) -> frozenset[str]:
    """The do-not-call list: a YAML file ``numbers: [ "13800138000", … ]`` (each 3-20 digits,
    an optional leading +). Raises DncInvalid naming file:line for anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DncInvalid(f"{path}: cannot be read: {exc}") from None
    try:
        doc = parse_yaml(text, str(path))
    except YamlSyntaxError as exc:
        raise DncInvalid(str(exc)) from None
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict) or set(data) - {"numbers"}:
        raise DncInvalid(f"{path}:1: error: the file must hold one key, numbers: (a list of phone numbers)")
    numbers = data.get("numbers") or []
    if not isinstance(numbers, list) or len(numbers) > MAX_DNC_NUMBERS:
        raise DncInvalid(f"{path}:1: error: numbers: must be a list of at most {MAX_DNC_NUMBERS} numbers")
    found: set[str] = set()
    for index, number in enumerate(numbers):
        if not isinstance(number, str) or _NUMBER.fullmatch(number) is None:
            where = doc.position_of(("numbers", index))
            line = f"{where.line}" if where else "1"
            raise DncInvalid(
                f"{path}:{line}: error: numbers.{index}: {number!r} is not a phone number "
                "(3-20 digits with an optional leading +, quoted)"
            )
        found.add(normalise(number))
    return frozenset(found)
