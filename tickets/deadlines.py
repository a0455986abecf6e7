"""Ticket clocks from the seed (pure: times and a working-day calendar in, deadlines out).

Interpretations, chosen where the seed is silent:

- Times are read in China Standard Time (Asia/Shanghai), whatever offset the caller passes.
- Dispatch: accepted before 18:00 → by the end of that day (23:59:59); accepted at 18:00 or
  later → by 10:00 the next *calendar* day (the seed says "next day", not "next working day":
  the hotline dispatches every day, even when the units rest).
- Sign-for: 2 hours after dispatch. Return: at most 24 hours after sign-for.
- Resolve: 5 working days (consultation, service request, suggestion) or 15 (complaint,
  report) counted from the acceptance date, which itself does not count; due at the end of
  that working day (23:59:59), so a unit has its whole last day.
- Extension: at most 2, each adds 10 working days to the current resolve deadline.

- A year the calendar lacks (chinese-calendar ends; no ``calendar_extension`` yet) never stops a
  ticket: its days count Monday–Friday (local holidays still off) and the resolve deadline is
  *provisional* (``Due.provisional``; the ticket says ``deadlines_provisional``), recomputed by
  ``tickets.machine.recompute_deadlines`` once the year is known.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from tickets.model import Deadlines, TicketCategory

CHINA = ZoneInfo("Asia/Shanghai")
DISPATCH_CUTOFF = time(18, 0)
NEXT_DAY_DISPATCH = time(10, 0)
END_OF_DAY = time(23, 59, 59)
SIGN_WINDOW = timedelta(hours=2)
RETURN_WINDOW = timedelta(hours=24)
EXTENSION_WORKING_DAYS = 10
MAX_EXTENSIONS = 2

RESOLVE_WORKING_DAYS: dict[TicketCategory, int] = {
    TicketCategory.CONSULTATION: 5,
    TicketCategory.SERVICE_REQUEST: 5,
    TicketCategory.SUGGESTION: 5,
    TicketCategory.COMPLAINT: 15,
    TicketCategory.REPORT: 15,
}


class WorkingDays(Protocol):
    """What the clocks need of a platform calendar (``ivr.calendar.PlatformCalendar``): the date
    ``count`` working days after ``start``, and whether it is provisional (a year without data)."""

    def count_working_days(self, start: date, count: int) -> tuple[date, bool]: ...


class Due(NamedTuple):
    """A working-day deadline; ``provisional`` when it counted days of a year without calendar data."""

    at: datetime
    provisional: bool = False


def local(when: datetime) -> datetime:
    """``when`` in China Standard Time; a naive time is refused (its zone would be a guess)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"ticket times need a time zone, got naive {when.isoformat()}")
    return when.astimezone(CHINA)


def _end_of(day: date) -> datetime:
    return datetime.combine(day, END_OF_DAY, CHINA)


def dispatch_deadline(accepted_at: datetime) -> datetime:
    """Same day if accepted before 18:00, else 10:00 the next calendar day."""
    accepted = local(accepted_at)
    if accepted.time() < DISPATCH_CUTOFF:
        return _end_of(accepted.date())
    return datetime.combine(accepted.date() + timedelta(days=1), NEXT_DAY_DISPATCH, CHINA)


def sign_deadline(dispatched_at: datetime) -> datetime:
    return local(dispatched_at) + SIGN_WINDOW


def return_deadline(signed_at: datetime) -> datetime:
    return local(signed_at) + RETURN_WINDOW


def _working_days_after(day: date, count: int, calendar: WorkingDays) -> Due:
    end, provisional = calendar.count_working_days(day, count)
    return Due(_end_of(end), provisional)


def resolve_deadline(accepted_at: datetime, category: TicketCategory, calendar: WorkingDays) -> Due:
    """The end of the 5th or 15th working day after the acceptance date."""
    return _working_days_after(local(accepted_at).date(), RESOLVE_WORKING_DAYS[category], calendar)


def extended_resolve_deadline(resolve_by: datetime, calendar: WorkingDays) -> Due:
    """One extension: 10 more working days after the current resolve deadline's day."""
    return _working_days_after(local(resolve_by).date(), EXTENSION_WORKING_DAYS, calendar)


def resolve_deadline_after_extensions(
    accepted_at: datetime, category: TicketCategory, extensions: int, calendar: WorkingDays
) -> Due:
    """The resolve deadline of a ticket extended ``extensions`` times, counted again from the start
    (what a provisional deadline becomes once the calendar knows its year)."""
    due = resolve_deadline(accepted_at, category, calendar)
    for _ in range(extensions):
        step = extended_resolve_deadline(due.at, calendar)
        due = Due(step.at, due.provisional or step.provisional)
    return due


def initial_deadlines(accepted_at: datetime, category: TicketCategory, calendar: WorkingDays) -> tuple[Deadlines, bool]:
    """The clocks that start at acceptance (sign-for and return start later), and whether the
    resolve deadline is provisional."""
    resolve = resolve_deadline(accepted_at, category, calendar)
    return Deadlines(dispatch_by=dispatch_deadline(accepted_at), resolve_by=resolve.at), resolve.provisional
