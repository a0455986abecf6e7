"""Tickets in Redis: idempotent creation from messages, repeat-call merging, safe transitions.

Keys (all under ``hotline:``):

- ``ticket:<id>``: the ticket as JSON.
- ``ticket:by-recording:<file>``: the ticket a message became. It is written in the same
  MULTI as the ticket, so a message never yields two tickets, however often it is processed.
- ``tickets:open:<platform>:<caller>``: the caller's open ticket (repeat requests merge into it;
  国办函〔2025〕66号 asks for one ticket per matter).
- ``tickets:seq:<platform>:<yyyymmdd>``: the day's ticket counter (INCR; a lost race leaves a gap
  in the numbers, never a duplicate). It never expires: a message of that day handled days later
  (a parked job retried, workers down) must not start the day at ``0001`` again.
- ``tickets:by-accepted``: every ticket id, scored by acceptance time (listing by date).
- ``tickets:new``: a stream with one entry per new ticket for exporters; the entry's
  ``idempotency_key`` is ``<ticket id>:<uid>`` (``export_key``), so a consumer that sees it twice
  can drop the copy, and a number given out again after Redis was restored from an older backup
  is never taken for a copy of the first case (its uid differs). A
  ticket whose provisional deadlines were recomputed is sent again (``event:
  deadlines_recomputed``, key ``<id>:deadlines:<timeline length>``).
- ``tickets:provisional:<platform>``: tickets whose resolve deadline counted days of a year the
  calendar did not know (ZSET, scored by that deadline's year); ``confirm_provisional`` counts
  them again once the calendar reaches that year.

Every read-modify-write runs under WATCH and retries when another writer got in first. A new
ticket never replaces another: its key is watched and must be free when the MULTI runs; a number
already taken (a counter lost with a Redis restore, or left by an older version that let it
expire) is skipped and the next one drawn.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import PurePosixPath
from typing import TypeVar, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import WatchError

from common.privacy import mask_number
from tickets import machine
from tickets.deadlines import CHINA, WorkingDays
from tickets.model import (
    Ticket,
    TicketCategory,
    TicketSource,
    TicketState,
    Transcript,
    Visit,
    is_ticket_id,
    ticket_id,
)

log = structlog.get_logger(__name__)


def export_key(ticket: Ticket) -> str:
    """The idempotency key of a new ticket's export: its id and its random uid (tickets made
    before uids existed: the id alone)."""
    return f"{ticket.id}:{ticket.uid}" if ticket.uid else ticket.id


PREFIX = "hotline:"
EXPORT_STREAM = f"{PREFIX}tickets:new"


def export_stream(platform: str) -> str:
    return f"{EXPORT_STREAM}:{platform}"


INDEX = f"{PREFIX}tickets:by-accepted"
EXPORT_MAXLEN = 100_000
RETRIES = 20

CalendarFor = Callable[[str], WorkingDays]
T = TypeVar("T")


def ticket_key(ticket_id: str) -> str:
    return f"{PREFIX}ticket:{ticket_id}"


def recording_key(recording: str) -> str:
    return f"{PREFIX}ticket:by-recording:{recording}"


def open_ticket_key(platform: str, caller: str) -> str:
    """The caller's open ticket (voicemail repeat requests merge into it)."""
    return _open_key(platform, caller)


def _open_key(platform: str, caller: str) -> str:
    return f"{PREFIX}tickets:open:{platform}:{caller}"


def provisional_key(platform: str) -> str:
    return f"{PREFIX}tickets:provisional:{platform}"


def needs_review_key(platform: str) -> str:
    """ZSET of ``platform``'s tickets flagged by a 回访 (重办/督办), by when."""
    return f"{PREFIX}tickets:needs-review:{platform}"


def _resolve_year(ticket: Ticket) -> int:
    """The index score of a provisional ticket: the calendar must know up to this year."""
    return ticket.deadlines.resolve_by.astimezone(CHINA).year


def _sequence_key(platform: str, day: date) -> str:
    return f"{PREFIX}tickets:seq:{platform}:{day:%Y%m%d}"


