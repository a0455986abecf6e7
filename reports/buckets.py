"""Hour buckets in the platform's local time (China time by default) and the periods they roll
up into (pure).

Every counter lives in the hash of one local hour (``YYYYMMDDHH``); a query reads the hours of
its date range and adds them up per hour, day, ISO week (Monday first) or calendar month. An
interval (a seat's pause) is split over the hours it spans, so a pause across 00:00 counts on
both days.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

HOUR = timedelta(hours=1)


class Period(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class BadRange(ValueError):
    """A date range a report cannot be asked for (the message says why)."""


def hour_bucket(when: datetime, tz: ZoneInfo) -> str:
    """The local hour ``when`` falls in, as ``YYYYMMDDHH``."""
    return when.astimezone(tz).strftime("%Y%m%d%H")


def hours_between(first: date, last: date) -> list[str]:
    """Every hour bucket of the local days ``first`` … ``last`` (inclusive)."""
    out: list[str] = []
    day = first
    while day <= last:
        stem = day.strftime("%Y%m%d")
        out += [f"{stem}{hour:02d}" for hour in range(24)]
        day += timedelta(days=1)
    return out


def days_between(first: date, last: date) -> list[str]:
    """Every day bucket (``YYYYMMDD``) of the local days ``first`` … ``last`` (inclusive)."""
    return [(first + timedelta(days=n)).strftime("%Y%m%d") for n in range((last - first).days + 1)]


def period_label(bucket: str, period: Period) -> str:
    """The row a bucket (an hour, or a day for any period but hours) adds into:
    ``2026-11-30 08:00``, ``2026-11-30``, ``2026-W49``, ``2026-11``."""
    day = date(int(bucket[:4]), int(bucket[4:6]), int(bucket[6:8]))
    if period is Period.HOUR:
        return f"{day.isoformat()} {bucket[8:10]}:00"
    if period is Period.DAY:
        return day.isoformat()
    if period is Period.WEEK:
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def split_by_hour(start: datetime, end: datetime, tz: ZoneInfo) -> Iterator[tuple[str, int]]:
    """(hour bucket, milliseconds) of the interval ``start`` … ``end`` in each local hour it spans."""
    if end <= start:
        return
    local = start.astimezone(tz)
    cursor = start
    boundary = local.replace(minute=0, second=0, microsecond=0) + HOUR
    while cursor < end:
        upto = min(end, boundary)  # aware datetimes compare as instants
        ms = round((upto - cursor).total_seconds() * 1000)
        if ms > 0:
            yield hour_bucket(cursor, tz), ms
        cursor = upto
        boundary += HOUR


def parse_range(raw_from: str, raw_to: str, max_days: int) -> tuple[date, date]:
    """``from`` and ``to`` (YYYY-MM-DD, both included); BadRange when unreadable, reversed or too long."""
    try:
        first, last = date.fromisoformat(raw_from), date.fromisoformat(raw_to)
    except ValueError:
        raise BadRange("from and to are dates, YYYY-MM-DD") from None
    if len(raw_from) != 10 or len(raw_to) != 10:
        raise BadRange("from and to are dates, YYYY-MM-DD")
    if last < first:
        raise BadRange("to is before from")
    if (last - first).days + 1 > max_days:
        raise BadRange(f"a report covers at most {max_days} days")
    return first, last
