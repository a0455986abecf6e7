"""The ACD engine: seat-first offers with late binding, on a real Asterisk (replaces app_queue).

A caller the IVR queues waits in Asterisk's hold context (music, max wait as Asterisk's own
timer). The engine rings an idle eligible seat for the best caller not yet covered by an offer
(an async ``Originate`` into the offer context). The seat is bound to a caller only when its
phone answers — the best eligible caller still waiting at that moment (acd/router.py) — and
Asterisk bridges the two. So a caller who leaves during the ring wastes no seat: the ringing
offer is re-pointed to another caller, or withdrawn (the phone stops ringing).

State that must survive the controller (waiting callers) is in Redis and checked against
Asterisk's channels after every AMI (re)connect; seats ringing or talking are found again
from their offer channels (uniqueid ``offer-…``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import redis.asyncio as aioredis
import structlog

from acd.config import AcdConfig
from acd.distribution import Distribution
from acd.events import EventBus
from acd.model import (
    CALLBACK_PREFIX,
    OFFER_PREFIX,
    Binding,
    MissedCalls,
    Offer,
    QueuedCall,
    QueuePosition,
)
from acd.ringing import OFFER_RETRY_S, ORIGINATE_GRACE_S, SEAT_REASONS, Ringing
from acd.seat import Seat, SeatState
from acd.seats import AT_WORK, SeatService
from acd.telephony import AcdTelephony
from acd.waiting import WaitingCallers
from acd.wrapup import DEFAULT_HANDLE_S, AfterCall
from calls.model import CallChanges, CallOutcome
from calls.redis_budget import RedisBudget
from calls.tracker import CallTracker
from common.aio import cancel_and_wait
from common.clock import Clock
from telephony.ami_types import AmiActionFailed, AmiError, AmiLink, AmiMessage
from telephony.dialplan_names import HOLD_CONTEXT

log = structlog.get_logger(__name__)

# the offers (acd/ringing.py) and after-call work (acd/wrapup.py) are their own modules
__all__ = ["DEFAULT_HANDLE_S", "OFFER_RETRY_S", "ORIGINATE_GRACE_S", "SEAT_REASONS", "AcdEngine"]
_MAY_ANSWER = (SeatState.READY, SeatState.RINGING, SeatState.ON_CALL)  # seat states bind() may connect
_ENDED_OFFERS_KEPT = 4096  # a bind() later than its channel's Hangup comes within moments


class AcdEngine:
    """Distributes waiting callers to seats. ``start()``, ``enqueue()``…, ``close()``."""

    def __init__(
        self,
        *,
        config: AcdConfig,
        seats: SeatService,
        ami: AmiLink,
        client: aioredis.Redis,
        tracker: CallTracker,
        events: EventBus,
        clock: Clock,
        recordings_dir: Path | None,
        platform: str,
        missed_calls: MissedCalls | None = None,
        budget: RedisBudget | None = None,
        offer_retry_s: float = OFFER_RETRY_S,
        originate_grace_s: float = ORIGINATE_GRACE_S,
        reference_dispatch: bool = False,  # the plain scan-and-sort path (tests and benches compare)
    ) -> None:
        self._config = config
        self._seats = seats
        self._asterisk = AcdTelephony(ami, config.ring_timeout_s)
        self._tracker = tracker
        self._events = events
        self._clock = clock
        self._recordings_dir = recordings_dir
        self._waiting = WaitingCallers(client, platform, budget)
        # callers being put back in line (``_not_bridged``) → whether their Hangup came meanwhile
        self._requeuing: dict[str, bool] = {}
        # offers whose channel this run saw end (oldest first, at most _ENDED_OFFERS_KEPT): the
        # seat AGI's bind() may come after the Hangup (another socket), and must not adopt one
        self._ended_offers: dict[str, None] = {}
        self._kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._ringing = Ringing(
            seats=seats, asterisk=self._asterisk, events=events, clock=clock, later=self._later, spawn=self._spawn,
            kick=self.kick, ring_timeout_s=config.ring_timeout_s, offer_retry_s=offer_retry_s,
            originate_grace_s=originate_grace_s,
        )  # fmt: skip
        self._offers = self._ringing.offers  # offer id → Offer: rung here, bound and ended below
        self._distribution = Distribution(
            config=config, seats=seats, ringing=self._ringing, waiting=self._waiting, asterisk=self._asterisk,
            clock=clock, kick=self.kick, reference=reference_dispatch,
        )  # fmt: skip
        self._after = AfterCall(
            config=config, seats=seats, tracker=tracker, events=events, clock=clock, later=self._later,
            spawn=self._spawn, missed_calls=missed_calls,
        )  # fmt: skip
        ami.on_event("OriginateResponse", self._ringing.on_originate_response)
        ami.on_event("Newchannel", self._ringing.on_new_channel)
        ami.on_event("Hangup", self._on_hangup)
        ami.on_event("BridgeEnter", self._ringing.on_bridge_enter)
        ami.on_connected(self.resync)
        seats.on_change(self._on_seat_change)

    def _now(self) -> float:
        return self._clock().timestamp()

    # figures (hotline/figures.py)

    @property
    def handle_time_s(self) -> float:
        return self._after.handle_time_s

    @handle_time_s.setter
    def handle_time_s(self, value: float) -> None:
        self._after.handle_time_s = value

    @property
    def offers_total(self) -> int:
        return self._ringing.offers_total

    @property
    def offers_missed(self) -> int:
        return self._ringing.offers_missed

    @property
    def offers_not_started(self) -> int:
        return self._ringing.offers_not_started

    @property
    def offers_unconfirmed(self) -> int:
        return self._ringing.offers_unconfirmed

    # lifecycle

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._dispatch_loop(), name="acd-dispatch"))

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        await cancel_and_wait(self._tasks)

    def kick(self) -> None:
        """Something changed (a caller came, a seat is free): look for offers to make now."""
        self._kick.set()

    def _later(self, delay_s: float, callback: Callable[[], None]) -> None:
        def fire() -> None:
            self._timers.discard(timer)
            callback()

        timer = asyncio.get_running_loop().call_later(delay_s, fire)
        self._timers.add(timer)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    # what the IVR and the API ask

    async def enqueue(self, call: QueuedCall) -> None:
        """A caller starts waiting (the IVR's queue node, just before the caller goes on hold)."""
        self._add(call)
        self._waiting.save(call)
        await self._events.publish(
            "acd.queued", self._clock(), call_id=call.call_id, queue=call.queue, priority=call.priority
        )
        self.kick()

    def _add(self, call: QueuedCall) -> None:
        # relaxation may open seats to a caller with skills (also to callers found by resync)
        if self._waiting.add(call) and call.skills:
            due_s = call.entered_at + self._config.relax_skills_after_s - self._now()
            self._later(max(due_s, 0.0) + 0.05, self.kick)

    async def leave(self, call_id: str, reason: str) -> QueuedCall | None:
        """A caller stops waiting without a seat (hung up, max wait)."""
        call = self._waiting.take(call_id)
        self._waiting.forget(call_id)
        if call is not None:
            log.info("acd.left", call_id=call_id, reason=reason, waited_s=round(self._now() - call.entered_at, 1))
            await self._events.publish("acd.left", self._clock(), call_id=call_id, queue=call.queue, reason=reason)
            await self._distribution.rebalance()
        return call

    def waiting(self, queue: str | None = None) -> list[QueuedCall]:
        return self._waiting.ordered(queue)

    def position(self, call_id: str) -> QueuePosition | None:
        """Where a caller stands in its queue now (callers who left no longer count)."""
        call = self._waiting.get(call_id)
        if call is None:
            return None
        ahead = self._waiting.ahead_of(call)
        serving = self._seats.serving_by_scan if self._distribution.reference else self._seats.serving
        expected = (ahead + 1) * self.handle_time_s / max(serving(call.queue), 1)
        return QueuePosition(position=ahead + 1, expected_wait_s=expected)

    def staffed(self, queue: str) -> bool:
        """Whether any seat of the queue is at work (ready, ringing, talking or in wrap-up).
        A queue nobody staffs sends callers on at once rather than playing music for nothing."""
        if self._distribution.reference:
            return self._seats.staffed_by_scan(queue)
        return self._seats.staffed(queue)

    async def _release_unstaffed(self) -> None:
        """The last seat of a queue paused or left: its waiting callers go to their overflow
        node now (max wait is cut short; Asterisk's T extension runs the overflow). Only the
        queues somebody waits in are looked at (``reference``: every caller)."""
        if self._distribution.reference:
            config = self._seats.config
            staffed = {q for seat in self._seats.all() if seat.state in AT_WORK for q in config[seat.seat_id].queues}
            released = [c for c in self.waiting() if not c.is_callback and c.queue not in staffed]
        else:
            unstaffed = [queue for queue in self._waiting.queues() if not self.staffed(queue)]
            released = [c for c in self._waiting.in_order(unstaffed) if not c.is_callback] if unstaffed else []
        for call in released:  # a callback waits for a seat however long it takes
            log.info("acd.queue_unstaffed", call_id=call.call_id, queue=call.queue)
            try:
                await self._asterisk.end_wait_now(call.channel, "leaveempty")
            except AmiError as exc:
                log.warning("acd.release_failed", call_id=call.call_id, error=str(exc))

    def offers(self) -> list[Offer]:
        return list(self._offers.values())

    # distribution (acd/distribution.py)

    async def _dispatch_loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            try:
                await self._distribution.dispatch()
            except Exception:
                log.exception("acd.dispatch_failed")

    # the seat's phone answered: late binding

    async def bind(self, offer_id: str, seat_id: str) -> Binding | None:
        """The best eligible caller still waiting, for the seat that just answered; None
        releases the seat (nobody left it may take)."""
        offer = self._offers.get(offer_id)
        if offer is None and offer_id in self._ended_offers:  # its Hangup came first: nobody to talk to
            log.info("acd.bind_after_hangup", seat=seat_id, offer=offer_id)
            return None
        if offer is None:  # rung by a controller that died since, or forgotten: adopt it
            offer = Offer(offer_id, seat_id, None, self._now())
            self._offers[offer_id] = offer
        config = self._seats.config.get(seat_id)
        if config is None:
            log.error("acd.bind_unknown_seat", seat=seat_id)
            return None
        if offer.bound is not None and not offer.adopted:
            await self._not_bridged(offer)
            if offer_id in self._ended_offers:  # the seat's channel ended meanwhile: its offer is over
                log.info("acd.bind_after_hangup", seat=seat_id, offer=offer_id)
                return None
        now = self._now()
        # withdrawn: its channel is being hung up; paused or logged out while ringing: may not talk
        may_bind = not offer.withdrawn and self._seats.get(seat_id).state in _MAY_ANSWER
        best = self._waiting.best_for(
            frozenset(config.queues), frozenset(config.skills), now, self._config.relax_skills_after_s
        )
        call = self._waiting.take(best.call_id) if best is not None and may_bind else None
        if call is None:
            self._offers.pop(offer_id, None)
            await self._seats.released(seat_id, "no caller left")
            log.info("acd.nobody_to_bind", seat=seat_id, offer=offer_id)
            self.kick()
            return None
        self._offers.bind(offer, call.call_id, now)
        offer.call = call
        await self._seats.answered(seat_id)  # first: its state changes before any await yields
        self._waiting.forget(call.call_id)
        record_id = call.origin_call_id if call.is_callback else call.call_id
        recording = ""
        changes: CallChanges = {"seat": seat_id}
        if self._recordings_dir is not None:
            recording = str(self._recordings_dir / f"{_safe(record_id)}.wav")
            self._recordings_dir.mkdir(parents=True, exist_ok=True)
            changes["call_recording"] = f"{self._recordings_dir.name}/{Path(recording).name}"
        if call.is_callback:
            self._after.callbacks_dialled[offer_id] = call
            await self._tracker.amend_stored(record_id, {**changes, "tags": {"callback": "dialling"}})
        else:
            await self._clear_max_wait(call)
            await self._tracker.amend(
                record_id, {**changes, "seat_answered_at": self._clock(), "outcome": CallOutcome.ANSWERED}
            )
        waited = round(now - call.entered_at, 3)
        log.info("acd.connected", seat=seat_id, call_id=call.call_id, waited_s=waited)
        await self._events.publish("acd.connected", self._clock(), call_id=call.call_id, seat=seat_id, waited_s=waited)
        await self._distribution.rebalance()
        self.kick()
        if call.is_callback:
            return Binding(call.call_id, "", recording, dial=f"PJSIP/{call.caller}@{call.callback_trunk}")
        return Binding(call.call_id, call.channel, recording)

    async def callback_finished(self, offer_id: str, dial_status: str) -> None:
        """The seat's call to a caller who asked for a callback ended (Asterisk's DIALSTATUS)."""
        await self._after.callback_finished(offer_id, dial_status)

    async def own_call_ended(self, seat_id: str, record_id: str, answered_at: float) -> None:
        """A call the seat placed itself (dialback/: a callback) ended: wrap-up as after a queue call."""
        offer = Offer(record_id, seat_id, None, answered_at, bound=record_id, bound_at=answered_at)
        await self._after.call_ended(offer, self._now())

    async def _not_bridged(self, offer: Offer) -> None:
        """The seat's Bridge() failed, or its channel ended, before it had the caller bound to
        it. A caller still waiting in the hold context goes back in line at its own place
        (``_requeue``); one who left has its record put right (``_left_at_bridge``)."""
        call, offer.call = offer.call, None  # asking again binds anew: requeued at most once
        if call is None or call.is_callback:
            if offer.bound is not None:
                await self._after.bridge_failed(offer.bound)
            return
        # the caller's Hangup may be handled while this awaits Asterisk (bind() runs in the seat
        # AGI's task, beside the AMI event dispatcher): it is in neither the waiting list nor the
        # offers then, so _on_hangup notes it here, and the caller is not put back as a ghost
        self._requeuing[call.call_id] = False
        where: Literal["holding", "requeued", "elsewhere", "gone"]
        try:
            where = await self._holding(call)
            if where == "holding":
                where = await self._requeue(call, offer.seat_id)
        finally:
            hung_up = self._requeuing.pop(call.call_id, False)
        if where == "requeued":
            return
        await self._left_at_bridge(call.call_id, gone=hung_up or where == "gone")

    async def _left_at_bridge(self, call_id: str, *, gone: bool) -> None:
        """The caller bound to a seat never reached it: its record must not say answered. An
        ended record is put right at once (``AfterCall.bridge_failed``, which leaves a caller
        still here alone: e.g. moved on by max wait's overflow); the live record of a caller
        known ``gone`` (its Hangup not handled yet: one event dispatcher, behind the seat's)
        loses its seat now, and its end says abandoned."""
        if not gone or self._tracker.get_live(call_id) is None:
            await self._after.bridge_failed(call_id)
            return
        log.info("acd.left_at_bridge", call_id=call_id)
        changes: CallChanges = {"seat": "", "seat_answered_at": None, "outcome": None}
        await self._tracker.amend(call_id, {**changes, "tags": {"queue_status": "left_at_bridge"}})

    async def _holding(self, call: QueuedCall) -> Literal["holding", "elsewhere", "gone"]:
        """Whether the caller's channel still waits in the hold context (its ``s`` extension) and
        in no seat's bridge, is elsewhere (or unknown), or gone."""
        try:
            channels = await self._asterisk.channels()
        except AmiError as exc:
            log.warning("acd.requeue_unknown", call_id=call.call_id, error=str(exc))
            return "elsewhere"  # the hold context's bound wait ends at the overflow node
        found = channels.get(call.call_id)
        if found is None:
            return "gone"
        if found.get("context") != HOLD_CONTEXT or found.get("exten") != "s":
            return "elsewhere"  # e.g. the T extension: max wait ran out meanwhile, on its overflow path
        return "elsewhere" if found.get("bridgeid") in _seat_bridges(channels) else "holding"

    async def _requeue(self, call: QueuedCall, seat_id: str) -> Literal["requeued", "elsewhere", "gone"]:
        """Back in line, at its place (same arrival time), with its remaining max wait; its
        record no longer says answered. SEATED is cleared in Asterisk before the caller can
        be bound again, so a later binding's SEATED=1 always comes after it. Not when the
        caller is gone meanwhile (or Asterisk did not answer: "elsewhere", nothing known)."""
        left_s = call.entered_at + call.max_wait_s - self._now() if call.max_wait_s else 0.0
        try:
            await self._asterisk.unseated(call.channel, max(left_s, 1.0) if call.max_wait_s else 0.0)
        except AmiActionFailed as exc:  # no such channel: gone in the meantime
            log.info("acd.requeue_failed", call_id=call.call_id, error=str(exc))
            return "gone"
        except AmiError as exc:
            log.warning("acd.requeue_failed", call_id=call.call_id, error=str(exc))
            return "elsewhere"
        # from here on its Hangup finds it in the waiting list (no await before _add)
        if self._requeuing.pop(call.call_id, False):  # its Hangup came while the Setvars were answered
            log.info("acd.requeue_failed", call_id=call.call_id, error="hung up")
            return "gone"
        self._add(call)
        self._waiting.save(call)
        changes: CallChanges = {"seat": "", "seat_answered_at": None, "outcome": None, "call_recording": ""}
        await self._tracker.amend(call.call_id, {**changes, "tags": {"requeued_from": seat_id}})
        log.info("acd.requeued", call_id=call.call_id, seat=seat_id)
        await self._events.publish("acd.requeued", self._clock(), call_id=call.call_id, seat=seat_id)
        self.kick()
        return "requeued"

    async def _clear_max_wait(self, call: QueuedCall) -> None:
        """Max wait is over once a seat has the caller: the call must not be cut mid-talk."""
        try:
            await self._asterisk.seated(call.channel)
        except AmiError as exc:
            log.warning("acd.max_wait_not_cleared", call_id=call.call_id, error=str(exc))

    # Asterisk's events

    async def _on_hangup(self, event: AmiMessage) -> None:
        uniqueid = event.get("uniqueid")
        if uniqueid in self._requeuing:  # being put back in line (_not_bridged): not any more
            self._requeuing[uniqueid] = True
            return
        if uniqueid in self._waiting:
            await self.leave(uniqueid, "caller hung up")
            return
        offer = self._offers.get(uniqueid)
        if offer is None:
            return
        self._ended_offers[uniqueid] = None
        if len(self._ended_offers) > _ENDED_OFFERS_KEPT:
            del self._ended_offers[next(iter(self._ended_offers))]
        if offer.bound is None:
            if offer.adopted or offer.answered:  # no OriginateResponse will come for it now
                self._offers.pop(uniqueid, None)
                await self._seats.released(offer.seat_id, "offer ended without a caller")
            return  # an unanswered offer of ours ends with its OriginateResponse
        self._offers.pop(uniqueid, None)
        if not offer.bridged and not offer.adopted:
            await self._not_bridged(offer)  # e.g. the seat hung up before its Bridge(): never connected
            if not offer.bound.startswith(CALLBACK_PREFIX):  # (a callback's dialled leg never enters as the caller)
                # the seat never talked to that caller (requeued, or gone): no disposition of its call is due
                offer = replace(offer, bound="")
        await self._after.call_ended(offer, self._now())

    async def _on_seat_change(self, seat: Seat) -> None:
        if seat.state is SeatState.READY:
            self.kick()
        elif seat.state in (SeatState.NOT_READY, SeatState.LOGGED_OUT):
            await self._release_unstaffed()

    # after every AMI (re)connect

    async def resync(self) -> None:
        """Find the waiting callers and busy seats again: Redis says who was waiting, Asterisk
        says who is still there."""
        known = set(self._offers)  # offers started while the snapshot is in flight are not in it
        channels = await self._asterisk.channels()
        saved = await self._waiting.saved()
        # a waiting caller sits in the holding bridge; one talking shares a bridge with a seat
        talking = _seat_bridges(channels)
        for call in saved:
            present = call.call_id in channels and channels[call.call_id].get("bridgeid") not in talking
            if call.is_callback or present:
                self._add(call)
        self._waiting.keep_only(channels, saved)
        busy: set[str] = set()
        for uniqueid, event in channels.items():
            if not uniqueid.startswith(OFFER_PREFIX):
                continue
            seat_id = event.get("channel").removeprefix("PJSIP/").rsplit("-", 1)[0]
            if seat_id not in self._seats.config:
                continue
            busy.add(seat_id)
            if uniqueid not in self._offers:
                await self._ringing.adopt(uniqueid, seat_id, event)
        for offer_id in [o for o in self._offers if o in known and o not in channels]:
            self._offers.pop(offer_id)
        busy |= {offer.seat_id for offer in self._offers.values()}
        await self._seats.settle(busy)
        self._after.resynced()
        log.info("acd.resynced", waiting=len(self._waiting), offers=len(self._offers))
        self.kick()


def _safe(call_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in call_id)


def _seat_bridges(channels: dict[str, AmiMessage]) -> set[str]:
    """The bridges a seat's offer channel is in (CoreShowChannels by uniqueid): a caller in one
    talks with a seat; a caller in none of them waits."""
    return {e.get("bridgeid") for u, e in channels.items() if u.startswith(OFFER_PREFIX) and e.get("bridgeid")}
