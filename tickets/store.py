"""Tickets in Redis: idempotent creation from messages, repeat-call merging, safe transitions.

``RedisTicketStore`` is this module's core (creating a ticket from a message or a hand-off,
drawing its number, moving it through the state machine) on top of its parts: the shared base
(store_base.py: reading, the optimistic write, saved-listeners), the listing (listing.py), the
provisional-deadline sweep (provisional.py) and notes / visits / needs-review (followups.py).
The Redis keys are listed in keys.py; the names callers import from here stay here.

A new ticket never replaces another: its key is watched and must be free when the MULTI runs; a
number already taken (a counter lost with a Redis restore, or left by an older version that let
it expire) is skipped and the next one drawn.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import PurePosixPath

import redis.asyncio as aioredis
import structlog

from common.privacy import mask_number
from tickets import machine
from tickets.deadlines import CHINA
from tickets.followups import TicketFollowUps
from tickets.keys import (
    EXPORT_MAXLEN,
    EXPORT_STREAM,
    INDEX,
    PREFIX,
    RETRIES,
    begin,
    export_key,
    export_stream,
    needs_review_key,
    open_ticket_key,
    provisional_key,
    recording_key,
    resolve_year,
    sequence_key,
    text,
    ticket_key,
)
from tickets.listing import TicketListing
from tickets.model import Ticket, TicketCategory, TicketSource, TicketState, Transcript, is_ticket_id, ticket_id
from tickets.provisional import ProvisionalDeadlines
from tickets.store_base import CalendarFor, SavedListener, StoreContention, TicketNotFound

__all__ = [
    "EXPORT_MAXLEN",
    "EXPORT_STREAM",
    "INDEX",
    "PREFIX",
    "RETRIES",
    "CalendarFor",
    "CreateOutcome",
    "CreateResult",
    "RedisTicketStore",
    "SavedListener",
    "StoreContention",
    "TicketNotFound",
    "export_key",
    "export_stream",
    "needs_review_key",
    "open_ticket_key",
    "provisional_key",
    "recording_key",
    "ticket_key",
]

log = structlog.get_logger(__name__)


class CreateOutcome(StrEnum):
    """What a message became."""

    CREATED = "created"  # a new ticket
    LINKED = "linked"  # merged into the caller's open ticket as a repeat request
    DUPLICATE = "duplicate"  # this message was handled before; nothing changed


@dataclass(frozen=True)
class CreateResult:
    outcome: CreateOutcome
    ticket: Ticket


class RedisTicketStore(TicketListing, ProvisionalDeadlines, TicketFollowUps):
    """The ticket store. ``calendar_for(platform)`` gives that platform's working days."""

    async def has_ticket(self, recording: str) -> bool:
        """Whether this message already became (or joined) a ticket."""
        return bool(await self._redis.exists(recording_key(recording)))

    async def create_from_voicemail(
        self,
        *,
        recording: str,
        platform: str,
        caller: str,
        call_id: str,
        accepted_at: datetime,
        transcript: Transcript,
        category: TicketCategory = TicketCategory.CONSULTATION,
        tags: Mapping[str, str] | None = None,
        source: TicketSource = TicketSource.VOICEMAIL,
        origin: str = "",
    ) -> CreateResult:
        """A ticket for a transcribed message: new, merged into the caller's open one, or the
        one this message already made. ``recording`` is the message's path in the spool
        (``voicemail/<call>.wav``): relative, no ``..``. A ticket without a message (a hand-off
        nobody picked up) has no recording and names its ``origin`` (``handoff/<token>``),
        which makes it once only, like a recording does."""
        parts = PurePosixPath(recording or origin).parts
        if not parts or (recording or origin).startswith("/") or any(part in {".", ".."} for part in parts):
            raise ValueError(f"recording must be a path inside the spool, got {recording!r}")

        async def attempt(pipe: aioredis.client.Pipeline) -> CreateResult:
            by_recording = recording_key(recording or origin)
            open_key = self.open_key(platform, caller) if caller else None
            old_key = self.old_open_key(platform, caller) if caller else None
            await pipe.watch(by_recording, *([open_key, old_key] if open_key and old_key else []))
            existing = await pipe.get(by_recording)
            if existing:
                ticket = await self.get(text(existing))
                if ticket is None:
                    raise TicketNotFound(f"{recording} points at a missing ticket {text(existing)}")
                return CreateResult(CreateOutcome.DUPLICATE, ticket)
            open_ticket = await self._watched_open_ticket(pipe, open_key, old_key)
            if open_ticket is not None:
                linked = machine.link_repeat_call(open_ticket, call_id, recording, accepted_at)
                begin(pipe)
                pipe.set(ticket_key(linked.id), linked.model_dump_json())
                pipe.set(by_recording, linked.id)
                await pipe.execute()
                return CreateResult(CreateOutcome.LINKED, linked)
            day = accepted_at.astimezone(CHINA).date()
            sequence = await self._free_sequence(pipe, platform, day)
            ticket = machine.accept(
                platform=platform,
                sequence=sequence,
                source=source,
                accepted_at=accepted_at,
                category=category,
                calendar=self._calendar_for(platform),
                caller=caller,
                call_id=call_id,
                recording=recording,
                transcript=transcript,
                tags=dict(tags or {}),
                uid=secrets.token_hex(16),
            )
            if ticket.id != ticket_id(platform, day, sequence):  # the key watched is the key written
                raise RuntimeError(f"ticket {ticket.id} numbered on another day than {day}")
            body = ticket.model_dump_json()
            begin(pipe)
            pipe.set(ticket_key(ticket.id), body)
            pipe.set(by_recording, ticket.id)
            if open_key and old_key:
                pipe.set(open_key, ticket.id)
                pipe.delete(old_key)  # an earlier version's name of a closed one: replaced
            pipe.zadd(INDEX, {ticket.id: accepted_at.timestamp()})
            if ticket.deadlines_provisional:
                pipe.zadd(provisional_key(platform), {ticket.id: resolve_year(ticket)})
            pipe.persist(sequence_key(platform, day))  # a counter an older version let expire
            pipe.xadd(
                self._export_stream,
                {
                    "idempotency_key": export_key(ticket),
                    "ticket_id": ticket.id,
                    "platform": platform,
                    "ticket": body,
                },
                maxlen=EXPORT_MAXLEN,
                approximate=True,
            )
            await pipe.execute()
            return CreateResult(CreateOutcome.CREATED, ticket)

        result = await self._optimistic(attempt)
        await self.notify_saved(result.ticket)
        log.info(
            "ticket.from_voicemail",
            outcome=str(result.outcome),
            ticket=result.ticket.id,
            recording=recording,
            caller=mask_number(caller),
        )
        return result

    async def watched_free_sequence(self, pipe: aioredis.client.Pipeline, platform: str, day: date) -> int:
        """``_free_sequence`` for other writers of tickets (cases/store.py), in their transaction."""
        return await self._free_sequence(pipe, platform, day)

    async def _free_sequence(self, pipe: aioredis.client.Pipeline, platform: str, day: date) -> int:
        """The next number of ``platform``'s ``day`` whose ticket key is free, that key watched
        (whoever writes it before our MULTI runs makes the MULTI fail, and we draw again)."""
        skipped = 0
        while True:
            sequence = int(await self._redis.incr(sequence_key(platform, day)))
            key = ticket_key(ticket_id(platform, day, sequence))
            await pipe.watch(key)
            if not await pipe.exists(key):
                if skipped:  # the counter was behind: lost, or expired under an older version
                    log.warning("ticket.numbers_taken_skipped", platform=platform, day=str(day), skipped=skipped)
                return sequence
            skipped += 1

    async def _watched_open_ticket(
        self, pipe: aioredis.client.Pipeline, open_key: str | None, old_key: str | None
    ) -> Ticket | None:
        """The caller's open ticket, with its key watched too (a transition may race us); until
        the background migration renamed it, under an earlier version's name (``old_key``)."""
        if open_key is None or old_key is None:
            return None
        open_id = await pipe.get(open_key) or await pipe.get(old_key)
        if not open_id:
            return None
        await pipe.watch(ticket_key(text(open_id)))
        raw = await pipe.get(ticket_key(text(open_id)))
        ticket = Ticket.model_validate_json(raw) if raw else None
        return ticket if ticket is not None and ticket.is_open else None

    async def transition(self, ticket_id: str, to: TicketState, *, at: datetime, actor: str, note: str = "") -> Ticket:
        """Load, apply the state machine, save; machine errors propagate unchanged."""
        if not is_ticket_id(ticket_id):
            raise TicketNotFound(f"no ticket {ticket_id}")

        async def attempt(pipe: aioredis.client.Pipeline) -> Ticket:
            key = ticket_key(ticket_id)
            await pipe.watch(key)
            raw = await pipe.get(key)
            if not raw:
                raise TicketNotFound(f"no ticket {ticket_id}")
            ticket = Ticket.model_validate_json(raw)
            calendar = self._calendar_for(ticket.platform)
            moved = machine.transition(ticket, to, at=at, actor=actor, calendar=calendar, note=note)
            open_key = self.open_key(ticket.platform, ticket.caller)
            old_key = self.old_open_key(ticket.platform, ticket.caller)
            drop: list[str] = []
            if ticket.is_open and not moved.is_open and ticket.caller:
                await pipe.watch(open_key, old_key)
                current, former = await pipe.mget(open_key, old_key)
                if current is not None and text(current) == ticket_id:
                    drop = [open_key, old_key]  # the new key wins over an earlier version's (as migrating)
                elif former is not None and text(former) == ticket_id:
                    drop = [old_key]
            begin(pipe)
            pipe.set(key, moved.model_dump_json())
            if moved.deadlines_provisional:  # an extension into a year the calendar lacks
                pipe.zadd(provisional_key(moved.platform), {moved.id: resolve_year(moved)})
            if drop:  # the caller's next request is a new matter; no key keeps the number
                pipe.delete(*drop)
            await pipe.execute()
            return moved

        moved = await self._optimistic(attempt)
        await self.notify_saved(moved)
        return moved
