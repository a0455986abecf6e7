"""A monitor (a supervisor's phone on a seat's call) as values, and its state machine (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

import structlog

log = structlog.get_logger(__name__)

MONITOR_PREFIX = "monitor-"  # the uniqueid of every supervisor phone channel we originate


class Mode(StrEnum):
    LISTEN = "listen"  # the supervisor hears seat and caller; nobody hears the supervisor
    WHISPER = "whisper"  # … and the seat hears the supervisor, the caller does not
    BARGE = "barge"  # … and both hear the supervisor


# ChanSpy's options: q no beep or name announcement; d the mode is switched by the keys 4 (spy),
# 5 (whisper), 6 (barge), which we press for the supervisor (AMI PlayDTMF with Receive); E ends
# when the seat's channel hangs up; S ends when there is no channel to spy on (already gone).
_BASE_OPTIONS = "qdES"
_MODE_OPTION = {Mode.LISTEN: "", Mode.WHISPER: "w", Mode.BARGE: "B"}
MODE_KEY = {Mode.LISTEN: "4", Mode.WHISPER: "5", Mode.BARGE: "6"}


def chanspy_options(mode: Mode) -> str:
    """ChanSpy's options for a monitor starting in ``mode``."""
    return _BASE_OPTIONS + _MODE_OPTION[mode]


class MonitorState(StrEnum):
    RINGING = "ringing"  # the supervisor's phone rings
    ACTIVE = "active"  # answered: ChanSpy runs on the seat's channel
    ENDED = "ended"


_ALLOWED: dict[MonitorState, frozenset[MonitorState]] = {
    MonitorState.RINGING: frozenset({MonitorState.ACTIVE, MonitorState.ENDED}),
    MonitorState.ACTIVE: frozenset({MonitorState.ENDED}),
    MonitorState.ENDED: frozenset(),
}


class IllegalMonitorTransition(ValueError):
    """A state change a monitor does not allow."""


@dataclass(frozen=True)
class Monitor:
    """One supervisor's phone on one seat's call."""

    id: str  # also the uniqueid of the supervisor's channel
    call_id: str
    seat: str
    spied_channel: str  # the seat's channel of that call (from the ACD's own state)
    phone: str  # the supervisor's phone (a seat id listed in monitor.phones)
    who: str  # the supervisor's token name
    platform: str
    mode: Mode
    started_at: datetime
    state: MonitorState = MonitorState.RINGING
    channel: str = ""  # the supervisor's channel, once Asterisk made it
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str = ""
    modes: tuple[str, ...] = ()  # every mode it was in, in order

    def moved(self, to: MonitorState, **changes: object) -> Monitor:
        """A copy in state ``to``; IllegalMonitorTransition for a move the machine refuses."""
        if to not in _ALLOWED[self.state]:
            raise IllegalMonitorTransition(f"monitor {self.id}: {self.state} → {to}")
        log.info("monitor.state", monitor=self.id, call_id=self.call_id, old=self.state.value, new=to.value)
        return replace(self, state=to, **changes)  # type: ignore[arg-type]

    def duration_s(self, now: datetime) -> float:
        """How long the supervisor has been (or was) on the call; 0 while ringing."""
        if self.answered_at is None:
            return 0.0
        return round(((self.ended_at or now) - self.answered_at).total_seconds(), 1)

    def as_json(self, now: datetime) -> dict[str, object]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "seat": self.seat,
            "phone": self.phone,
            "who": self.who,
            "mode": self.mode.value,
            "state": self.state.value,
            "started_at": self.started_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "duration_s": self.duration_s(now),
            "end_reason": self.end_reason,
            "modes": list(self.modes),
        }
