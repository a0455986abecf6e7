"""Cases in Redis: a call's ticket and its call link written in one transaction.

Keys (all under ``hotline:``), beside the ticket store's (tickets/store.py):

- ``case:by-call:<call id>``: the ticket the call was registered as, or linked to. Written in
  the same MULTI as the ticket, under WATCH: a call never yields two tickets, and a ticket
  never exists without its call link (a Redis failure before EXEC writes neither).
- ``cases:open-by-caller:<platform>:<digest>``: the caller's open phone cases (ZSET by
  acceptance; calls/caller_index.py: the number is an HMAC digest, never in clear). Closed
  tickets are dropped from it lazily, when it is read.

The ticket itself is a ticket like any other: ``ticket:<id>``, the ``tickets:by-accepted``
index, the provisional-deadline index, the caller's open ticket (``tickets:open-by-caller:…``, which
voicemail repeat requests merge into) and the platform's export stream (webhook), all in the
same MULTI.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import WatchError

from calls.caller_index import CallerKeys
from calls.model import CallRecord
from cases.model import CaseOutcome, CaseRequest
from tickets import machine
from tickets.deadlines import CHINA
from tickets.model import Ticket, TicketSource, TicketState, TimelineEntry, is_ticket_id
from tickets.store import (
    EXPORT_MAXLEN,
    INDEX,
    RETRIES,
    CalendarFor,
    RedisTicketStore,
    StoreContention,
    export_key,
    export_stream,
    provisional_key,
    ticket_key,
)

log = structlog.get_logger(__name__)

SURVEY_LABELS = {1: "满意", 2: "基本满意", 3: "不满意"}

PREFIX = "hotline:"
MAX_OPEN_PER_CALLER = 50
T = TypeVar("T")


def case_by_call_key(call_id: str) -> str:
    return f"{PREFIX}case:by-call:{call_id}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class CaseExists(Exception):
    """The call already has a case (registered or linked): ``ticket_id``."""

    def __init__(self, ticket_id: str) -> None:
        self.ticket_id = ticket_id
        super().__init__(f"this call already has case {ticket_id}")


class TicketMissing(LookupError):
    """No ticket has this id."""


class TicketClosed(Exception):
    """Only open tickets take repeat requests."""


class TicketElsewhere(Exception):
    """The ticket is another platform's."""


