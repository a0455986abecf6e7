"""Wire the reports into the running parts (called by the app shell, hotline/controller.py)."""

from __future__ import annotations

from datetime import timedelta

import redis.asyncio as aioredis

from acd.seats import SeatService
from calls.caller_index import CallerKeys
from calls.store import RedisCallStore
from calls.tracker import CallTracker
from reports.config import ReportsConfig
from reports.search import CallSearch
from reports.service import Background, ReportService
from reports.store import RedisRollups
from tickets.store import RedisTicketStore


def wire_reports(
    client: aioredis.Redis,
    config: ReportsConfig,
    *,
    platform: str,
    timezone: str,
    background: Background,
    tracker: CallTracker,
    seats: SeatService,
    tickets: RedisTicketStore,
    store: RedisCallStore,
    caller_keys: CallerKeys | None,
) -> tuple[ReportService, CallSearch]:
    """The report service, listening to ended calls, seat changes and saved tickets, and the
    call search over the call store's indexes."""
    rollups = RedisRollups(client, keep=timedelta(days=config.keep_days), marker_ttl=timedelta(days=config.marker_days))
    reports = ReportService(rollups, platform, timezone, background)
    tracker.on_ended(reports.on_call_ended)
    seats.on_change(reports.on_seat_change)
    tickets.on_saved(reports.on_ticket_saved)
    return reports, CallSearch(client, store.many, caller_keys)
