"""The call record and its state machine (pure: values in, values out)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Literal, TypedDict

from pydantic import BaseModel, ConfigDict


class CallState(StrEnum):
    """Where a call is in its life."""

    ARRIVED = "arrived"  # Asterisk created the caller's channel
    IN_IVR = "in_ivr"  # our FastAGI is serving it
    ENDED = "ended"  # the caller's channel is gone


class CallOutcome(StrEnum):
    """How a call ended, as an operator would ask it."""

    IVR_COMPLETED = "ivr_completed"  # the IVR ran to its end and released the call
    ANSWERED = "answered"  # a seat took the call
    VOICEMAIL = "voicemail"  # the caller left a message
    VOICEMAIL_FAILED = "voicemail_failed"  # the message could not be kept (spool full or failing): call back
    TRANSFERRED = "transferred"  # handed to another hotline (province, department, 110 …)
    CALLBACK = "callback"  # the caller took the offer to be called back, keeping their place
    BLOCKED = "blocked"  # on a blocklist (nuisance caller): told so politely, then the call was ended
    ABANDONED = "abandoned"  # the caller hung up before the IVR finished
    FALLBACK = "fallback"  # the controller was unreachable: Asterisk's fallback route took it
    LOST_TRACK = "lost_track"  # it ended while we could not see it (AMI down, Asterisk restart)
    NOT_REACHED = "not_reached"  # an outbound call the citizen did not answer (no answer, busy, unreachable)


_ALLOWED: dict[CallState, frozenset[CallState]] = {
    CallState.ARRIVED: frozenset({CallState.IN_IVR, CallState.ENDED}),
    CallState.IN_IVR: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class IllegalTransition(ValueError):
    """A state change the call state machine does not allow."""


class CallRecord(BaseModel):
    """Everything we know about one call. ``caller`` is stored whole (callbacks need it) and
    masked wherever it is shown or logged."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    call_id: str
    platform: str
    channel: str = ""
    caller: str = ""
    caller_name: str = ""
    called: str = ""
    state: CallState = CallState.ARRIVED
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    # the end was not seen (the channel was gone when the controller looked again): ``ended_at``
    # is when that was noticed, never before the call's last known moment
    ended_at_estimated: bool = False
    ivr_path: tuple[str, ...] = ()
    digits: tuple[str, ...] = ()  # "<menu node>=<key>", in order pressed
    tags: dict[str, str] = {}
    survey_score: int | None = None
    queue: str = ""
    queued_at: datetime | None = None  # entered the queue
    seat: str = ""
    seat_answered_at: datetime | None = None  # a seat answered (app_queue AgentConnect)
    transfer_to: str = ""
    dialplan_version: str = ""
    outcome: CallOutcome | None = None
    hangup_cause: str = ""
    recording: str = ""  # the caller's message (voicemail or fallback), relative to the spool
    call_recording: str = ""  # the seat conversation, relative to the spool
    case_id: str = ""  # the ticket the seat registered for this call, or linked it to (cases/)
    # outbound: the hotline called (a seat's callback, dialback/); ``caller`` is then the citizen called
    direction: Literal["inbound", "outbound"] = "inbound"
    # the version of this record: each change the tracker keeps gets the next one, and the store
    # never replaces a stored version by an older one (calls/store.py); 0 in records written
    # before revisions existed (any saved change replaces them). Keep it the LAST field: the save
    # script reads it at the end of the stored JSON (calls/store.py)
    revision: int = 0

    @property
    def is_open(self) -> bool:
        return self.state is not CallState.ENDED


class CallChanges(TypedDict, total=False):
    """Fields the IVR may set on a live record (checked by mypy, applied by the tracker)."""

    tags: dict[str, str]
    survey_score: int
    queue: str
    queued_at: datetime
    seat: str
    seat_answered_at: datetime | None
    transfer_to: str
    dialplan_version: str
    recording: str
    call_recording: str
    outcome: CallOutcome | None  # None: back to undecided (a caller put back in line, acd/engine.py)
    case_id: str
    direction: Literal["inbound", "outbound"]


_set = object.__setattr__


def with_changes(record: CallRecord, update: Mapping[str, object]) -> CallRecord:
    """``record.model_copy(update=update)``, the same result (a shallow copy, the update not
    validated, its keys added to the fields set), without pydantic's generic copy: a call's
    record is copied for every version (about 20 a call), and ``model_copy`` was the largest
    single self-time of the controller's IVR path (bench/ivr_inproc.py)."""
    new = type(record).__new__(type(record))
    _set(new, "__dict__", {**record.__dict__, **update})
    extra = record.__pydantic_extra__
    _set(new, "__pydantic_extra__", None if extra is None else dict(extra))
    _set(new, "__pydantic_fields_set__", record.__pydantic_fields_set__ | update.keys())
    private = record.__pydantic_private__
    _set(new, "__pydantic_private__", None if private is None else dict(private))
    return new


def transition(record: CallRecord, new_state: CallState) -> CallRecord:
    """Move ``record`` to ``new_state`` or raise IllegalTransition."""
    if new_state not in _ALLOWED[record.state]:
        raise IllegalTransition(f"call {record.call_id}: {record.state} → {new_state} is not allowed")
    return with_changes(record, {"state": new_state})


def end_call(record: CallRecord, at: datetime, cause: str, lost_track: bool = False) -> CallRecord:
    """End the call; an outcome the IVR already set stands, otherwise one is derived."""
    ended = transition(record, CallState.ENDED)
    outcome = record.outcome
    if outcome is None:
        outcome = CallOutcome.LOST_TRACK if lost_track else CallOutcome.ABANDONED
    return with_changes(ended, {"ended_at": at, "hangup_cause": cause or record.hangup_cause, "outcome": outcome})


def end_unseen_call(record: CallRecord, noticed_at: datetime, cause: str) -> CallRecord:
    """End a call whose hang-up nobody saw (its channel was gone when the controller looked):
    ``lost_track`` unless the IVR set an outcome; the end is marked estimated and is never
    earlier than the last moment the record knows (another run's clock, or a test clock, may
    be behind it), so no duration comes out negative."""
    known = [t for t in (record.started_at, record.answered_at, record.queued_at, record.seat_answered_at) if t]
    ended = end_call(record, max([noticed_at, *known]), cause, lost_track=True)
    return with_changes(ended, {"ended_at_estimated": True})
