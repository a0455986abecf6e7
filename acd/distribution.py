"""Distribution: which idle seats to ring for which waiting callers (acd/router.py chooses per
caller), and the offers of callers who left pointed at another caller or withdrawn. The engine
(acd/engine.py) runs it when something changes; the offers ring in acd/ringing.py.

Incremental: the idle seats come from the seats ready now (kept by acd/seats.py on every state
change) less those with an offer in flight (counted by acd/ringing.py's OfferBook), and the
callers from per-queue lists kept in rank order (acd/waiting.py), read lazily and only for the
queues an idle seat serves. ``reference=True`` runs the plain path instead — every seat
scanned, every caller sorted, per dispatch — which the property test and bench/engine_scale.py
compare against.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable

import structlog

from acd.config import AcdConfig
from acd.model import QueuedCall
from acd.ringing import Ringing
from acd.router import IdleSeat, Strategy, may_take, offer_plan, offer_plan_by_scan
from acd.seat import Seat, SeatState
from acd.seats import SeatService
from acd.telephony import AcdTelephony
from acd.waiting import WaitingCallers
from common.clock import Clock

log = structlog.get_logger(__name__)


class Distribution:
    """Offers for waiting callers. ``dispatch()`` after a change; ``rebalance()`` after a caller left or was bound."""

    def __init__(
        self,
        *,
        config: AcdConfig,
        seats: SeatService,
        ringing: Ringing,
        waiting: WaitingCallers,
        asterisk: AcdTelephony,
        clock: Clock,
        kick: Callable[[], None],
        reference: bool = False,
    ) -> None:
        self.reference = reference
        self._kick = kick
        self._idle_cache: dict[str, tuple[Seat, IdleSeat]] = {}  # seat id → (its state, its IdleSeat)
        self._config = config
        self._strategy = Strategy(config.strategy)
        self._seats = seats
        self._ringing = ringing
        self._waiting = waiting
        self._asterisk = asterisk
        self._clock = clock
        self._last_round_robin = ""

    def _now(self) -> float:
        return self._clock().timestamp()

    def idle_seats(self) -> list[IdleSeat]:
        """Seats that may be rung now: ready, no offer in flight, not resting."""
        if self.reference:
            return self.idle_seats_by_scan()
        idle = []
        for seat_id in self._seats.ready_ids():
            if self._ringing.offers.busy(seat_id) or self._ringing.resting(seat_id):
                continue
            seat = self._seats.get(seat_id)
            cached = self._idle_cache.get(seat_id)
            if cached is None or cached[0] is not seat:
                config = self._seats.config[seat_id]
                idle_since = seat.since.timestamp() if seat.since else 0.0
                queues, skills = frozenset(config.queues), frozenset(config.skills)
                entry = IdleSeat(seat_id, queues, skills, idle_since, seat.calls_taken)
                cached = self._idle_cache[seat_id] = (seat, entry)
            idle.append(cached[1])
        return idle

    def idle_seats_by_scan(self) -> list[IdleSeat]:
        """The reference: every seat looked at."""
        busy = self._ringing.busy_seats()
        idle = []
        for seat in self._seats.all():
            if seat.state is not SeatState.READY or seat.seat_id in busy or self._ringing.resting(seat.seat_id):
                continue
            config = self._seats.config[seat.seat_id]
            idle_since = seat.since.timestamp() if seat.since else 0.0
            idle.append(
                IdleSeat(seat.seat_id, frozenset(config.queues), frozenset(config.skills), idle_since, seat.calls_taken)
            )
        return idle

    async def dispatch(self) -> None:
        """Offer idle seats to the best callers no offer covers yet (one seat each; ring-all: all)."""
        if not self._waiting or not self._asterisk.connected:
            return
        idle = self.idle_seats()
        if not idle:
            return
        covered: Container[str | None]
        callers: Iterable[QueuedCall]
        if self.reference:
            covered = self._ringing.covered()
            callers = self._waiting.ordered_by_sort()
        else:  # callers of queues no idle seat serves would be offered nothing: not read at all
            covered = self._ringing.offers.covering()  # a live view, not a walk over every offer
            callers = self._waiting.in_order({queue for seat in idle for queue in seat.queues})
        plan_offers = offer_plan_by_scan if self.reference else offer_plan
        plan, self._last_round_robin = plan_offers(
            (call.waiting() for call in callers), covered, idle, self._strategy, self._now(),
            relax_after_s=self._config.relax_skills_after_s, round_robin_after=self._last_round_robin,
        )  # fmt: skip
        for seat_id, call_id in plan:
            call = self._waiting.get(call_id)
            if call is None:  # left while an earlier offer of this round was being rung
                self._kick()  # its seat is chosen again, for whoever is best now
                continue
            await self._ringing.ring(seat_id, call)

    async def rebalance(self) -> None:
        """Offers rung for a caller who is gone: point them at another uncovered caller the seat
        may take, or withdraw them (hang up the seat's ringing phone). Only the offers rung for
        callers taken since the last rebalance (or for nobody: adopted) are looked at, not
        every offer; ``reference`` walks every offer."""
        book = self._ringing.offers
        departed = self._waiting.departed()
        snapshot: set[str | None] | None = None
        covered: Container[str | None]
        if self.reference:
            covered = snapshot = self._ringing.covered()
            orphans = list(book.values())
        else:  # a live view: a re-pointed offer covers its new caller at once
            covered = book.covering()
            orphans = book.ringing_for([*departed, None])
        now = self._now()
        for offer in orphans:
            if offer.bound is not None or offer.withdrawn or offer.intended in self._waiting:
                continue
            config = self._seats.config[offer.seat_id]
            for call in self._waiting.in_order(config.queues):
                if call.call_id in covered or call.queue not in config.queues:
                    continue
                if may_take(frozenset(config.skills), call.waiting(), now, self._config.relax_skills_after_s):
                    book.repoint(offer, call.call_id)
                    if snapshot is not None:
                        snapshot.add(call.call_id)
                    log.info("acd.offer_repointed", offer=offer.offer_id, call_id=call.call_id)
                    break
            else:
                await self._ringing.withdraw(offer)
