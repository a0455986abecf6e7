"""The outbound dialler: plans jobs from tickets, claims due ones, dials them, settles tries.

Inbound first: no call starts while a caller waits for a seat, while paused, or when
``max_channels`` automated calls are on. Calling hours per kind and day type; the do-not-call
list; one call at a time per number (the store's lock). Every try and its result goes on the
ticket's timeline and in the log with the number masked. Planning jobs from tickets is
outbound/planner.py's; what the API shows, outbound/views.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import structlog

from common.clock import Clock, system_clock
from common.metrics import Metric
from common.privacy import mask_number
from outbound.config import KindPolicy, OutboundConfig
from outbound.model import COMMENTS_DIR, FINAL_RESULTS, Job, JobState, Kind, Result, after_try, move
from outbound.planner import SWEEP_LIMIT, JobPlanner, dispatch_count, dispatched_at, resolved_at
from outbound.policy import ChannelBudget, DayTypes, may_call, next_opening
from outbound.store import ClaimOutcome, OutboundStore
from outbound.telephony import DialOutcome
from outbound.views import job_view, metrics_view, status_view
from tickets.model import Ticket, TicketState, Visit
from units.registry import UnitLookup
from voicemail.jobs import VoicemailMeta

__all__ = [
    "SWEEP_LIMIT",
    "CommentQueue",
    "Dialler",
    "OutboundService",
    "Tickets",
    "channel_id",
    "dispatch_count",
    "dispatched_at",
    "job_view",
    "resolved_at",
]

log = structlog.get_logger(__name__)

ACTOR = "outbound"
UNIT_ACTOR = "unit by phone"
BUSY_NUMBER_RETRY_S = 60  # a number already on a call: look again this much later
MAX_CALL_S = 600  # a try with no word for this long after its ring time is settled as interrupted
DUE_BATCH = 20


class Tickets(Protocol):
    """What outbound needs of tickets (tickets/store.py's RedisTicketStore)."""

    async def get(self, ticket_id: str) -> Ticket | None: ...

    async def list_tickets(
        self, *, platform: str | None = None, state: TicketState | None = None, limit: int = 100
    ) -> list[Ticket]: ...

    async def transition(
        self, ticket_id: str, to: TicketState, *, at: datetime, actor: str, note: str = ""
    ) -> Ticket: ...

    async def add_note(self, ticket_id: str, *, at: datetime, actor: str, note: str) -> Ticket: ...

    async def record_visit(self, ticket_id: str, visit: Visit, *, actor: str, note: str = "") -> Ticket: ...


class CommentQueue(Protocol):
    """The ASR queue (voicemail/queue.py's AsrQueue): a 回访 comment to transcribe onto its case."""

    async def enqueue(self, recording: str, meta: VoicemailMeta) -> bool: ...


class Dialler(Protocol):
    """outbound/telephony.py's OutboundTelephony."""

    @property
    def connected(self) -> bool: ...

    async def dial(self, job_id: str, channel_id: str, number: str, ring_s: int, caller_id: str) -> DialOutcome: ...

    async def live_channels(self) -> set[str]: ...


_DIAL_RESULTS = {
    DialOutcome.NO_ANSWER: Result.NO_ANSWER,
    DialOutcome.BUSY: Result.BUSY,
    DialOutcome.FAILED: Result.DIAL_FAILED,
}


def channel_id(job: Job) -> str:
    """The uniqueid the try's channel gets (Originate ChannelId): the job and its try."""
    return f"{job.id}.try{job.tries}"


class OutboundService:
    def __init__(
        self,
        *,
        config: OutboundConfig,
        platform: str,
        area_code: str,
        timezone: str,
        store: OutboundStore,
        tickets: Tickets,
        units: Callable[[], UnitLookup],
        calendar: Callable[[], DayTypes],
        dialler: Dialler,
        inbound_waiting: Callable[[], int],
        dnc: frozenset[str] = frozenset(),
        comments: CommentQueue | None = None,
        service_level: Callable[[], float | None] = lambda: None,
        clock: Clock = system_clock,
    ) -> None:
        self.config = config
        self.platform = platform
        self.caller_id = config.caller_id or f"{area_code}12345"
        self._zone = ZoneInfo(timezone)
        self.store = store
        self._tickets = tickets
        self._units = units
        self._calendar = calendar
        self._dialler = dialler
        self._inbound_waiting = inbound_waiting
        self.dnc = dnc
        self._comments = comments
        self._service_level = service_level  # the 15 s service level of the last 15 min (None: no call)
        self._clock = clock
        self._planner = JobPlanner(
            config=config, platform=platform, store=store, tickets=tickets, units=units, clock=clock
        )
        self._calls: set[asyncio.Task[None]] = set()
        self.held_by = ""  # why the last tick started nothing ("" : it could)

    def policy(self, kind: Kind) -> KindPolicy:
        return self.config.reminder if kind is Kind.REMINDER else self.config.visit

    def now(self) -> datetime:
        return self._clock()

    async def ticket(self, ticket_id: str) -> Ticket | None:
        return await self._tickets.get(ticket_id)

    def _now(self) -> float:
        return self._clock().timestamp()

    def _local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self._zone)

    # planning (outbound/planner.py)

    async def sweep(self) -> int:
        """Plan the jobs tickets call for (idempotent: an existing job is never made again); how many new."""
        return await self._planner.sweep()

    # dialling

    async def budget(self) -> ChannelBudget:
        return ChannelBudget(
            max_channels=self.config.max_channels,
            in_use=len(await self.store.active()),
            inbound_waiting=self._inbound_waiting(),
            paused=await self.store.paused(),
            service_level=self._service_level(),
            min_service_level=self.config.min_service_level,
        )

    async def tick(self) -> int:
        """Start the due tries the rules allow now; how many started."""
        await self._settle_stale()
        budget = await self.budget()
        self.held_by = budget.held_by or ("asterisk" if not self._dialler.connected else "")
        free = budget.free if self._dialler.connected else 0
        started = 0
        if free <= 0:
            return 0
        now = self._now()
        for due_id in await self.store.due(now, DUE_BATCH):
            if started >= free or self._inbound_waiting() > 0:  # a burst of inbound stops us at once
                break
            job = await self.store.get(due_id)
            if job is None or job.state is not JobState.QUEUED:
                continue
            if await self._start(job, now):
                started += 1
        return started

    async def _start(self, job: Job, now: float) -> bool:
        policy = self.policy(job.kind)
        if job.number in self.dnc:
            await self._cancel(job, Result.DNC, "the number is on the do-not-call list")
            return False
        if not await self._still_needed(job):
            await self._cancel(job, Result.NOT_NEEDED, "the ticket moved on")
            return False
        local = self._local(now)
        if not may_call(policy, self._calendar(), local):
            opening = next_opening(policy, self._calendar(), local)
            later = opening.timestamp() if opening is not None else now + 86_400
            await self.store.postpone(job.id, later)
            log.info("outbound.outside_hours", job=job.id, next_try=self._local(later).isoformat())
            return False
        claim = await self.store.claim(job, now, self.config.number_lock_s)
        if claim == ClaimOutcome.NUMBER_BUSY:
            await self.store.postpone(job.id, now + BUSY_NUMBER_RETRY_S)
            return False
        if claim != ClaimOutcome.CLAIMED:
            return False
        claimed = replace(job, state=JobState.DIALLING, tries=job.tries + 1, updated_at=now)
        task = asyncio.create_task(self._dial(claimed), name=f"outbound-{claimed.id}")
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return True

    async def _dial(self, job: Job) -> None:
        policy = self.policy(job.kind)
        masked = mask_number(job.number)
        await self._note(job, f"outbound {job.kind}: try {job.tries}/{policy.max_attempts} to {masked}")
        log.info("outbound.dialling", job=job.id, try_=job.tries, number=masked)
        outcome = await self._dialler.dial(job.id, channel_id(job), job.number, policy.ring_s, self.caller_id)
        log.info("outbound.dial_outcome", job=job.id, outcome=str(outcome))
        result = _DIAL_RESULTS.get(outcome)
        if result is not None:
            await self.finish(job.id, result, expected=(JobState.DIALLING,))
        # answered: the AGI settles the try; unknown: _settle_stale does, if nothing else does

    async def _still_needed(self, job: Job) -> bool:
        ticket = await self._tickets.get(job.ticket_id)
        if ticket is None:
            return False
        wanted = TicketState.DISPATCHED if job.kind is Kind.REMINDER else TicketState.RESOLVED
        return ticket.state is wanted

    async def _cancel(self, job: Job, result: Result, why: str) -> None:
        now = self._now()
        cancelled = replace(
            move(job, JobState.CANCELLED, now), last_result=str(result), history=(*job.history, f"{int(now)} {result}")
        )
        if await self.store.save(cancelled, (JobState.QUEUED,), counted=f"{job.kind}:{result}"):
            await self._note(job, f"outbound {job.kind} cancelled: {why}")

    # settling

    async def answered(self, job_id: str) -> Job | None:
        """The AGI has the call: dialling → answered (None: not ours to run any more)."""
        job = await self.store.get(job_id)
        if job is None or job.state is not JobState.DIALLING:
            return None
        moved = move(job, JobState.ANSWERED, self._now())
        return moved if await self.store.save(moved, (JobState.DIALLING,)) else None

    async def finish(
        self, job_id: str, result: Result, *, expected: tuple[JobState, ...], detail: str = ""
    ) -> Job | None:
        """One try ended with ``result``: the job done, failed or queued again; on the timeline."""
        job = await self.store.get(job_id)
        if job is None or job.state not in expected:
            return None
        policy = self.policy(job.kind)
        now = self._now()
        after = after_try(job, result, now, policy.max_attempts, policy.retry_after_s)
        if not await self.store.save(after, expected, counted=f"{job.kind}:{result}"):
            return None
        text = f"outbound {job.kind}: try {job.tries} to {mask_number(job.number)}: {result}"
        if detail:
            text += f" ({detail})"
        if after.state is JobState.QUEUED:
            text += f"; next try {self._local(after.due_at):%Y-%m-%d %H:%M}"
        elif after.state is JobState.FAILED and result not in FINAL_RESULTS:
            text += f"; no try left ({policy.max_attempts})"
        await self._note(job, text)
        log.info("outbound.try_ended", job=job.id, result=str(result), state=str(after.state))
        return after

    async def _settle_stale(self) -> None:
        """Tries with no word for too long (the AGI never came, the controller restarted)."""
        now = self._now()
        for active_id in await self.store.active():
            job = await self.store.get(active_id)
            if job is None:
                continue
            if now - job.updated_at > self.policy(job.kind).ring_s + MAX_CALL_S:
                await self.finish(job.id, Result.INTERRUPTED, expected=(JobState.DIALLING, JobState.ANSWERED))

    async def recover(self) -> int:
        """After a restart: the tries of the last run whose channel is gone are settled as
        interrupted (and retried per policy), never dialled again at once; a try whose call is
        still on is left to its AGI. How many were settled."""
        try:
            live = await self._dialler.live_channels()
        except Exception as exc:  # Asterisk away: the stale check settles them later
            log.warning("outbound.recover_unchecked", error=str(exc))
            return 0
        settled = 0
        for active_id in await self.store.active():
            job = await self.store.get(active_id)
            if job is None or channel_id(job) in live:
                continue
            if await self.finish(job.id, Result.INTERRUPTED, expected=(JobState.DIALLING, JobState.ANSWERED)):
                settled += 1
        return settled

    async def close(self) -> None:
        for task in list(self._calls):
            task.cancel()
        for task in list(self._calls):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # the ticket side of an answered call (outbound/agi.py)

    async def signed_by_phone(self, job: Job) -> bool:
        """Key 1 on a reminder: the ticket is signed for by the unit, by phone."""
        at = self._clock()
        note = f"signed for by phone (key 1) at {at.astimezone(self._zone):%Y-%m-%d %H:%M}, {mask_number(job.number)}"
        try:
            await self._tickets.transition(job.ticket_id, TicketState.SIGNED, at=at, actor=UNIT_ACTOR, note=note)
        except ValueError as exc:  # signed meanwhile by other means: nothing to do
            log.info("outbound.sign_refused", job=job.id, error=str(exc))
            return False
        return True

    async def visited(self, job: Job, visit: Visit) -> bool:
        note = f"回访 by phone: resolved={visit.resolved}, satisfaction={visit.satisfaction}"
        try:
            await self._tickets.record_visit(job.ticket_id, visit, actor=ACTOR, note=note)
        except ValueError as exc:
            log.info("outbound.visit_refused", job=job.id, error=str(exc))
            return False
        if visit.comment_recording and self._comments is not None:
            await self._transcribe_comment(self._comments, job, visit)
        return True

    async def _transcribe_comment(self, comments: CommentQueue, job: Job, visit: Visit) -> None:
        """The comment to the ASR workers, its transcript onto this case (never a new ticket)."""
        meta = VoicemailMeta(
            platform=self.platform, call_id=job.id, caller=job.number, recorded_at=visit.at, onto_ticket=job.ticket_id
        )
        try:
            await comments.enqueue(f"{COMMENTS_DIR}/{visit.comment_recording}", meta)
        except Exception as exc:  # the answers are saved; the recording stays named on the visit
            log.warning("outbound.comment_not_queued", job=job.id, error=str(exc) or type(exc).__name__)

    async def _note(self, job: Job, text: str) -> None:
        try:
            await self._tickets.add_note(job.ticket_id, at=self._clock(), actor=ACTOR, note=text)
        except Exception as exc:  # a note is never worth a call
            log.warning("outbound.note_failed", job=job.id, error=str(exc))

    # views (outbound/views.py)

    async def status(self) -> dict[str, object]:
        jobs = await self.store.jobs(10_000)
        return status_view(jobs, await self.budget(), platform=self.platform, enabled=self.config.enabled)

    async def metrics(self) -> list[Metric]:
        results = await self.store.results()
        return metrics_view(results, await self.budget(), platform=self.platform)
