"""A seat's callback as a value, its state machine, and the rules that gate it (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

import structlog

from acd.seat import Seat, SeatState
from acd.stats import service_level_holds

log = structlog.get_logger(__name__)

# a number we dial: digits only (a SIP From user may be anything; the dial string is built from it)
DIALLABLE = re.compile(r"[0-9]{3,20}")
# the seat states a click-to-call may start from (the seat chose to call): ready, paused, wrap-up
MAY_CALL_FROM = frozenset({SeatState.READY, SeatState.NOT_READY, SeatState.WRAP_UP})


class DialbackState(StrEnum):
    SEAT_RINGING = "seat_ringing"  # the seat's phone rings
    TALKING = "talking"  # the seat answered: the citizen is dialled, then talks
    ENDED = "ended"


_ALLOWED: dict[DialbackState, frozenset[DialbackState]] = {
    DialbackState.SEAT_RINGING: frozenset({DialbackState.TALKING, DialbackState.ENDED}),
    DialbackState.TALKING: frozenset({DialbackState.ENDED}),
    DialbackState.ENDED: frozenset(),
}


class IllegalDialbackTransition(ValueError):
    """A state change the callback's machine does not allow."""


@dataclass(frozen=True)
class Dialback:
    """One seat calling one citizen back. ``call_id`` is the seat channel's uniqueid and the
    call record's id; ``number`` is whole (masked wherever shown or logged)."""

    call_id: str
    seat_id: str
    number: str
    blended: bool  # offered by the ACD, not clicked
    started_at: float
    state: DialbackState = DialbackState.SEAT_RINGING
    answered_at: float = 0.0  # the seat answered
    dial_status: str = ""  # Asterisk's DIALSTATUS of the citizen's leg (ANSWER, NOANSWER, BUSY …)
    talk_s: int = 0

    @property
    def reached(self) -> bool:
        return self.dial_status == "ANSWER"


def transition(call: Dialback, new: DialbackState, **changes: object) -> Dialback:
    """``call`` moved to ``new`` (with ``changes``) or IllegalDialbackTransition; logs old → new."""
    if new not in _ALLOWED[call.state]:
        raise IllegalDialbackTransition(f"callback {call.call_id}: {call.state} → {new} is not allowed")
    log.info("dialback.state", call_id=call.call_id, seat=call.seat_id, old=call.state.value, new=new.value)
    return replace(call, state=new, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Refusal:
    """Why a callback may not start now (an HTTP status and a sentence)."""

    status: int
    reason: str
    held_by: str = ""  # inbound first: "inbound_waiting" or "service_level" ("" : another reason)


def refusal(  # noqa: PLR0911 - one answer per reason
    *, seat: Seat, inbound_waiting: int, number: str, numbers_in_progress: set[str], seats_in_progress: set[str],
    connected: bool, service_level: float | None = None, min_service_level: float = 0.0,
) -> Refusal | None:  # fmt: skip
    """None when ``seat`` may call ``number`` now. Inbound first: nobody may be waiting and the
    15 s service level (``service_level``, None: nobody offered lately) must hold."""
    if not connected:
        return Refusal(503, "Asterisk is not connected: no call can be placed now")
    if inbound_waiting:
        return Refusal(409, f"callers are waiting ({inbound_waiting}): inbound calls first", "inbound_waiting")
    if not service_level_holds(service_level, min_service_level):
        return Refusal(
            409,
            f"the 15 s service level ({service_level:.0%}) is below {min_service_level:.0%}: inbound calls first",
            "service_level",
        )
    if DIALLABLE.fullmatch(number) is None:
        return Refusal(422, "this number cannot be dialled (not 3-20 digits)")
    if seat.seat_id in seats_in_progress:
        return Refusal(409, "this seat is already calling someone back")
    if seat.state not in MAY_CALL_FROM:
        return Refusal(409, f"the seat is {seat.state.value}: it may call back when ready, paused or in wrap-up")
    if seat.disposition_due:
        return Refusal(409, f"give the disposition of call {seat.last_call} first")
    if number in numbers_in_progress:
        return Refusal(409, "this number is being called back already")
    return None


def due_for_blended(
    tries: int, last_try_at: datetime | None, now: datetime, max_tries: int, retry_after_s: int
) -> bool:
    """Whether a listed number may be offered to an idle seat now."""
    if tries >= max_tries:
        return False
    return last_try_at is None or (now - last_try_at).total_seconds() >= retry_after_s
