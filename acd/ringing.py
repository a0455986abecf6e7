"""The ACD's offers: seats' phones ringing for the queue, and what Asterisk says of them.

An offer is one seat's phone rung (an async ``Originate``) for a caller; the caller it is
bound to is chosen only when the phone answers (acd/engine.py). Here: starting an offer,
letting a seat rest when Asterisk did not take it, giving up an offer whose reply was lost,
withdrawing one nobody is left for, and settling an offer from its ``OriginateResponse``.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable, Container, Coroutine, Iterable
from typing import Any

import structlog

from acd.events import EventBus
from acd.model import OFFER_PREFIX, Offer, QueuedCall
from acd.seat import SeatState
from acd.seats import SeatService
from acd.telephony import AcdTelephony
from common.clock import Clock
from telephony.ami_types import AmiActionFailed, AmiError, AmiMessage, AmiNotConnected
from telephony.dialplan_names import HOLD_CONTEXT

log = structlog.get_logger(__name__)

# OriginateResponse Reason codes that are the seat's doing: 0 unreachable (no channel could be
# made: not registered, no contact), 1 hung up (rejected), 3 rang out (no answer), 5 busy, 8
# congestion (unreachable on the way). Anything else is not held against the seat.
SEAT_REASONS = frozenset({"0", "1", "3", "5", "8"})
OFFER_RETRY_S = 1.0  # a seat whose offer Asterisk did not take is not rung again before this
ORIGINATE_GRACE_S = 5.0  # an Originate whose reply was lost: how long past the ring time to wait

Later = Callable[[float, Callable[[], None]], None]  # run a callback after a delay (the engine's timers)
Spawn = Callable[[Coroutine[Any, Any, None]], None]  # run a coroutine as a kept task


class OfferBook(dict[str, Offer]):
    """Offer id → Offer, with indexes kept on every change so no event walks every offer:
    the offers per seat (which seats are busy), the ringing offers (unbound, not withdrawn) by
    the caller they were rung for (who is covered; whose offers a departure orphans), and the
    offers by the caller bound to them (BridgeEnter). Only ``[key] = value``, ``pop`` and the
    ``bind``/``repoint``/``withdraw`` methods change offers here; ``agrees_with_scan()`` is what
    the property tests check after every step."""

    def __init__(self) -> None:
        super().__init__()
        self._per_seat: dict[str, int] = {}
        self._ringing_for: dict[str | None, dict[str, Offer]] = {}  # intended caller → its ringing offers
        self._bound_to: dict[str, dict[str, Offer]] = {}  # bound caller → its offers
        self._filed: dict[str, tuple[bool, str | None, str | None]] = {}  # offer id → (ringing, intended, bound)
        self._order: dict[str, int] = {}  # offer id → when it was put here (dict order, for re-pointing)
        self._sequence = itertools.count()

    def __setitem__(self, offer_id: str, offer: Offer) -> None:
        self.pop(offer_id, None)
        super().__setitem__(offer_id, offer)
        self._per_seat[offer.seat_id] = self._per_seat.get(offer.seat_id, 0) + 1
        self._order[offer_id] = next(self._sequence)
        self._file(offer)

    def pop(self, offer_id: str, *default: Any) -> Any:  # dict.pop's own signature
        offer = super().pop(offer_id, *default)
        if isinstance(offer, Offer) and offer_id in self._order:
            left = self._per_seat[offer.seat_id] - 1
            if left:
                self._per_seat[offer.seat_id] = left
            else:
                del self._per_seat[offer.seat_id]
            del self._order[offer_id]
            self._unfile(offer_id)
        return offer

    def __delitem__(self, offer_id: str) -> None:
        self.pop(offer_id)

    def _file(self, offer: Offer) -> None:
        ringing = offer.bound is None and not offer.withdrawn
        self._filed[offer.offer_id] = (ringing, offer.intended, offer.bound)
        if ringing:
            self._ringing_for.setdefault(offer.intended, {})[offer.offer_id] = offer
        if offer.bound is not None:
            self._bound_to.setdefault(offer.bound, {})[offer.offer_id] = offer

    def _unfile(self, offer_id: str) -> None:
        ringing, intended, bound = self._filed.pop(offer_id)
        if ringing:
            _drop(self._ringing_for, intended, offer_id)
        if bound is not None:
            _drop(self._bound_to, bound, offer_id)

    def _change(self, offer: Offer, **fields: Any) -> None:
        held = self.get(offer.offer_id) is offer
        if held:
            self._unfile(offer.offer_id)
        for name, value in fields.items():
            setattr(offer, name, value)
        if held:
            self._file(offer)

    # the changes of an offer that the indexes follow

    def bind(self, offer: Offer, call_id: str, at: float) -> None:
        """The seat answered and ``call_id`` is its caller."""
        self._change(offer, bound=call_id, bound_at=at)

    def repoint(self, offer: Offer, call_id: str) -> None:
        """A ringing offer is rung for another caller now."""
        self._change(offer, intended=call_id)

    def withdraw(self, offer: Offer) -> None:
        """Nobody is left for it: it rings for nobody."""
        self._change(offer, withdrawn=True, intended=None)

    # what the engine asks

    def busy(self, seat_id: str) -> bool:
        """Whether an offer of this seat is in flight (ringing or talking)."""
        return seat_id in self._per_seat

    def covering(self) -> Container[str | None]:
        """The callers a ringing offer is rung for (a live view: it follows every change)."""
        return self._ringing_for.keys()

    def ringing_for(self, callers: Iterable[str | None]) -> list[Offer]:
        """The ringing offers rung for any of ``callers``, in the order they were made."""
        found = [offer for caller in set(callers) for offer in self._ringing_for.get(caller, {}).values()]
        return sorted(found, key=lambda offer: self._order[offer.offer_id])

    def bound_to(self, call_id: str) -> list[Offer]:
        """The offers whose seat answered and was bound to ``call_id``, in the order they were made
        (as a walk over every offer finds them)."""
        return sorted(self._bound_to.get(call_id, {}).values(), key=lambda offer: self._order[offer.offer_id])

    def agrees_with_scan(self) -> bool:
        """The indexes say what a walk over every offer says (for the property tests)."""
        offers = list(self.values())
        ringing: dict[str | None, set[str]] = {}
        bound: dict[str, set[str]] = {}
        for offer in offers:
            if offer.bound is None and not offer.withdrawn:
                ringing.setdefault(offer.intended, set()).add(offer.offer_id)
            if offer.bound is not None:
                bound.setdefault(offer.bound, set()).add(offer.offer_id)
        per_seat = Counter(offer.seat_id for offer in offers)
        return (
            {k: set(v) for k, v in self._ringing_for.items()} == ringing
            and {k: set(v) for k, v in self._bound_to.items()} == bound
            and self._per_seat == dict(per_seat)
            and list(self._order) == list(self)
            and sorted(self._order.values()) == list(self._order.values())
        )


def _drop(index: dict[Any, dict[str, Offer]], key: Any, offer_id: str) -> None:
    entries = index.get(key)
    if entries is not None:
        entries.pop(offer_id, None)
        if not entries:
            del index[key]


class Ringing:
    """The offers in flight (``offers``: offer id → Offer) and their counters."""

    def __init__(
        self,
        *,
        seats: SeatService,
        asterisk: AcdTelephony,
        events: EventBus,
        clock: Clock,
        later: Later,
        spawn: Spawn,
        kick: Callable[[], None],
        ring_timeout_s: float,
        offer_retry_s: float = OFFER_RETRY_S,
        originate_grace_s: float = ORIGINATE_GRACE_S,
    ) -> None:
        self.offers = OfferBook()
        self._seats = seats
        self._asterisk = asterisk
        self._events = events
        self._clock = clock
        self._later = later
        self._spawn = spawn
        self._kick = kick
        self._ring_timeout_s = ring_timeout_s
        self._offer_retry_s = offer_retry_s
        self._originate_grace_s = originate_grace_s
        self._resting: dict[str, float] = {}  # seat → when (monotonic) it may be rung again
        self.offers_total = 0
        self.offers_missed = 0
        self.offers_not_started = 0  # Asterisk did not take the Originate: not the seat's doing
        self.offers_unconfirmed = 0  # no reply to the Originate (AMI timeout, connection lost)

    def resting(self, seat_id: str) -> bool:
        return self._resting.get(seat_id, 0) > time.monotonic()

    def busy_seats(self) -> set[str]:
        return {offer.seat_id for offer in self.offers.values()}

    def covered(self) -> set[str | None]:
        """The callers a ringing (unbound, not withdrawn) offer was rung for, by a walk over
        every offer (the reference path; the incremental one reads ``offers.covering()``)."""
        return {o.intended for o in self.offers.values() if not o.withdrawn and o.bound is None}

    async def ring(self, seat_id: str, call: QueuedCall) -> None:
        """Ring ``seat_id`` for ``call`` (bound to whoever is best when it answers)."""
        if self._seats.get(seat_id).state is not SeatState.READY:
            self._kick()  # paused (or taken) while the dispatcher awaited an earlier offer: choose again
            return
        offer = Offer(f"{OFFER_PREFIX}{uuid.uuid4().hex}", seat_id, call.call_id, self._clock().timestamp())
        self.offers[offer.offer_id] = offer
        self.offers_total += 1
        await self._seats.offered(seat_id)
        log.info("acd.offer", seat=seat_id, call_id=call.call_id, offer=offer.offer_id)
        # the seat's screen pop (cases/seat_events.py) starts from this, while its phone rings
        await self._events.publish("acd.offered", self._clock(), call_id=call.call_id, seat=seat_id, queue=call.queue)
        try:
            await self._asterisk.ring_seat(offer.offer_id, seat_id, call.caller)
        except (AmiActionFailed, AmiNotConnected) as exc:
            # Asterisk did not take it (refused, or not sent): no phone rang, so it is not the
            # seat's miss. The seat rests a moment (no tight loop if Asterisk keeps refusing)
            # and the caller is offered again.
            self.offers_not_started += 1
            log.warning("acd.offer_not_started", seat=seat_id, offer=offer.offer_id, error=str(exc))
            self.offers.pop(offer.offer_id, None)
            self._rest(seat_id)
            await self._seats.released(seat_id, "offer could not be started")
            self._kick()
        except AmiError as exc:
            # no reply (timeout, connection lost): the phone may ring or not. The offer stays (its
            # OriginateResponse settles it as usual); if nothing is heard of it within the ring
            # time and a grace, it is dropped without counting against the seat.
            self.offers_unconfirmed += 1
            log.warning("acd.offer_unconfirmed", seat=seat_id, offer=offer.offer_id, error=str(exc))
            self._later(self._ring_timeout_s + self._originate_grace_s, lambda: self._expire_unconfirmed(offer))

    def _rest(self, seat_id: str) -> None:
        """Not rung again for a moment (Asterisk refusing every Originate is no tight loop)."""
        self._resting[seat_id] = time.monotonic() + self._offer_retry_s
        self._later(self._offer_retry_s, self._kick)

    def _expire_unconfirmed(self, offer: Offer) -> None:
        """An Originate whose reply was lost, and of which Asterisk has said nothing since."""
        if self.offers.get(offer.offer_id) is not offer or offer.channel or offer.answered:
            return  # settled, or its channel exists: its OriginateResponse or Hangup will settle it

        async def expire() -> None:
            if self.offers.pop(offer.offer_id, None) is None:
                return
            log.warning("acd.offer_never_started", seat=offer.seat_id, offer=offer.offer_id)
            await self._seats.released(offer.seat_id, "offer never started")
            self._kick()

        self._spawn(expire())

    async def withdraw(self, offer: Offer) -> None:
        """Nobody is left for this offer: hang up the seat's ringing phone."""
        self.offers.withdraw(offer)
        log.info("acd.offer_withdrawn", seat=offer.seat_id, offer=offer.offer_id)
        try:
            await self._asterisk.hang_up(offer.channel or offer.offer_id)
        except AmiError as exc:
            # already gone (answered and released, or ended): the OriginateResponse settles it
            log.info("acd.withdraw_noop", offer=offer.offer_id, detail=str(exc))

    # Asterisk's events

    async def on_new_channel(self, event: AmiMessage) -> None:
        offer = self.offers.get(event.get("uniqueid"))
        if offer is not None:
            offer.channel = event.get("channel")

    async def on_originate_response(self, event: AmiMessage) -> None:
        offer = self.offers.get(event.get("uniqueid"))
        if offer is None:
            return
        if event.get("response").lower() == "success":
            offer.answered = True
            return  # answered: bind() runs from the seat's channel
        self.offers.pop(offer.offer_id, None)
        reason = event.get("reason")
        if offer.withdrawn:
            await self._seats.released(offer.seat_id, "offer withdrawn")
        elif reason not in SEAT_REASONS:
            # not no-answer, busy, rejected or unreachable: not held against the seat
            self.offers_not_started += 1
            log.warning("acd.offer_failed_not_by_seat", seat=offer.seat_id, offer=offer.offer_id, reason=reason)
            self._rest(offer.seat_id)
            await self._seats.released(offer.seat_id, f"offer failed (reason {reason or '?'})")
        else:
            self.offers_missed += 1
            cause = f"offer not answered (reason {event.get('reason') or '?'})"
            log.info("acd.offer_missed", seat=offer.seat_id, offer=offer.offer_id, reason=event.get("reason"))
            await self._events.publish("acd.offer_missed", self._clock(), seat=offer.seat_id, reason=cause)
            await self._seats.missed(offer.seat_id, cause)
        self._kick()

    async def on_bridge_enter(self, event: AmiMessage) -> None:
        if _holding(event):  # a bound caller back in the holding bridge (a slice ended): not the seat's
            return
        for offer in self.offers.bound_to(event.get("uniqueid")):
            offer.bridged = True

    async def adopt(self, uniqueid: str, seat_id: str, event: AmiMessage) -> None:
        """An offer channel a previous run started: still ringing, or talking."""
        talking = bool(event.get("bridgeid"))
        self.offers[uniqueid] = Offer(
            uniqueid, seat_id, None, self._clock().timestamp(), channel=event.get("channel"),
            bound="(adopted)" if talking else None, adopted=True,
        )  # fmt: skip
        if talking and self._seats.get(seat_id).state in (SeatState.READY, SeatState.RINGING):
            await self._seats.answered(seat_id)  # answered while we were away: it is on a call


def _holding(event: AmiMessage) -> bool:
    """BridgeEnter into the bridge callers wait in (hotline-hold's BridgeWait)."""
    return event.get("bridgename") == HOLD_CONTEXT or event.get("bridgetechnology") == "holding_bridge"
