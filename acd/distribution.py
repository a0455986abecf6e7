"""Distribution: which idle seats to ring for which waiting callers (acd/router.py chooses per
caller), and the offers of callers who left pointed at another caller or withdrawn. The engine
(acd/engine.py) runs it when something changes; the offers ring in acd/ringing.py."""

from __future__ import annotations

import structlog

from acd.config import AcdConfig
from acd.ringing import Ringing
from acd.router import IdleSeat, Strategy, may_take, seats_to_offer
from acd.seat import SeatState
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
    ) -> None:
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
        covered = self._ringing.covered()
        now = self._now()
        for call in self._waiting.ordered():
            if not idle:
                return
            if call.call_id in covered or call.call_id not in self._waiting:  # left meanwhile
                continue
            chosen = seats_to_offer(
                call.waiting(),
                idle,
                self._strategy,
                now,
                self._config.relax_skills_after_s,
                round_robin_after=self._last_round_robin,
            )
            for seat_id in chosen:
                idle = [s for s in idle if s.seat_id != seat_id]
                self._last_round_robin = seat_id
                await self._ringing.ring(seat_id, call)

    async def rebalance(self) -> None:
        """Offers rung for a caller who is gone: point them at another uncovered caller the seat
        may take, or withdraw them (hang up the seat's ringing phone)."""
        covered = self._ringing.covered()
        now = self._now()
        for offer in list(self._ringing.offers.values()):
            if offer.bound is not None or offer.withdrawn or offer.intended in self._waiting:
                continue
            config = self._seats.config[offer.seat_id]
            for call in self._waiting.ordered():
                if call.call_id in covered or call.queue not in config.queues:
                    continue
                if may_take(frozenset(config.skills), call.waiting(), now, self._config.relax_skills_after_s):
                    offer.intended = call.call_id
                    covered.add(call.call_id)
                    log.info("acd.offer_repointed", offer=offer.offer_id, call_id=call.call_id)
                    break
            else:
                await self._ringing.withdraw(offer)