class CaseStore:
    """Phone cases on the shared Redis; ``calendar_for(platform)`` gives the working days."""

    def __init__(
        self, client: aioredis.Redis, tickets: RedisTicketStore, calendar_for: CalendarFor, caller_keys: CallerKeys
    ) -> None:
        self._redis = client
        self._tickets = tickets
        self._calendar_for = calendar_for
        self._keys = caller_keys

    async def case_of(self, call_id: str) -> str | None:
        raw = await self._redis.get(case_by_call_key(call_id))
        return _text(raw) if raw else None

    async def register(self, record: CallRecord, case: CaseRequest, *, seat: str, actor: str, at: datetime) -> Ticket:
        """The call's new ticket (``source: phone``), resolved at once or dispatched; CaseExists
        when the call has one already."""
        platform = record.platform

        async def attempt(pipe: aioredis.client.Pipeline) -> Ticket:
            link = case_by_call_key(record.call_id)
            await pipe.watch(link)
            existing = await pipe.get(link)
            if existing:
                raise CaseExists(_text(existing))
            day = at.astimezone(CHINA).date()
            sequence = await self._tickets.watched_free_sequence(pipe, platform, day)
            calendar = self._calendar_for(platform)
            ticket = machine.accept(
                platform=platform,
                sequence=sequence,
                source=TicketSource.PHONE,
                accepted_at=at,
                category=case.category,
                calendar=calendar,
                caller=record.caller,
                call_id=record.call_id,
                recording=record.call_recording,
                tags=dict(record.tags),
                actor=actor,
                uid=secrets.token_hex(16),
            ).model_copy(
                update={
                    "seat": seat,
                    "matter_type": case.matter_type,
                    "location": case.location,
                    "request": case.request,
                    "unit": case.unit,
                    "knowledge_entry": case.knowledge_entry,
                }
            )
            if case.outcome is CaseOutcome.ANSWERED:
                note = f"answered by phone from knowledge entry {case.knowledge_entry}"
                target = TicketState.RESOLVED
            else:
                note = f"dispatched to unit {case.unit}"
                target = TicketState.DISPATCHED
            ticket = machine.transition(ticket, target, at=at, actor=actor, calendar=calendar, note=note)
            body = ticket.model_dump_json()
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(ticket_key(ticket.id), body)
            pipe.set(link, ticket.id)
            pipe.zadd(INDEX, {ticket.id: at.timestamp()})
            if ticket.deadlines_provisional:
                pipe.zadd(provisional_key(platform), {ticket.id: ticket.deadlines.resolve_by.astimezone(CHINA).year})
            if ticket.is_open and record.caller:
                pipe.set(self._tickets.open_key(platform, record.caller), ticket.id)  # voicemail repeats merge into it
                pipe.delete(self._tickets.old_open_key(platform, record.caller))  # replaced: no number kept
                self._index_open(pipe, platform, record.caller, ticket.id, at)
            pipe.xadd(
                export_stream(platform),
                {"idempotency_key": export_key(ticket), "ticket_id": ticket.id, "platform": platform, "ticket": body},
                maxlen=EXPORT_MAXLEN,
                approximate=True,
            )
            await pipe.execute()
            return ticket

        ticket = await self._optimistic(attempt)
        await self._tickets.notify_saved(ticket)
        log.info("case.registered", ticket=ticket.id, call_id=record.call_id, seat=seat, state=str(ticket.state))
        return ticket

    def _index_open(
        self, pipe: aioredis.client.Pipeline, platform: str, caller: str, ticket_id: str, at: datetime
    ) -> None:
        key = self._keys.open_cases_key(platform, caller)
        pipe.zadd(key, {ticket_id: at.timestamp()})
        pipe.zremrangebyrank(key, 0, -(MAX_OPEN_PER_CALLER + 1))

    async def link(self, record: CallRecord, ticket_id: str, *, seat: str, actor: str, at: datetime) -> Ticket:
        """The call joins the open ticket ``ticket_id`` as a repeat request (国办函〔2025〕66号)."""
        if not is_ticket_id(ticket_id):
            raise TicketMissing(ticket_id)

        async def attempt(pipe: aioredis.client.Pipeline) -> Ticket:
            link, key = case_by_call_key(record.call_id), ticket_key(ticket_id)
            await pipe.watch(link, key)
            existing = await pipe.get(link)
            if existing:
                raise CaseExists(_text(existing))
            raw = await pipe.get(key)
            if not raw:
                raise TicketMissing(ticket_id)
            ticket = Ticket.model_validate_json(raw)
            if ticket.platform != record.platform:
                raise TicketElsewhere(ticket.platform)
            if not ticket.is_open:
                raise TicketClosed(f"ticket {ticket_id} is {ticket.state}: only open tickets take repeat requests")
            note = f"repeat request by phone: call {record.call_id}" + (f", seat {seat}" if seat else "")
            entry = TimelineEntry(state=ticket.state, at=at, actor=actor, note=note)
            linked = ticket.model_copy(
                update={
                    "linked_call_ids": (*ticket.linked_call_ids, record.call_id),
                    "timeline": (*ticket.timeline, entry),
                }
            )
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(key, linked.model_dump_json())
            pipe.set(link, ticket_id)
            if record.caller:
                self._index_open(pipe, record.platform, record.caller, ticket_id, ticket.accepted_at)
            await pipe.execute()
            return linked

        ticket = await self._optimistic(attempt)
        log.info("case.linked", ticket=ticket.id, call_id=record.call_id, seat=seat)
        return ticket

    async def record_survey(self, ticket_id: str, call_id: str, score: int, at: datetime) -> Ticket | None:
        """The caller's survey answer after the seat goes on the call's case (the ticket's
        ``satisfaction`` and its timeline); None when the ticket is gone."""
        if not is_ticket_id(ticket_id):
            return None

        async def attempt(pipe: aioredis.client.Pipeline) -> Ticket | None:
            key = ticket_key(ticket_id)
            await pipe.watch(key)
            raw = await pipe.get(key)
            if not raw:
                return None
            ticket = Ticket.model_validate_json(raw)
            label = SURVEY_LABELS.get(score, str(score))
            entry = TimelineEntry(
                state=ticket.state, at=at, actor="caller", note=f"survey after call {call_id}: {label}"
            )
            scored = ticket.model_copy(update={"satisfaction": score, "timeline": (*ticket.timeline, entry)})
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(key, scored.model_dump_json())
            await pipe.execute()
            return scored

        return await self._optimistic(attempt)

    async def open_cases(self, platform: str, caller: str, limit: int) -> list[Ticket]:
        """The caller's open tickets on ``platform``, newest first: phone cases and the open
        ticket voicemail repeat requests merge into."""
        if not caller:
            return []
        key = self._keys.open_cases_key(platform, caller)
        ids = [_text(i) for i in cast(list[bytes | str], await self._redis.zrevrange(key, 0, MAX_OPEN_PER_CALLER - 1))]
        # until the controller's background migration renamed it: an earlier version's key
        merge_key = (self._tickets.open_key(platform, caller), self._tickets.old_open_key(platform, caller))
        voicemail = next((v for v in await self._redis.mget(merge_key) if v), None)
        if voicemail and _text(voicemail) not in ids:
            ids.append(_text(voicemail))
        if not ids:
            return []
        found: list[Ticket] = []
        closed: list[str] = []
        for ticket_id, raw in zip(ids, await self._redis.mget([ticket_key(i) for i in ids]), strict=True):
            ticket = Ticket.model_validate_json(raw) if raw else None
            if ticket is None or not ticket.is_open or ticket.platform != platform:
                closed.append(ticket_id)
            else:
                found.append(ticket)
        if closed:
            await self._redis.zrem(key, *closed)
        found.sort(key=lambda t: t.accepted_at, reverse=True)
        return found[:limit]

    async def _optimistic(self, attempt: Callable[[aioredis.client.Pipeline], Awaitable[T]]) -> T:
        for _ in range(RETRIES):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    return await attempt(pipe)
                except WatchError:
                    continue
        raise StoreContention(f"gave up after {RETRIES} conflicting writes")