def _begin(pipe: aioredis.client.Pipeline) -> None:
    """Start the MULTI block of a watched pipeline (redis-py leaves ``multi`` untyped)."""
    pipe.multi()  # type: ignore[no-untyped-call]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class CreateOutcome(StrEnum):
    """What a message became."""

    CREATED = "created"  # a new ticket
    LINKED = "linked"  # merged into the caller's open ticket as a repeat request
    DUPLICATE = "duplicate"  # this message was handled before; nothing changed


@dataclass(frozen=True)
class CreateResult:
    outcome: CreateOutcome
    ticket: Ticket


class TicketNotFound(LookupError):
    """No ticket has this id."""


class StoreContention(RuntimeError):
    """Other writers kept changing the same keys; the caller may try again later."""


SavedListener = Callable[[Ticket], Awaitable[None]]


class RedisTicketStore:
    """The ticket store. ``calendar_for(platform)`` gives that platform's working days."""

    def __init__(self, client: aioredis.Redis, calendar_for: CalendarFor, export_stream: str = EXPORT_STREAM) -> None:
        self._redis = client
        self._calendar_for = calendar_for
        self._export_stream = export_stream  # per platform: each exports to its own webhook
        self._saved_listeners: list[SavedListener] = []

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
            open_key = _open_key(platform, caller) if caller else None
            await pipe.watch(by_recording, *([open_key] if open_key else []))
            existing = await pipe.get(by_recording)
            if existing:
                ticket = await self.get(_text(existing))
                if ticket is None:
                    raise TicketNotFound(f"{recording} points at a missing ticket {_text(existing)}")
                return CreateResult(CreateOutcome.DUPLICATE, ticket)
            open_ticket = await self._watched_open_ticket(pipe, open_key)
            if open_ticket is not None:
                linked = machine.link_repeat_call(open_ticket, call_id, recording, accepted_at)
                _begin(pipe)
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
            _begin(pipe)
            pipe.set(ticket_key(ticket.id), body)
            pipe.set(by_recording, ticket.id)
            if open_key:
                pipe.set(open_key, ticket.id)
            pipe.zadd(INDEX, {ticket.id: accepted_at.timestamp()})
            if ticket.deadlines_provisional:
                pipe.zadd(provisional_key(platform), {ticket.id: _resolve_year(ticket)})
            pipe.persist(_sequence_key(platform, day))  # a counter an older version let expire
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
            sequence = int(await self._redis.incr(_sequence_key(platform, day)))
            key = ticket_key(ticket_id(platform, day, sequence))
            await pipe.watch(key)
            if not await pipe.exists(key):
                if skipped:  # the counter was behind: lost, or expired under an older version
                    log.warning("ticket.numbers_taken_skipped", platform=platform, day=str(day), skipped=skipped)
                return sequence
            skipped += 1

    async def _watched_open_ticket(self, pipe: aioredis.client.Pipeline, open_key: str | None) -> Ticket | None:
        """The caller's open ticket, with its key watched too (a transition may race us)."""
        if open_key is None:
            return None
        open_id = await pipe.get(open_key)
        if not open_id:
            return None
        await pipe.watch(ticket_key(_text(open_id)))
        raw = await pipe.get(ticket_key(_text(open_id)))
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
            open_key = _open_key(ticket.platform, ticket.caller)
            closes = False
            if ticket.is_open and not moved.is_open and ticket.caller:
                await pipe.watch(open_key)
                current = await pipe.get(open_key)
                closes = current is not None and _text(current) == ticket_id
            _begin(pipe)
            pipe.set(key, moved.model_dump_json())
            if moved.deadlines_provisional:  # an extension into a year the calendar lacks
                pipe.zadd(provisional_key(moved.platform), {moved.id: _resolve_year(moved)})
            if closes:
                pipe.delete(open_key)  # the caller's next request is a new matter
            await pipe.execute()
            return moved

        moved = await self._optimistic(attempt)
        await self.notify_saved(moved)
        return moved

    async def add_note(self, ticket_id: str, *, at: datetime, actor: str, note: str) -> Ticket:
        """A timeline note on the ticket (its state unchanged); TicketNotFound."""
        return await self._update(ticket_id, lambda ticket: machine.note(ticket, at, actor, note))

    async def record_visit(self, ticket_id: str, visit: Visit, *, actor: str, note: str = "") -> Ticket:
        """The 回访's answers: resolved → visited; a flagged ticket goes on its platform's
        needs-review index (needs_review_key) for supervisors. Machine errors propagate."""
        moved = await self._update(
            ticket_id,
            lambda t: machine.visited(t, visit, actor=actor, calendar=self._calendar_for(t.platform), note=note),
        )
        if moved.needs_review:
            await self._redis.zadd(needs_review_key(moved.platform), {moved.id: visit.at.timestamp()})
        await self.notify_saved(moved)  # the reports count the visited step and its answers
        return moved

    async def record_visit_comment(
        self, ticket_id: str, recording: str, transcript: Transcript, *, at: datetime, actor: str
    ) -> Ticket:
        """The 回访 comment's transcript onto the ticket's visit (machine.visit_comment):
        idempotent; ValueError for a ticket without that comment, TicketNotFound."""
        return await self._update(
            ticket_id, lambda t: machine.visit_comment(t, recording, transcript, at=at, actor=actor)
        )

    async def has_visit_comment_transcript(self, ticket_id: str) -> bool:
        """Whether the ticket's 回访 comment was transcribed (False for no ticket or no visit)."""
        ticket = await self.get(ticket_id) if is_ticket_id(ticket_id) else None
        return ticket is not None and ticket.visit is not None and ticket.visit.comment_transcript is not None

    async def needs_review(self, platform: str, limit: int = 100) -> list[str]:
        """The ids of ``platform``'s tickets flagged for a supervisor, newest first."""
        ids = cast(list[bytes | str], await self._redis.zrevrange(needs_review_key(platform), 0, limit - 1))
        return [_text(i) for i in ids]

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
            _begin(pipe)
            pipe.set(key, changed.model_dump_json())
            await pipe.execute()
            return changed

        return await self._optimistic(attempt)

    async def confirm_provisional(self, platform: str, known_through: date, at: datetime) -> list[Ticket]:
        """Count again the provisional deadlines of ``platform`` whose year the calendar now knows
        (``known_through``: its last covered day); the tickets that changed. Each change is on
        the ticket's timeline and in the export stream; a deadline still short of data stays."""
        index = provisional_key(platform)
        ids = cast(list[bytes | str], await self._redis.zrangebyscore(index, "-inf", known_through.year))
        changed = []
        for raw_id in ids:
            ticket = await self._optimistic(self._recompute(index, _text(raw_id), at))
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
            _begin(pipe)
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
                pipe.zadd(index, {ticket_id: _resolve_year(current)})
            else:
                pipe.zrem(index, ticket_id)  # confirmed, or gone
            await pipe.execute()
            return updated

        return attempt

    async def count_provisional(self, platform: str) -> int:
        """How many of ``platform``'s tickets have provisional deadlines."""
        return int(await self._redis.zcard(provisional_key(platform)))

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
            chunk = [ticket_key(_text(i)) for i in ids[chunk_start : chunk_start + 500]]
            for raw in await self._redis.mget(chunk):
                if not raw:
                    continue
                ticket = Ticket.model_validate_json(raw)
                if _matches(ticket, platform, state, overdue_at):
                    found.append(ticket)
                    if len(found) >= limit:
                        return found
        return found

    async def _optimistic(self, attempt: Callable[[aioredis.client.Pipeline], Awaitable[T]]) -> T:
        for _ in range(RETRIES):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    return await attempt(pipe)
                except WatchError:
                    continue
        raise StoreContention(f"gave up after {RETRIES} conflicting writes")


def _matches(ticket: Ticket, platform: str | None, state: TicketState | None, overdue_at: datetime | None) -> bool:
    if platform is not None and ticket.platform != platform:
        return False
    if state is not None and ticket.state is not state:
        return False
    return overdue_at is None or bool(machine.overdue(ticket, overdue_at))
