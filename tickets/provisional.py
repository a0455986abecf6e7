"""Provisional deadlines (``tickets:provisional:<platform>``): counted again once the platform's
calendar knows the year they fell in; each change on the ticket's timeline and in the export
stream (``event: deadlines_recomputed``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import cast

import redis.asyncio as aioredis

from tickets import machine
from tickets.keys import EXPORT_MAXLEN, begin, provisional_key, resolve_year, text, ticket_key
from tickets.model import Ticket
from tickets.store_base import TicketStoreBase


class ProvisionalDeadlines(TicketStoreBase):
    """The store's provisional-deadline sweep (tickets/store.py's RedisTicketStore has it)."""

    async def confirm_provisional(self, platform: str, known_through: date, at: datetime) -> list[Ticket]:
        """Count again the provisional deadlines of ``platform`` whose year the calendar now knows
        (``known_through``: its last covered day); the tickets that changed. Each change is on
        the ticket's timeline and in the export stream; a deadline still short of data stays."""
        index = provisional_key(platform)
        ids = cast(list[bytes | str], await self._redis.zrangebyscore(index, "-inf", known_through.year))
        changed = []
        for raw_id in ids:
            ticket = await self._optimistic(self._recompute(index, text(raw_id), at))
            if ticket is not None:
                changed.append(ticket)
        return changed

    def _recompute(
        self, index: str, ticket_id: str, at: datetime
    ) -> Callable[[aioredis.client.Pipeline], Awaitable[Ticket | None]]:
        """One ticket of the index counted again, under WATCH (an extension may race the sweep)."""

        async def attempt(pipe: aioredis.client.Pipeline) -> Ticket | None:
            key = ticket_key(ticket_id)
            await pipe.watch(key)
            raw = await pipe.get(key)
            ticket = Ticket.model_validate_json(raw) if raw else None
            updated = machine.recompute_deadlines(ticket, self._calendar_for(ticket.platform), at) if ticket else None
            current = updated or ticket
            begin(pipe)
            if updated is not None:
                body = updated.model_dump_json()
                pipe.set(key, body)
                pipe.xadd(
                    self._export_stream,
                    {
                        "idempotency_key": f"{updated.id}:deadlines:{len(updated.timeline)}",
                        "ticket_id": updated.id,
                        "platform": updated.platform,
                        "event": "deadlines_recomputed",
                        "ticket": body,
                    },
                    maxlen=EXPORT_MAXLEN,
                    approximate=True,
                )
            if current is not None and current.deadlines_provisional:
                pipe.zadd(index, {ticket_id: resolve_year(current)})
            else:
                pipe.zrem(index, ticket_id)  # confirmed, or gone
            await pipe.execute()
            return updated

        return attempt

    async def count_provisional(self, platform: str) -> int:
        """How many of ``platform``'s tickets have provisional deadlines."""
        return int(await self._redis.zcard(provisional_key(platform)))
