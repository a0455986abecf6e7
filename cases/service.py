"""The case desk's logic: register a call's case, link a call to an open case, and the caller's
history (earlier calls and open cases) for the screen pop. Access rules live in routes.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import structlog
from redis.exceptions import RedisError

from calls.caller_index import HISTORY_DAYS, HISTORY_WINDOW
from calls.model import CallChanges, CallRecord
from cases.model import CaseRequest, KnowledgeLookup, UnitLookup
from cases.store import CaseStore
from common.clock import Clock, system_clock
from common.privacy import mask_number
from tickets.model import Ticket

log = structlog.get_logger(__name__)

HISTORY_CALLS = 20  # earlier calls shown in a pop
HISTORY_CASES = 10  # open cases shown in a pop
READ_TIMEOUT_S = 2.0
T = TypeVar("T")


class LiveCalls(Protocol):
    """The controller's live call records (calls/tracker.py ``CallTracker``)."""

    def get_live(self, call_id: str) -> CallRecord | None: ...

    async def amend_stored(
        self, call_id: str, changes: CallChanges, then: Callable[[CallRecord], Awaitable[None]] | None = None
    ) -> CallRecord | None: ...


class StoredCalls(Protocol):
    """Stored call records (calls/store.py ``RedisCallStore`` with a caller index)."""

    async def get(self, call_id: str) -> CallRecord | None: ...

    async def by_caller(self, platform: str, number: str, since_ms: int, limit: int) -> list[CallRecord]: ...


class EventPublisher(Protocol):
    """The supervisors' event bus (acd/events.py ``EventBus``); seats get theirs through the hub."""

    async def publish(self, kind: str, at: datetime, **fields: Any) -> None: ...


class Unavailable(Exception):
    """Redis did not answer (in time): answered with 503."""


class UnknownReference(Exception):
    """The case names a unit or knowledge entry that does not exist (answered with 422)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def call_summary(record: CallRecord) -> dict[str, Any]:
    """An earlier call in a caller's history: the number masked."""
    return {
        "call_id": record.call_id,
        "caller": mask_number(record.caller),
        "started_at": record.started_at.isoformat(),
        "state": record.state.value,
        "outcome": record.outcome.value if record.outcome else None,
        "queue": record.queue,
        "seat": record.seat,
        "case_id": record.case_id,
        "tags": record.tags,
    }


def case_summary(ticket: Ticket) -> dict[str, Any]:
    """An open case in a caller's history (what a seat needs to decide on a repeat request)."""
    return {
        "id": ticket.id,
        "state": ticket.state.value,
        "source": ticket.source.value,
        "category": ticket.category.value,
        "accepted_at": ticket.accepted_at.isoformat(),
        "matter_type": ticket.matter_type,
        "location": ticket.location,
        "request": ticket.request or (ticket.transcript.text if ticket.transcript else ""),
        "unit": ticket.unit,
        "resolve_by": ticket.deadlines.resolve_by.isoformat(),
        "linked_call_ids": list(ticket.linked_call_ids),
    }


