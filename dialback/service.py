"""Seats call missed callers back: click-to-call from the desk, and blended offers.

The seat's phone rings first (dialback/telephony.py); when it answers, Asterisk dials the
citizen over the outbound trunk showing the platform's 12345 number and records the
conversation like an offer's (telephony/extensions_conf.py, ``hotline-dialback``). The call
record (direction outbound, the seat, the outcome) has the seat channel's uniqueid as its id,
so the call tracker ends it with that channel. A citizen who answered is served: the callback
list drops the number (calls/callbacks.py, from the ended record); one who did not keeps the
entry with one more try. The seat is ringing, then on a call, then in wrap-up, as for inbound.

Inbound first: no callback starts while an inbound caller waits in any queue; blended offers
(``acd.blended_callbacks``) go only to seats the ACD has nothing for, and stop as soon as a
caller waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

import structlog
from redis.exceptions import RedisError

from acd.model import OFFER_PREFIX, Offer, QueuedCall
from acd.seat import IllegalSeatTransition, SeatState
from acd.seats import SeatService, UnknownSeat
from acd.stats import service_level_holds
from calls.callbacks import Callback
from calls.model import CallOutcome
from calls.tracker import CallTracker
from common.clock import Clock
from common.metrics import Metric
from common.privacy import mask_number
from dialback.config import DialbackConfig
from dialback.model import DIALLABLE, Dialback, DialbackState, Refusal, due_for_blended, refusal, transition
from dialback.telephony import DialbackTelephony, UnsafeValue
from telephony.ami_types import AmiError, AmiLink, AmiMessage
from telephony.dialplan_names import DIALBACK_EVENT, HOTLINE_NUMBER

log = structlog.get_logger(__name__)

CALL_PREFIX = f"{OFFER_PREFIX}cb-"  # the seat channel's uniqueid and the record's id
BLENDED_SCAN = 50  # listed numbers looked at for a blended offer


class DialbackRefused(Exception):
    def __init__(self, refused: Refusal) -> None:
        super().__init__(refused.reason)
        self.refusal = refused


class Acd(Protocol):
    """What the ACD engine tells and is told (acd/engine.py)."""

    def waiting(self, queue: str | None = None) -> list[QueuedCall]: ...

    def offers(self) -> list[Offer]: ...

    async def own_call_ended(self, seat_id: str, record_id: str, answered_at: float) -> None: ...


class Entries(Protocol):
    """The callback list (calls/callbacks.py)."""

    async def pending(self, limit: int) -> list[Callback]: ...

    async def note_try(self, caller: str, at: datetime, result: str) -> bool: ...


class Events(Protocol):
    async def publish(self, kind: str, at: datetime, **fields: object) -> None: ...


def inbound_waiting(acd: Acd) -> int:
    """Callers waiting now (not the callbacks that keep a caller's place)."""
    return sum(1 for call in acd.waiting() if not call.is_callback)


class DialbackService:
    def __init__(
        self,
        *,
        config: DialbackConfig,
        blended: bool,
        seat_ring_s: float,
        ami: AmiLink,
        acd: Acd,
        seats: SeatService,
        tracker: CallTracker,
        entries: Entries,
        events: Events,
        clock: Clock,
        recordings_dir: Path | None,
        area_code: str,
        trunk_ready: bool = True,
        service_level: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._config = config
        self._service_level = service_level  # the 15 s service level of the last 15 min (None: no call)
        self._trunk_ready = trunk_ready  # the outbound trunk is configured (sip.trunks)
        self.blended = blended
        self._asterisk = DialbackTelephony(ami, seat_ring_s, config.trunk, config.dial_timeout_s)
        self._acd = acd
        self._seats = seats
        self._tracker = tracker
        self._entries = entries
        self._events = events
        self._clock = clock
        self._recordings_dir = recordings_dir
        self.shown_number = f"{area_code}{HOTLINE_NUMBER}"  # what the citizen's phone shows
        self._calls: dict[str, Dialback] = {}  # call id → the callback in progress
        self._reserved: set[str] = set()  # seats being set up for a callback (before it is in _calls)
        self._reserved_numbers: set[str] = set()  # and their numbers: two clicks at once call once
        self._wake = asyncio.Event()
        self.started_total = 0
        self.reached_total = 0
        ami.on_event("OriginateResponse", self._on_originate_response)
        ami.on_event("UserEvent", self._on_user_event)
        ami.on_event("Hangup", self._on_hangup)
        seats.on_change(self._on_seat_change)

    def metrics(self) -> list[Metric]:
        return [
            Metric(
                "hotline_dialback_started_total",
                "counter",
                "Seats' callbacks started (their phone rang)",
                self.started_total,
            ),
            Metric(
                "hotline_dialback_reached_total", "counter", "Seats' callbacks the citizen answered", self.reached_total
            ),
            Metric(
                "hotline_dialback_in_progress", "gauge", "Seats' callbacks ringing or talking now", len(self._calls)
            ),
        ]

    # what the API asks

    def in_progress(self) -> list[Dialback]:
        return list(self._calls.values())

    def inbound_waiting(self) -> int:
        return inbound_waiting(self._acd)

    def service_level(self) -> float | None:
        return self._service_level()

    def held_by(self) -> str:
        """Inbound first: why no callback may start now ("" : one may)."""
        if self._acd.waiting():
            return "inbound_waiting"
        if not service_level_holds(self._service_level(), self._config.min_service_level):
            return "service_level"
        return ""

    async def entries(self, limit: int) -> list[Callback]:
        return await self._entries.pending(limit)

    async def entry(self, entry_id: str) -> Callback | None:
        """A listed number by its entry id (the id of the last call it missed: no number in it)."""
        return next((e for e in await self._entries.pending(1000) if e.last_call_id == entry_id), None)

    def numbers_in_progress(self) -> set[str]:
        return {call.number for call in self._calls.values()} | self._reserved_numbers

    async def call_back(self, seat_id: str, number: str, *, blended: bool = False, origin: str = "") -> Dialback:
        """Ring ``seat_id``'s phone to call ``number`` back; DialbackRefused says why not.
        ``origin`` (an entry or ticket id) goes on the record."""
        seat = self._seats.get(seat_id)  # UnknownSeat for a seat not configured
        busy = self._reserved | {c.seat_id for c in self._calls.values()}
        refused = refusal(
            seat=seat, inbound_waiting=self.inbound_waiting(), number=number,
            numbers_in_progress=self.numbers_in_progress(), seats_in_progress=busy, connected=self._asterisk.connected,
            service_level=self._service_level(), min_service_level=self._config.min_service_level,
        )  # fmt: skip
        if refused is None and not self._trunk_ready:
            refused = Refusal(503, f"no outbound trunk {self._config.trunk!r} in sip.trunks: nobody can be called")
        if refused is not None:
            raise DialbackRefused(refused)
        # no await between the check and these: a second click meanwhile sees both taken
        self._reserved.add(seat_id)
        self._reserved_numbers.add(number)
        try:
            return await self._start(seat_id, number, blended, origin)
        finally:
            self._reserved.discard(seat_id)
            self._reserved_numbers.discard(number)

    async def _start(self, seat_id: str, number: str, blended: bool, origin: str) -> Dialback:
        try:
            if self._seats.get(seat_id).state is not SeatState.READY:
                await self._seats.ready(seat_id)  # paused or in wrap-up: the seat chose to call
            await self._seats.offered(seat_id)  # ringing: the ACD offers it nothing now
        except (IllegalSeatTransition, UnknownSeat) as exc:  # e.g. the ACD rang it meanwhile
            raise DialbackRefused(Refusal(409, f"the seat cannot call now: {exc}")) from None
        call = Dialback(f"{CALL_PREFIX}{uuid.uuid4().hex}", seat_id, number, blended, self._clock().timestamp())
        self._calls[call.call_id] = call
        recording = await self._record(call, origin)
        masked = mask_number(number)
        log.info("dialback.ringing_seat", call_id=call.call_id, seat=seat_id, number=masked, blended=blended)
        await self._events.publish(
            "callback.offered", self._clock(), seat=seat_id, call_id=call.call_id, caller=masked, blended=blended
        )
        # the seat's screen pop (cases/seat_events.py): the citizen's history, a case for this call
        await self._events.publish("acd.offered", self._clock(), call_id=call.call_id, seat=seat_id, queue="callback")
        try:
            await self._asterisk.ring_seat(call.call_id, seat_id, number, recording)
        except (AmiError, UnsafeValue) as exc:
            log.warning("dialback.not_started", call_id=call.call_id, seat=seat_id, error=str(exc))
            await self._end(call, "not_started", seat_missed=False)
            raise DialbackRefused(Refusal(503, f"the call could not be placed: {exc}")) from None
        self.started_total += 1
        return call

    async def _record(self, call: Dialback, origin: str) -> Path | None:
        """The call record: outbound, the seat, the citizen as ``caller``; not reached until told."""
        await self._tracker.channel_created(call.call_id, f"PJSIP/{call.seat_id}", call.number, "", self.shown_number)
        tags = {"dialback": "blended" if call.blended else "desk"}
        if origin:
            tags["dialback_for"] = origin
        await self._tracker.amend(
            call.call_id,
            {"direction": "outbound", "seat": call.seat_id, "outcome": CallOutcome.NOT_REACHED, "tags": tags},
        )
        if self._recordings_dir is None:
            return None
        self._recordings_dir.mkdir(parents=True, exist_ok=True)
        path = self._recordings_dir / f"{call.call_id}.wav"
        await self._tracker.amend(call.call_id, {"call_recording": f"{self._recordings_dir.name}/{path.name}"})
        return path

    # Asterisk's events

    async def _on_originate_response(self, event: AmiMessage) -> None:
        call = self._calls.get(event.get("uniqueid"))
        if call is None or call.state is not DialbackState.SEAT_RINGING:
            return
        if event.get("response").lower() == "success":  # the seat answered: Asterisk dials the citizen
            self._calls[call.call_id] = transition(call, DialbackState.TALKING, answered_at=self._clock().timestamp())
            await self._seats.answered(call.seat_id)
            await self._events.publish("acd.connected", self._clock(), call_id=call.call_id, seat=call.seat_id)
            return
        await self._end(call, f"seat_not_answered (reason {event.get('reason') or '?'})", seat_missed=call.blended)

    async def _on_user_event(self, event: AmiMessage) -> None:
        """The h extension of the seat channel: how the citizen's leg went (before its Hangup)."""
        if event.get("userevent") != DIALBACK_EVENT:
            return
        call_id = event.get("id")
        if not call_id.startswith(CALL_PREFIX):
            return
        status = event.get("status").upper()
        talk = event.get("talk")
        reached = status == "ANSWER"
        # also for a call a previous run started (its record was adopted): the outcome is right
        await self._tracker.amend(
            call_id,
            {
                "outcome": CallOutcome.ANSWERED if reached else CallOutcome.NOT_REACHED,
                "tags": {"dial_status": status.lower() or "none", "talk_s": talk if talk.isdigit() else "0"},
            },
        )
        call = self._calls.get(call_id)
        if call is not None:
            self._calls[call_id] = replace_status(call, status, int(talk) if talk.isdigit() else 0)

    async def _on_hangup(self, event: AmiMessage) -> None:
        call = self._calls.get(event.get("uniqueid"))
        if call is None or call.state is not DialbackState.TALKING:
            return  # ringing: its OriginateResponse settles it
        await self._end(call, call.dial_status.lower() or "none", seat_missed=False)

    async def _end(self, call: Dialback, result: str, *, seat_missed: bool) -> None:
        self._calls.pop(call.call_id, None)
        ended = transition(call, DialbackState.ENDED)
        now = self._clock()
        if call.state is DialbackState.TALKING:
            await self._acd.own_call_ended(call.seat_id, call.call_id, call.answered_at)
        elif seat_missed:
            await self._seats.missed(call.seat_id, "callback offer not answered")
        else:
            await self._seats.released(call.seat_id, "callback ended before the seat answered")
        # the tracker ended it with the seat channel; a channel never made is ended here
        await self._tracker.hung_up(call.call_id, result)
        if ended.reached:
            self.reached_total += 1
        elif call.state is DialbackState.TALKING:  # the citizen was dialled and did not answer
            with contextlib.suppress(RedisError):
                await self._entries.note_try(call.number, now, result)
        log.info("dialback.ended", call_id=call.call_id, seat=call.seat_id, result=result, reached=ended.reached)
        await self._events.publish(
            "callback.ended", now, seat=call.seat_id, call_id=call.call_id, result=result, reached=ended.reached
        )
        self._wake.set()

    # blended offers

    async def _on_seat_change(self, seat: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        """A task of the controller: offer callbacks to idle seats (``acd.blended_callbacks``)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.blended_poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.offer_blended()
            except Exception:  # Redis away, …: tried again at the next poll
                log.exception("dialback.blended_failed")

    async def offer_blended(self) -> list[Dialback]:
        """Offer the next listed numbers to idle seats, while nobody waits in any queue and the
        15 s service level holds."""
        if not self.blended or not self._trunk_ready or not self._asterisk.connected or self.held_by():
            return []
        busy = {o.seat_id for o in self._acd.offers()} | self._reserved | {c.seat_id for c in self._calls.values()}
        idle = [s.seat_id for s in self._seats.all() if s.state is SeatState.READY and s.seat_id not in busy]
        if not idle:
            return []
        now = self._clock()
        in_progress = self.numbers_in_progress()
        due = [
            e
            for e in await self._entries.pending(BLENDED_SCAN)
            if e.caller not in in_progress
            and DIALLABLE.fullmatch(e.caller)
            and due_for_blended(e.tries, e.last_try_at, now, self._config.max_tries, self._config.retry_after_s)
        ]
        return await self._offer(idle, due)

    async def _offer(self, idle: Sequence[str], due: Sequence[Callback]) -> list[Dialback]:
        started = []
        for seat_id, entry in zip(idle, due, strict=False):
            if self.held_by():  # a caller came meanwhile (or the level fell): inbound first, no new offer
                break
            try:
                started.append(await self.call_back(seat_id, entry.caller, blended=True, origin=entry.last_call_id))
            except DialbackRefused as exc:
                log.info("dialback.blended_skipped", seat=seat_id, reason=str(exc))
        return started


def replace_status(call: Dialback, status: str, talk_s: int) -> Dialback:
    return replace(call, dial_status=status, talk_s=talk_s)
