"""The reports (reports/): counters kept as calls end (the call tracker), seats change state (the
seat service) and tickets are saved (the ticket store), and the call search over the call
store's indexes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hotline.config import Config
from hotline.wiring.acd import AcdParts
from hotline.wiring.calls import CallParts
from hotline.wiring.messages import MessageParts
from reports.search import CallSearch
from reports.service import ReportService
from reports.store import RedisRollups


@dataclass(frozen=True)
class ReportParts:
    service: ReportService
    search: CallSearch


def build_reports(config: Config, calls: CallParts, acd: AcdParts, messages: MessageParts) -> ReportParts:
    keep, markers = timedelta(days=config.reports.keep_days), timedelta(days=config.reports.marker_days)
    rollups = RedisRollups(calls.redis, keep=keep, marker_ttl=markers)
    # counted in the background, retried while Redis fails (never on the AMI or seat path); an
    # ended call's counts go with the call writer's round that saves its record; a seat's count
    # goes in the pipeline that saves the seat's state (same client: staged writes batch)
    service = ReportService(
        rollups, config.platform.id, config.platform.timezone, calls.budget.write,
        staged=lambda what, stage: calls.budget.write_staged(what, calls.redis, stage),
    )  # fmt: skip
    calls.tracker.count_ended(service.ended_counts)
    acd.seats.on_change(service.on_seat_change)
    messages.tickets.on_saved(service.on_ticket_saved)
    return ReportParts(service, CallSearch(calls.redis, calls.store.many, calls.caller_keys))
