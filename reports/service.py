"""The reports feature's service: counts what ends (calls, seat states, ticket steps) into the
rollups, and answers report queries from them (never from the records)."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from redis.asyncio.client import Pipeline

from acd.seat import Seat
from calls.model import CallRecord
from calls.store import CountOnce
from reports.buckets import Period, days_between, hours_between
from reports.counting import call_increments, seat_increments, ticket_step_increments
from reports.query import DIMENSION, Row, rows
from reports.store import Rollups
from tickets.model import Ticket

log = structlog.get_logger(__name__)

# a Redis write done in the background and retried while Redis fails (calls/redis_budget.py)
Background = Callable[[str, Callable[[], Awaitable[Any]]], None]
# the same, as commands put on the write-behind's pipeline (``RedisBudget.write_staged``)
StagedBackground = Callable[[str, Callable[[Pipeline], None]], None]


class ReportService:
    """One platform's counting and its reports (any platform's, for the province)."""

    def __init__(
        self, rollups: Rollups, platform: str, timezone: str, background: Background,
        staged: StagedBackground | None = None,
    ) -> None:  # fmt: skip
        """``staged``: seat counts go on the write-behind's pipeline (with the seat's own write)."""
        self._rollups = rollups
        self.platform = platform
        self.tz = ZoneInfo(timezone)
        self._background = background
        self._staged = staged
        self._seats: dict[str, Seat] = {}  # each seat's last state seen here (its interval is open)

    # counting (listeners the app shell wires)

    async def on_call_ended(self, record: CallRecord) -> None:
        """Count an ended call now (idempotent: a call counted before is not counted again)."""
        increments = call_increments(record, self.tz)
        if increments:
            await self._rollups.apply(record.platform, f"call:{record.call_id}", increments)

    def ended_counts(self, record: CallRecord) -> CountOnce | None:
        """The call tracker's ended counter (``CallTracker.count_ended``): the same counts as
        ``on_call_ended``, sent by the call writer with the ended record's save — one round
        trip for the calls of a round, retried with it while Redis fails."""
        increments = call_increments(record, self.tz)
        return self._rollups.count_once(record.platform, f"call:{record.call_id}", increments) if increments else None

    async def on_seat_change(self, seat: Seat) -> None:
        """A seat service listener: the state the seat leaves is counted (never waits on Redis).
        The state a seat was in when this controller started is counted from its first change."""
        previous = self._seats.get(seat.seat_id)
        self._seats[seat.seat_id] = seat
        if previous is None or previous.since is None:
            return
        increments = seat_increments(previous, seat, self.tz)
        if not increments:
            return
        event = f"seat:{seat.seat_id}:{previous.since.isoformat()}:{previous.state.value}"
        platform, what = self.platform, f"seat report {seat.seat_id}"
        if self._staged is not None:
            self._staged(what, lambda pipe: self._rollups.stage(pipe, platform, event, increments))
        else:
            self._background(what, lambda: self._rollups.apply(platform, event, increments))

    async def on_ticket_saved(self, ticket: Ticket) -> None:
        """The ticket store's listener: the ticket was created or moved. Counted in the
        background (never waits on Redis)."""
        self._background(f"case report {ticket.id}", lambda: self.count_ticket(ticket))

    async def count_ticket(self, ticket: Ticket) -> None:
        """Every step of the ticket's timeline not counted yet (each once, by its marker)."""
        for index in range(len(ticket.timeline)):
            increments = ticket_step_increments(ticket, index, self.tz)
            if increments:
                await self._rollups.apply(ticket.platform, f"ticket:{ticket.id}:{ticket.uid}:{index}", increments)

    # reading

    async def report(self, kind: str, platform: str, first: date, last: date, period: Period) -> list[Row]:
        """The rows of ``kind`` for ``platform`` over the local days ``first`` … ``last``."""
        buckets = hours_between(first, last) if period is Period.HOUR else days_between(first, last)
        counters = await self._rollups.read(kind, platform, buckets)
        return rows(kind, buckets, counters, period)


def csv_text(kind: str, report_rows: list[Row]) -> str:
    """The rows as CSV (UTF-8 with BOM, so Excel opens Chinese text): the period and dimension
    first, then every figure. A text cell that a spreadsheet would run as a formula is quoted
    with a leading apostrophe; rates and seconds are written as numbers, empty for none."""
    leading = ["period", DIMENSION[kind]]
    columns = leading + sorted({key for row in report_rows for key in row} - set(leading))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in report_rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return "\ufeff" + out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r") and text != "-":
        return "'" + text
    return text
