"""What every part of the ticket store shares: the client, the calendars, the saved-listeners,
reading a ticket, and the optimistic (WATCH / MULTI, retried) write.

Every read-modify-write runs under WATCH and retries when another writer got in first
(``StoreContention`` after ``RETRIES`` lost races). The store itself is tickets/store.py's
``RedisTicketStore``, composed of this base and its parts (listing.py, provisional.py,
followups.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import WatchError

from calls.caller_index import CallerKeys
from tickets.deadlines import WorkingDays
from tickets.keys import EXPORT_STREAM, OLD_OPEN_PREFIX, RETRIES, begin, open_ticket_key, ticket_key
from tickets.model import Ticket, is_ticket_id

log = structlog.get_logger(__name__)

CalendarFor = Callable[[str], WorkingDays]
T = TypeVar("T")
SavedListener = Callable[[Ticket], Awaitable[None]]


class TicketNotFound(LookupError):
    """No ticket has this id."""


class StoreContention(RuntimeError):
    """Other writers kept changing the same keys; the caller may try again later."""


class TicketStoreBase:
    """The store's shared state. ``calendar_for(platform)`` gives that platform's working days;
    ``caller_keys`` names a caller's open ticket without the number (the controller's and the
    ASR workers' must be the same: the caller index's secret). Without one, a random secret of
    this store alone: merging then works within this process only (tests, tools)."""

    def __init__(
        self,
        client: aioredis.Redis,
        calendar_for: CalendarFor,
        export_stream: str = EXPORT_STREAM,
        *,
        caller_keys: CallerKeys | None = None,
    ) -> None:
        self._redis = client
        self._calendar_for = calendar_for
        self._export_stream = export_stream  # per platform: each exports to its own webhook
        self._caller_keys = caller_keys or CallerKeys(secrets.token_hex(32))
        self._saved_listeners: list[SavedListener] = []

    def open_key(self, platform: str, caller: str) -> str:
        """The key of ``caller``'s open ticket on ``platform`` (its value: the ticket id)."""
        return open_ticket_key(platform, self._caller_keys.digest(platform, caller))

    @staticmethod
    def old_open_key(platform: str, caller: str) -> str:
        """The name an earlier version gave that key (the whole number in it): read while the
        controller's background migration has not renamed it yet, deleted with the new one."""
        return f"{OLD_OPEN_PREFIX}{platform}:{caller}"

    def on_saved(self, listener: SavedListener) -> None:
        """Call ``listener`` with each ticket this store created or moved (the reports count its
        steps); it must not wait on Redis (the ticket is saved already)."""
        self._saved_listeners.append(listener)

    async def notify_saved(self, ticket: Ticket) -> None:
        """Tell the listeners (also used by the case store, which writes tickets itself)."""
        for listener in self._saved_listeners:
            try:
                await listener(ticket)
            except Exception as exc:  # a report counter must never fail a ticket's save
                log.error("tickets.saved_listener_failed", ticket=ticket.id, error=repr(exc))

    async def get(self, ticket_id: str) -> Ticket | None:
        if not is_ticket_id(ticket_id):  # e.g. "by-recording:…", another key under ticket:
            return None
        raw = await self._redis.get(ticket_key(ticket_id))
        return Ticket.model_validate_json(raw) if raw else None

    async def _update(self, ticket_id: str, change: Callable[[Ticket], Ticket]) -> Ticket:
        if not is_ticket_id(ticket_id):
            raise TicketNotFound(f"no ticket {ticket_id}")

        async def attempt(pipe: aioredis.client.Pipeline) -> Ticket:
            key = ticket_key(ticket_id)
            await pipe.watch(key)
            raw = await pipe.get(key)
            if not raw:
                raise TicketNotFound(f"no ticket {ticket_id}")
            changed = change(Ticket.model_validate_json(raw))
            begin(pipe)
            pipe.set(key, changed.model_dump_json())
            await pipe.execute()
            return changed

        return await self._optimistic(attempt)

    async def _optimistic(self, attempt: Callable[[aioredis.client.Pipeline], Awaitable[T]]) -> T:
        for _ in range(RETRIES):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    return await attempt(pipe)
                except WatchError:
                    continue
        raise StoreContention(f"gave up after {RETRIES} conflicting writes")
