"""The platform's working-day calendar over time: how long it lasts (health, ``/metrics``) and the
tickets whose deadlines wait for it (counted again once it knows their year).

chinese-calendar ends with the last year it was released for, and the State Council publishes the
next year's holidays only weeks before. Until someone adds that year (``calendar_extension`` in the
dialplan, or a newer chinesecalendar), tickets get provisional Monday–Friday deadlines; health says
so from ``COVERAGE_WARNING_DAYS`` before the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from redis.exceptions import RedisError

from common.clock import Clock
from common.metrics import Metric
from ivr.calendar import Coverage, PlatformCalendar
from tickets.deadlines import CHINA
from tickets.store import RedisTicketStore

log = structlog.get_logger(__name__)

CONFIRM_INTERVAL_S = 10.0  # how often provisional deadlines are checked against the calendar (one ZRANGE)


def coverage_reason(platform: str, dialplan: str, coverage: Coverage) -> str:
    """What health says when the calendar ends soon (or has ended); empty while it lasts."""
    if not coverage.ending:
        return ""
    last, next_year = coverage.last_day.isoformat(), coverage.last_day.year + 1
    fix = (
        f"add {next_year}'s holidays and make-up working days under calendar_extension in {dialplan} "
        "(or upgrade chinesecalendar)"
    )
    if coverage.days_left < 0:
        return (
            f"calendar: {platform} has no holiday data after {last}: tickets get provisional Monday–Friday "
            f"deadlines; {fix}"
        )
    return (
        f"calendar: {platform}'s holiday data ends {last} ({coverage.days_left} days left): {fix}; "
        "meanwhile deadlines that reach past it are provisional"
    )


class CalendarWatch:
    """Coverage of ``calendar()`` (the running dialplan's) as of the controller's clock, and the
    sweep that confirms provisional deadlines of ``platform``'s tickets."""

    def __init__(
        self,
        platform: str,
        dialplan: str,
        calendar: Callable[[], PlatformCalendar],
        tickets: RedisTicketStore,
        clock: Clock,
    ) -> None:
        self._platform = platform
        self._dialplan = dialplan  # the file name, for the operator's message
        self._calendar = calendar
        self._tickets = tickets
        self._clock = clock

    def coverage(self) -> Coverage:
        return self._calendar().coverage(self._clock().astimezone(CHINA).date())

    def health(self) -> tuple[dict[str, Any], list[str]]:
        """The calendar part of /api/v1/health and the reasons it gives for ``degraded``."""
        coverage = self.coverage()
        reason = coverage_reason(self._platform, self._dialplan, coverage)
        return {"covered_through": coverage.last_day.isoformat(), "days_left": coverage.days_left}, (
            [reason] if reason else []
        )

    async def metrics(self) -> list[Metric]:
        labels = (("platform", self._platform),)
        metrics = [
            Metric(
                "hotline_calendar_days_left",
                "gauge",
                "Days until the last day the working-day calendar knows (package + calendar_extension)",
                self.coverage().days_left,
                labels,
            )
        ]
        try:
            async with asyncio.timeout(1.0):  # a scrape never waits on a hung Redis
                provisional = await self._tickets.count_provisional(self._platform)
        except (RedisError, TimeoutError):  # hotline_redis_up / _slow say so; the rest of the scrape stands
            return metrics
        help_text = "Tickets whose deadlines wait for a year the calendar lacks"
        return [*metrics, Metric("hotline_tickets_provisional", "gauge", help_text, provisional, labels)]

    async def confirm_provisional(self) -> int:
        """Count provisional deadlines again where the calendar now knows their year (a
        calendar_extension loaded, a newer chinesecalendar at start); how many changed."""
        known_through = self._calendar().last_covered_day
        changed = await self._tickets.confirm_provisional(self._platform, known_through, self._clock())
        if changed:
            log.info("calendar.deadlines_confirmed", count=len(changed), known_through=known_through.isoformat())
        return len(changed)
