"""The seat state machine (pure): one Enum, one transition function that refuses illegal moves.

logged_out ──login──► not_ready ──ready──► ready ──offer──► ringing ──answer──► on_call
     ▲                   ▲  ▲                │  ▲             │  │                 │
     └──────logout───────┘  └──pause─────────┘  └─no answer───┘  └─(missed: pause)─┘
                                                                   on_call ──end──► wrap_up ──► ready
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

import structlog

log = structlog.get_logger(__name__)


class SeatState(StrEnum):
    LOGGED_OUT = "logged_out"
    NOT_READY = "not_ready"  # logged in, paused (reason says why)
    READY = "ready"  # waiting for a call
    RINGING = "ringing"  # reserved: its phone is ringing for the queue
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"  # after-call work; ready again when it ends


_ALLOWED: dict[SeatState, frozenset[SeatState]] = {
    SeatState.LOGGED_OUT: frozenset({SeatState.NOT_READY, SeatState.READY}),
    SeatState.NOT_READY: frozenset({SeatState.READY, SeatState.LOGGED_OUT}),
    SeatState.READY: frozenset({SeatState.NOT_READY, SeatState.RINGING, SeatState.ON_CALL, SeatState.LOGGED_OUT}),
    SeatState.RINGING: frozenset({SeatState.ON_CALL, SeatState.READY, SeatState.NOT_READY, SeatState.LOGGED_OUT}),
    SeatState.ON_CALL: frozenset({SeatState.WRAP_UP, SeatState.READY, SeatState.NOT_READY}),
    SeatState.WRAP_UP: frozenset({SeatState.READY, SeatState.NOT_READY, SeatState.LOGGED_OUT}),
}


class IllegalSeatTransition(ValueError):
    """A seat state change the machine does not allow."""


@dataclass(frozen=True)
class Seat:
    """One seat's state."""

    seat_id: str
    state: SeatState = SeatState.LOGGED_OUT
    reason: str = ""  # for not_ready: "break", "training", "no answer" …
    since: datetime | None = None
    missed_in_a_row: int = 0
    calls_taken: int = 0

    @property
    def logged_in(self) -> bool:
        return self.state is not SeatState.LOGGED_OUT


def transition(seat: Seat, new_state: SeatState, at: datetime, reason: str = "") -> Seat:
    """Move ``seat`` to ``new_state`` or raise IllegalSeatTransition; logs old → new."""
    if new_state is seat.state and new_state is SeatState.NOT_READY:
        return replace(seat, reason=reason or seat.reason)
    if new_state not in _ALLOWED[seat.state]:
        raise IllegalSeatTransition(f"seat {seat.seat_id}: {seat.state} → {new_state} is not allowed")
    log.info("seat.state", seat=seat.seat_id, old=seat.state.value, new=new_state.value, reason=reason)
    changed = replace(seat, state=new_state, reason=reason if new_state is SeatState.NOT_READY else "", since=at)
    if new_state is SeatState.ON_CALL:
        changed = replace(changed, missed_in_a_row=0, calls_taken=seat.calls_taken + 1)
    return changed


def missed_offer(seat: Seat, at: datetime, max_missed: int) -> Seat:
    """The seat's phone rang and nobody answered (or it refused, or was unreachable).

    After ``max_missed`` in a row the seat is set not ready, so callers stop waiting on it.
    """
    missed = replace(seat, missed_in_a_row=seat.missed_in_a_row + 1)
    if missed.missed_in_a_row >= max_missed and missed.state is not SeatState.NOT_READY:
        return transition(missed, SeatState.NOT_READY, at, reason="no answer")
    return missed
