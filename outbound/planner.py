"""Planning outbound jobs from tickets: a dispatch reminder per dispatch (a second one near the
sign-by deadline) to the ticket's unit, a 回访 to the citizen once the ticket is resolved.

Idempotent: a job's id names its ticket, kind, dispatch and round, and the store makes an
existing id a no-op, so every sweep may plan everything again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from common.clock import Clock
from common.privacy import mask_number
from outbound.config import OutboundConfig
from outbound.model import Job, Kind, job_id
from outbound.store import OutboundStore
from tickets.model import Ticket, TicketState
from units.registry import UnitLookup

log = structlog.get_logger(__name__)

SWEEP_LIMIT = 5000  # tickets looked at per state per sweep
_CITIZEN_NUMBER = re.compile(r"[0-9]{7,20}")  # ASCII digits only (str.isdigit() takes any script's)


class TicketLister(Protocol):
    """What planning needs of tickets (tickets/store.py's RedisTicketStore)."""

    async def list_tickets(
        self, *, platform: str | None = None, state: TicketState | None = None, limit: int = 100
    ) -> list[Ticket]: ...


def _moves_into(ticket: Ticket, state: TicketState) -> list[datetime]:
    """When the ticket moved into ``state`` (notes keep the state: they are not moves)."""
    moves, before = [], None
    for entry in ticket.timeline:
        if entry.state is state and before is not state:
            moves.append(entry.at)
        before = entry.state
    return moves


def dispatch_count(ticket: Ticket) -> int:
    return len(_moves_into(ticket, TicketState.DISPATCHED))


def dispatched_at(ticket: Ticket) -> datetime | None:
    moves = _moves_into(ticket, TicketState.DISPATCHED)
    return moves[-1] if moves else None


def resolved_at(ticket: Ticket) -> datetime | None:
    moves = _moves_into(ticket, TicketState.RESOLVED)
    return moves[-1] if moves else None


class JobPlanner:
    """The sweep of outbound/service.py's OutboundService."""

    def __init__(
        self,
        *,
        config: OutboundConfig,
        platform: str,
        store: OutboundStore,
        tickets: TicketLister,
        units: Callable[[], UnitLookup],
        clock: Clock,
    ) -> None:
        self.config = config
        self.platform = platform
        self.store = store
        self._tickets = tickets
        self._units = units
        self._clock = clock

    def _now(self) -> float:
        return self._clock().timestamp()

    async def sweep(self) -> int:
        """Plan the jobs tickets call for (idempotent: an existing job is never made again); how many new."""
        made = 0
        now = self._clock()
        if self.config.reminder.enabled:
            for ticket in await self._tickets.list_tickets(
                platform=self.platform, state=TicketState.DISPATCHED, limit=SWEEP_LIMIT
            ):
                made += await self._plan_reminders(ticket, now)
        if self.config.visit.enabled:
            for ticket in await self._tickets.list_tickets(
                platform=self.platform, state=TicketState.RESOLVED, limit=SWEEP_LIMIT
            ):
                made += await self._plan_visit(ticket)
        await self.store.forget_expired(now.timestamp() - 61 * 86_400)
        return made

    async def _plan_reminders(self, ticket: Ticket, now: datetime) -> int:
        unit = self._units().lookup(ticket.platform, ticket.unit) if ticket.unit else None
        if unit is None:
            return 0  # no unit on the ticket (or gone from the directory): nobody to remind
        number = unit.contacts[0].number
        dispatch = dispatch_count(ticket)
        since = dispatched_at(ticket) or now
        made = await self._create(ticket, Kind.REMINDER, dispatch, 1, number=number, due=since.timestamp())
        sign_by = ticket.deadlines.sign_by
        if sign_by is not None:
            second = sign_by - timedelta(seconds=self.config.second_reminder_before_s)
            if now >= second:
                made += await self._create(ticket, Kind.REMINDER, dispatch, 2, number=number, due=now.timestamp())
        return made

    async def _plan_visit(self, ticket: Ticket) -> int:
        if _CITIZEN_NUMBER.fullmatch(ticket.caller) is None:
            return 0  # an anonymous or odd caller: no 回访 by phone
        at = (resolved_at(ticket) or self._clock()).timestamp() + self.config.visit_delay_s
        return await self._create(ticket, Kind.VISIT, 1, 1, number=ticket.caller, due=at)

    async def _create(self, ticket: Ticket, kind: Kind, dispatch: int, round_: int, *, number: str, due: float) -> int:
        now = self._now()
        job = Job(
            id=job_id(ticket.id, kind, dispatch, round_),
            platform=self.platform,
            ticket_id=ticket.id,
            kind=kind,
            number=number,
            due_at=due,
            created_at=now,
            updated_at=now,
        )
        if not await self.store.create(job):
            return 0
        log.info("outbound.planned", job=job.id, number=mask_number(number))
        return 1