class CaseService:
    """Registers and links cases; reads the caller's history."""

    def __init__(
        self,
        *,
        store: CaseStore,
        live: LiveCalls,
        stored: StoredCalls,
        units: UnitLookup,
        knowledge: KnowledgeLookup,
        events: EventPublisher,
        clock: Clock = system_clock,
    ) -> None:
        self._store = store
        self._live = live
        self._stored = stored
        self._units = units
        self._knowledge = knowledge
        self._events = events
        self._clock = clock

    async def _read(self, what: str, read: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                return await read()
        except (RedisError, TimeoutError) as exc:
            raise Unavailable(f"{what} are unavailable: Redis: {exc or 'timed out'}") from None

    async def call(self, call_id: str) -> CallRecord | None:
        """The call's record: the live one while it lasts, else the stored one."""
        return self._live.get_live(call_id) or await self._read("call records", lambda: self._stored.get(call_id))

    async def case_of(self, record: CallRecord) -> str:
        """The call's case id ("" if none): the link key is the truth, the record's field follows it."""
        if record.case_id:
            return record.case_id
        return await self._read("cases", lambda: self._store.case_of(record.call_id)) or ""

    async def register(self, record: CallRecord, case: CaseRequest, *, actor: str) -> Ticket:
        """The call's ticket; UnknownReference for a unit or entry that does not exist,
        cases.store.CaseExists when the call has a case already."""
        platform = record.platform
        if not await self._units.has_unit(platform, case.unit):
            raise UnknownReference("unit", f"no unit {case.unit!r} in {platform}'s units directory")
        if case.matter_type and not await self._units.has_matter_type(platform, case.matter_type):
            raise UnknownReference("matter_type", f"no matter type {case.matter_type!r} in {platform}'s desk codes")
        if case.knowledge_entry and not await self._knowledge.has_entry(platform, case.knowledge_entry):
            raise UnknownReference("knowledge_entry", f"no knowledge entry {case.knowledge_entry!r} for {platform}")
        now = self._clock()
        ticket = await self._read(
            "tickets", lambda: self._store.register(record, case, seat=record.seat, actor=actor, at=now)
        )
        await self._settled(record, ticket, "case.registered", now)
        if case.knowledge_entry:
            try:
                await self._knowledge.record_use(platform, case.knowledge_entry)
            except Exception as exc:  # a use count is not worth failing a saved case over
                log.warning("case.knowledge_use_not_recorded", entry=case.knowledge_entry, error=str(exc))
        return ticket

    async def link(self, record: CallRecord, ticket_id: str, *, actor: str) -> Ticket:
        """The call joins an open ticket of its platform as a repeat request."""
        now = self._clock()
        ticket = await self._read(
            "tickets", lambda: self._store.link(record, ticket_id, seat=record.seat, actor=actor, at=now)
        )
        await self._settled(record, ticket, "case.linked", now)
        return ticket

    async def _settled(self, record: CallRecord, ticket: Ticket, kind: str, at: datetime) -> None:
        # the record follows the link key (written with the ticket): in memory at once, in Redis
        # by the tracker's writer (retried while Redis fails)
        await self._live.amend_stored(record.call_id, {"case_id": ticket.id})
        await self._events.publish(
            kind, at, call_id=record.call_id, seat=record.seat, ticket_id=ticket.id, state=ticket.state.value
        )

    async def survey_answered(self, record: CallRecord, score: int) -> None:
        """ivr's SurveySink: the caller's answer after the seat goes on the call's case."""
        if not record.case_id:
            return
        ticket = await self._read(
            "tickets", lambda: self._store.record_survey(record.case_id, record.call_id, score, self._clock())
        )
        if ticket is not None:
            log.info("case.survey", ticket=ticket.id, call_id=record.call_id, score=score)

    async def history(self, record: CallRecord) -> dict[str, Any]:
        """The caller's calls of the last 90 days (other than this one) and open cases."""
        if not record.caller:
            return {"window_days": HISTORY_DAYS, "calls": [], "open_cases": []}
        since_ms = int((self._clock() - HISTORY_WINDOW).timestamp() * 1000)
        calls = await self._read(
            "call records",
            lambda: self._stored.by_caller(record.platform, record.caller, since_ms, HISTORY_CALLS + 1),
        )
        cases = await self._read(
            "tickets", lambda: self._store.open_cases(record.platform, record.caller, HISTORY_CASES)
        )
        return {
            "window_days": HISTORY_DAYS,
            "calls": [  # a live record is fresher than its stored copy (the tracker writes behind)
                call_summary(self._live.get_live(c.call_id) or c) for c in calls if c.call_id != record.call_id
            ][:HISTORY_CALLS],
            "open_cases": [case_summary(t) for t in cases],
        }

    async def pop(self, call_id: str) -> dict[str, Any] | None:
        """What a seat's screen shows when its phone rings for ``call_id``: the call, its whole
        number (``caller_number``: for the seat's own socket only) and the caller's history."""
        record = await self.call(call_id)
        if record is None:
            return None
        pop: dict[str, Any] = {
            "call_id": record.call_id,
            "queue": record.queue,
            "tags": record.tags,
            "caller": mask_number(record.caller),
            "caller_number": record.caller,
            "case_id": record.case_id,
        }
        try:
            pop["history"] = await self.history(record)
        except Unavailable as exc:
            pop["history"] = None
            pop["history_error"] = str(exc)
        return pop
