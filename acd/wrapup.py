"""After a seat's call: wrap-up, the disposition, callbacks' results, and how long calls take.

When the seat's call ends it goes to wrap-up. Without ``acd.require_disposition`` wrap-up lasts
``acd.wrapup_s`` and the seat is ready again. With it, the seat is not offered the next call
until it gives the disposition of the call it had (acd/seats.py ``dispose``); if that takes
longer than ``acd.max_wrapup_s`` the seat is set not ready (reason "no disposition") rather
than ready: a seat that left its desk mid wrap-up would otherwise ring unanswered while
callers wait (and miss offers). Giving the disposition makes it ready again. The disposition
goes on the call's record (tag ``disposition``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import structlog

from acd.config import AcdConfig
from acd.events import EventBus
from acd.model import CALLBACK_PREFIX, MissedCalls, Offer, QueuedCall
from acd.seat import Seat, SeatState
from acd.seats import SeatService
from calls.model import CallChanges, CallOutcome
from calls.tracker import CallTracker
from common.clock import Clock

log = structlog.get_logger(__name__)

DEFAULT_HANDLE_S = 180.0  # until calls are measured: a typical 12345 call with wrap-up
_HANDLE_WEIGHT = 0.2  # exponential average of handle time

Later = Callable[[float, Callable[[], None]], None]
Spawn = Callable[[Coroutine[Any, Any, None]], None]


class AfterCall:
    """Wrap-up timers, dispositions onto records, the records of calls that did not happen after
    all, callbacks' results, and the average handle time."""

    def __init__(
        self,
        *,
        config: AcdConfig,
        seats: SeatService,
        tracker: CallTracker,
        events: EventBus,
        clock: Clock,
        later: Later,
        spawn: Spawn,
        missed_calls: MissedCalls | None = None,
    ) -> None:
        self._config = config
        self._seats = seats
        self._tracker = tracker
        self._events = events
        self._clock = clock
        self._later = later
        self._spawn = spawn
        self.handle_time_s = DEFAULT_HANDLE_S
        self._missed_calls = missed_calls
        self.callbacks_dialled: dict[str, QueuedCall] = {}  # offer id → the callback it dials
        seats.on_disposition(self._on_disposition)

    async def call_ended(self, offer: Offer, now: float) -> None:
        """The seat's call (``offer``, bound to a caller) ended."""
        if offer.bound_at:
            handled = now - offer.bound_at + self._config.wrapup_s
            self.handle_time_s += _HANDLE_WEIGHT * (handled - self.handle_time_s)
        bound = offer.bound or ""
        record_id = "" if offer.adopted else bound.removeprefix(CALLBACK_PREFIX)
        due = self._config.require_disposition and bool(record_id)
        ended = await self._seats.call_ended(
            offer.seat_id, wrap_up=self._config.wrapup_s > 0, call_id=record_id, disposition_due=due
        )
        if ended.state is SeatState.WRAP_UP:
            self._time(ended)

    def _time(self, seat: Seat) -> None:
        """End this wrap-up in time: ``wrapup_s``, or ``max_wrapup_s`` while a disposition is due."""
        limit_s = self._config.max_wrapup_s if seat.disposition_due else self._config.wrapup_s
        elapsed_s = (self._clock() - seat.since).total_seconds() if seat.since else 0.0
        self._later(max(limit_s - elapsed_s, 0.0), lambda: self._over(seat.seat_id, seat.since))

    def _over(self, seat_id: str, since: datetime | None) -> None:
        async def over() -> None:
            if self._seats.get(seat_id).since == since:  # not a later wrap-up (ready, call, wrap-up since)
                await self._seats.wrap_up_over(seat_id)

        self._spawn(over())

    def resynced(self) -> None:
        """After a restart: wrap-ups still waiting for a disposition are timed again."""
        for seat in self._seats.all():
            if seat.state is SeatState.WRAP_UP and seat.disposition_due:
                self._time(seat)

    async def _on_disposition(self, seat: Seat, call_id: str, code: str) -> None:
        # the record is Redis's by now (the call ended): amended there, in the background
        await self._tracker.amend_stored(call_id, {"tags": {"disposition": code}})
        await self._events.publish("seat.disposition", self._clock(), seat=seat.seat_id, call_id=call_id, code=code)

    async def callback_finished(self, offer_id: str, dial_status: str) -> None:
        """The seat's call to a caller who asked for a callback ended (Asterisk's DIALSTATUS).
        Not reached: the number goes on the missed-call list for a person to try again."""
        call = self.callbacks_dialled.pop(offer_id, None)
        if call is None:
            return
        reached = dial_status == "ANSWER"
        changes: CallChanges = {"tags": {"callback": "answered" if reached else dial_status.lower() or "failed"}}
        if reached:
            changes["seat_answered_at"] = self._clock()
        # the record may be only in Redis (the caller hung up long ago): amended in the background,
        # and a callback that did not reach the caller goes on the missed-call list after that
        then = self._missed_calls.add_missed if not reached and self._missed_calls is not None else None
        await self._tracker.amend_stored(call.origin_call_id, changes, then=then)
        log.info("acd.callback_finished", call_id=call.origin_call_id, status=dial_status)
        await self._events.publish(
            "acd.callback", self._clock(), call_id=call.origin_call_id, status=dial_status.lower()
        )

    async def bridge_failed(self, call_id: str) -> None:
        """The seat asks again: the caller bound to it left before the bridge (a hang-up in the
        same instant). That call was not answered after all: correct its record."""
        if call_id.startswith(CALLBACK_PREFIX) or self._tracker.get_live(call_id) is not None:
            return  # a callback, or a caller still here (moved on by a transfer): nothing to undo
        log.info("acd.left_at_bridge", call_id=call_id)
        await self._tracker.amend_stored(
            call_id,
            {
                "outcome": CallOutcome.ABANDONED,
                "seat": "",
                "seat_answered_at": None,
                "tags": {"queue_status": "left_at_bridge"},
            },
            then=self._missed_calls.add_missed if self._missed_calls is not None else None,
        )
