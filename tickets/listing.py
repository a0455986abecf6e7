"""Listing tickets from the acceptance index (``tickets:by-accepted``): newest first, filtered."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import cast

from tickets import machine
from tickets.deadlines import CHINA
from tickets.keys import INDEX, text, ticket_key
from tickets.model import Ticket, TicketState
from tickets.store_base import TicketStoreBase


class TicketListing(TicketStoreBase):
    """The store's listing (tickets/store.py's RedisTicketStore has it)."""

    async def list_tickets(
        self,
        *,
        platform: str | None = None,
        state: TicketState | None = None,
        overdue_at: datetime | None = None,
        day: date | None = None,
        limit: int = 100,
    ) -> list[Ticket]:
        """Tickets newest first, filtered: platform, state, accepted on ``day`` (China time),
        and overdue at ``overdue_at`` (at least one missed deadline)."""
        if day is not None:
            start = datetime.combine(day, time.min, CHINA).timestamp()
            end = datetime.combine(day + timedelta(days=1), time.min, CHINA).timestamp()
            ids = cast(list[bytes | str], await self._redis.zrevrangebyscore(INDEX, f"({end}", start))
        else:
            ids = cast(list[bytes | str], await self._redis.zrevrange(INDEX, 0, -1))
        found: list[Ticket] = []
        for chunk_start in range(0, len(ids), 500):
            chunk = [ticket_key(text(i)) for i in ids[chunk_start : chunk_start + 500]]
            for raw in await self._redis.mget(chunk):
                if not raw:
                    continue
                ticket = Ticket.model_validate_json(raw)
                if _matches(ticket, platform, state, overdue_at):
                    found.append(ticket)
                    if len(found) >= limit:
                        return found
        return found


def _matches(ticket: Ticket, platform: str | None, state: TicketState | None, overdue_at: datetime | None) -> bool:
    if platform is not None and ticket.platform != platform:
        return False
    if state is not None and ticket.state is not state:
        return False
    return overdue_at is None or bool(machine.overdue(ticket, overdue_at))
