"""Calls Asterisk ended on its fallback route: one line per call, written by Asterisk.

The fallback route (telephony/extensions_conf.py) notes where the caller is (``greeting``, then
``queue``, then ``message``, then ``goodbye``); when the caller's channel hangs up, its ``h``
extension writes ``<spool>/fallback/fc-<start epoch>-<uniqueid>.call`` with Asterisk's own
``FILE()`` (no shell; the file is 0600 under Asterisk's umask) holding one line::

    v1|<start epoch>|<uniqueid>|<caller digits>|<stage>|<seat digits>|<queued epoch>|<hold s>|<end epoch>|end

Every field is digits, a stage word or the uniqueid (Asterisk's own); the caller's number passes
``FILTER(0-9)`` there and is checked again here, so nothing a caller sends can add a field or a
line. A line without its final ``end`` (a full disk, a write cut short) is not read yet: it is
tried again at the next scan, and logged once. So the controller, on its return, knows of every
fallback call, also those a seat answered or the caller left before the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from calls.model import CallOutcome, CallRecord, CallState

CALL_SUFFIX = ".call"
CALL_GLOB = "fc-*.call"
FORMAT = "v1"
STAGES = ("greeting", "queue", "message", "goodbye")
CUT_SHORT = "cut_short"  # the stage of a line that never became whole: only its name is known
_NAME = re.compile(r"fc-(?P<start>\d{9,11})-(?P<uniqueid>[A-Za-z0-9_.-]{1,80})\.call")
_LINE = re.compile(
    r"v1\|(?P<start>\d{9,11})\|(?P<uniqueid>[A-Za-z0-9_.-]{1,80})\|(?P<caller>\d*)"
    r"\|(?P<stage>greeting|queue|message|goodbye)\|(?P<seat>(?:[0-9]{3,6})?)\|(?P<queued>\d{0,11})"
    r"\|(?P<hold>\d{0,6})\|(?P<end>\d{9,11})\|end\n?"
)
MAX_BYTES = 4096  # a caller may send a very long number: still one call, never an unread line
MAX_CALLER_DIGITS = 32  # longer is no number: the record keeps none


class Incomplete(ValueError):
    """The line is not (yet) whole: Asterisk may still be writing it, or the disk was full."""


@dataclass(frozen=True)
class FallbackCall:
    """What the fallback route wrote about one call."""

    uniqueid: str
    caller: str
    stage: str
    seat: str  # the seat that answered in the fallback queue, "" if none
    started_at: datetime
    ended_at: datetime
    seat_answered_at: datetime | None

    @property
    def outcome(self) -> CallOutcome:
        """A seat answered: ``answered``; left before the message began: ``abandoned``;
        otherwise ``fallback`` (the message file, if any, brings the recording)."""
        if self.seat_answered_at is not None:
            return CallOutcome.ANSWERED
        if self.stage == CUT_SHORT:
            return CallOutcome.LOST_TRACK
        if self.stage in ("greeting", "queue"):
            return CallOutcome.ABANDONED
        return CallOutcome.FALLBACK

    @property
    def cause(self) -> str:
        if self.outcome is CallOutcome.ANSWERED:
            return "fallback route: answered by a seat"
        if self.stage == CUT_SHORT:
            return "fallback route: its line was cut short (disk full?)"
        return f"fallback route: hung up in the {self.stage}"


def is_call_file(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def cut_short_call(name: str, ended_at: datetime) -> FallbackCall:
    """What the name of a line that never became whole still tells (Asterisk could not finish
    writing it: a full disk): the call, its start, and when the file was last written."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError("not a fallback call file")
    started = datetime.fromtimestamp(int(match["start"]), UTC)
    return FallbackCall(
        uniqueid=match["uniqueid"],
        caller="",
        stage=CUT_SHORT,
        seat="",
        started_at=started,
        ended_at=max(started, ended_at),
        seat_answered_at=None,
    )


def parse_call_line(text: str) -> FallbackCall:
    """The call a ``.call`` file describes; Incomplete if the line is cut short, ValueError if
    it is not ours."""
    if not text.endswith("|end") and not text.endswith("|end\n"):
        raise Incomplete("no end marker")
    match = _LINE.fullmatch(text)
    if match is None:
        raise ValueError("not a fallback call line")
    started = datetime.fromtimestamp(int(match["start"]), UTC)
    ended = max(started, datetime.fromtimestamp(int(match["end"]), UTC))
    seat = match["seat"]
    answered: datetime | None = None
    if seat and match["queued"] and match["hold"]:
        queued = datetime.fromtimestamp(int(match["queued"]), UTC)
        answered = min(ended, max(started, queued + timedelta(seconds=int(match["hold"]))))
    return FallbackCall(
        uniqueid=match["uniqueid"],
        caller=match["caller"] if len(match["caller"]) <= MAX_CALLER_DIGITS else "",
        stage=match["stage"],
        seat=seat if answered else "",
        started_at=started,
        ended_at=ended,
        seat_answered_at=answered,
    )


def fallback_call_record(call: FallbackCall, platform: str) -> CallRecord:
    """The record of a fallback call the controller never saw."""
    return CallRecord(
        call_id=call.uniqueid,
        platform=platform,
        caller=call.caller,
        called="12345",
        state=CallState.ENDED,
        started_at=call.started_at,
        answered_at=call.started_at,
        ended_at=call.ended_at,
        ivr_path=("fallback",),
        seat=call.seat,
        seat_answered_at=call.seat_answered_at,
        outcome=call.outcome,
        hangup_cause=call.cause,
        tags={"route": "fallback", "fallback_stage": call.stage},
    )


def merged_fallback_call(existing: CallRecord, call: FallbackCall) -> CallRecord | None:
    """``existing`` with what the fallback route saw, or None when it needs nothing.

    The controller's own ended record stands (it heard the call end); a record it could not
    finish (still open: it died first; or ended ``lost_track`` at a resync) takes the route's
    outcome, seat and talk. A ``fallback`` record from the message file keeps its recording."""
    if not existing.is_open and (existing.outcome is not CallOutcome.LOST_TRACK or call.stage == CUT_SHORT):
        return None  # (a line cut short adds nothing to a record that ended)
    outcome = call.outcome
    update: dict[str, object] = {
        "state": CallState.ENDED,
        "ended_at": max(existing.started_at, call.ended_at),
        "ended_at_estimated": False,  # Asterisk wrote the hang-up's own time
        "outcome": outcome,
        "hangup_cause": call.cause,
        "tags": {**existing.tags, "route": "fallback", "fallback_stage": call.stage},
        "caller": existing.caller or call.caller,
        "ivr_path": existing.ivr_path if "fallback" in existing.ivr_path else (*existing.ivr_path, "fallback"),
    }
    if call.seat_answered_at is not None:
        update["seat"] = call.seat
        update["seat_answered_at"] = call.seat_answered_at
    return existing.model_copy(update=update)
