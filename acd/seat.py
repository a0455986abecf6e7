"""The seat state machine (pure): one Enum, one transition function that refuses illegal moves.

logged_out ──login──► not_ready ──ready──► ready ──offer──► ringing ──answer──► on_call
     ▲                   ▲  ▲                │  ▲             │  │                 │
     └──────logout───────┘  └──pause─────────┘  └─no answer───┘  └─(missed: pause)─┘
                                                                   on_call ──end──► wrap_up ──► ready

With ``acd.require_disposition`` a seat in wrap-up (or paused with a disposition still due) is
not ready until it gives the disposition of its last call (acd/wrapup.py). The seconds a seat
spent paused, per reason, are summed over its shift (from login) in ``pause_totals``.
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
    last_call: str = ""  # the record id of the seat's last call (its disposition goes there)
    disposition_due: bool = False  # acd.require_disposition: not ready until it is given
    pause_totals: tuple[tuple[str, float], ...] = ()  # (reason, seconds) of this shift's ended pauses

    @property
    def logged_in(self) -> bool:
        return self.state is not SeatState.LOGGED_OUT

    def paused_s(self, now: datetime) -> dict[str, float]:
        """Seconds paused per reason this shift, the pause in progress included."""
        totals = dict(self.pause_totals)
        if self.state is SeatState.NOT_READY and self.since is not None:
            totals[self.reason] = totals.get(self.reason, 0.0) + max((now - self.since).total_seconds(), 0.0)
        return {reason: round(seconds, 1) for reason, seconds in totals.items()}


def _pause_ended(seat: Seat, at: datetime) -> tuple[tuple[str, float], ...]:
    """``pause_totals`` with the pause ``seat`` is in (if any) counted, as it ends at ``at``."""
    if seat.state is not SeatState.NOT_READY or seat.since is None:
        return seat.pause_totals
    totals = dict(seat.pause_totals)
    totals[seat.reason] = totals.get(seat.reason, 0.0) + max((at - seat.since).total_seconds(), 0.0)
    return tuple(totals.items())


def transition(seat: Seat, new_state: SeatState, at: datetime, reason: str = "") -> Seat:
    """Move ``seat`` to ``new_state`` or raise IllegalSeatTransition; logs old → new."""
    if new_state is seat.state and new_state is SeatState.NOT_READY:
        if not reason or reason == seat.reason:
            return seat
        log.info("seat.state", seat=seat.seat_id, old=seat.state.value, new=new_state.value, reason=reason)
        return replace(seat, reason=reason, since=at, pause_totals=_pause_ended(seat, at))  # a new pause
    if new_state not in _ALLOWED[seat.state]:
        raise IllegalSeatTransition(f"seat {seat.seat_id}: {seat.state} → {new_state} is not allowed")
    log.info("seat.state", seat=seat.seat_id, old=seat.state.value, new=new_state.value, reason=reason)
    # a shift starts at login: its pause figures start from nothing
    totals = () if seat.state is SeatState.LOGGED_OUT else _pause_ended(seat, at)
    changed = replace(
        seat, state=new_state, reason=reason if new_state is SeatState.NOT_READY else "", since=at, pause_totals=totals
    )
    if new_state is SeatState.LOGGED_OUT:
        changed = replace(changed, disposition_due=False)  # gone: nothing more is asked of that call
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
