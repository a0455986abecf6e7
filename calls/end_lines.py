"""Hang-ups Asterisk writes down itself: one line per call, so no end is ever estimated.

The controller hears a call end from AMI's Hangup; if it is down (SIGKILLed, restarting) or the
event is lost between Asterisk's socket and the record writer, the record used to end at the
next start with an estimated time (``end_unseen_call``). So every context a caller's channel
can hang up in (the entry's IVR, the hold/ACD bridge, after the seat, a transfer, a route to
another platform; telephony/extensions_conf.py) writes, from its ``h`` extension, with Asterisk's
own ``FILE()`` (no shell; 0600 under Asterisk's umask, in the 0700 fallback folder)::

    <spool>/fallback/ce-<uniqueid>.end    e1|<uniqueid>|<end epoch with ms>|<Q.850 cause>|end

Always, not only when the controller seems away: the dialplan cannot know whether the controller
heard the hang-up (an event still in a socket buffer when it died, the record writer's batch not
yet saved, a half-open AMI connection Asterisk still counts as logged in). The write is the last
thing a channel does after its caller is gone, so it never holds up a call; a full disk costs
the line only (logged by Asterisk), and the record then ends estimated as before.

Every field is Asterisk's own (the uniqueid, its clock, ``FILTER(0-9)`` on the cause) and checked
again here; a line whose call is not the one its file is named after, or is another platform's
call (the province's records share their keys), is left where it is and ends nothing. A line
cut short (a full disk) is deleted after 2 minutes.
The fallback route's own line (calls/fallback_calls.py) covers calls on that route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from calls.model import CallOutcome, CallRecord, end_call

END_PREFIX = "ce-"
END_SUFFIX = ".end"
END_GLOB = "ce-*.end"
MAX_BYTES = 512
_NAME = re.compile(r"ce-(?P<uniqueid>[A-Za-z0-9_.-]{1,80})\.end")
_LINE = re.compile(
    r"e1\|(?P<uniqueid>[A-Za-z0-9_.-]{1,80})\|(?P<end>\d{9,11}(?:\.\d{1,6})?)\|(?P<cause>\d{0,3})\|end\n?"
)
# Q.850 causes as Asterisk's AMI Hangup event names them (Cause-txt), so that a record ended from
# a line reads like one ended by the event
_CAUSES = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    27: "Destination out of order",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    127: "Interworking, unspecified",
}
SOURCE_TAG = "end_written_by"  # the record's tag naming who saw the end, when it was not AMI


class Incomplete(ValueError):
    """The line is not (yet) whole."""


class NotOurs(ValueError):
    """The line names a call of another platform (the province's records share their keys)."""


@dataclass(frozen=True)
class SeenEnd:
    """A call's hang-up, as Asterisk wrote it."""

    uniqueid: str
    ended_at: datetime
    cause: str


def is_end_file(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def cause_text(code: str) -> str:
    if not code:
        return "Unknown"
    number = int(code)
    return _CAUSES.get(number, f"cause {number}")


def parse_end_line(text: str) -> SeenEnd:
    """The hang-up a ``.end`` file tells; Incomplete if it is cut short, ValueError if not ours."""
    if not text.endswith("|end") and not text.endswith("|end\n"):
        raise Incomplete("no end marker")
    match = _LINE.fullmatch(text)
    if match is None:
        raise ValueError("not an end line")
    return SeenEnd(
        uniqueid=match["uniqueid"],
        ended_at=datetime.fromtimestamp(float(match["end"]), UTC),
        cause=cause_text(match["cause"]),
    )


def merged_end(existing: CallRecord, end: SeenEnd) -> CallRecord | None:
    """``existing`` ended as Asterisk saw it, or None when it needs nothing (the controller heard
    the end itself, or another line already gave it).

    An open record ends as ``hung_up`` would have ended it (the IVR's outcome stands, else
    ``abandoned``); one a restart ended with an estimate (``lost_track``) gets the real time and
    cause, and the outcome a seen hang-up gives. Never before the record's last known moment
    (Asterisk's clock may lag the controller's)."""
    known = [t for t in (existing.started_at, existing.answered_at, existing.queued_at, existing.seat_answered_at) if t]
    at = max([end.ended_at, *known])
    tags = {**existing.tags, SOURCE_TAG: "asterisk"}
    if existing.is_open:
        return end_call(existing, at, end.cause).model_copy(update={"tags": tags})
    if not existing.ended_at_estimated:
        return None
    outcome = existing.outcome
    if outcome is CallOutcome.LOST_TRACK or outcome is None:
        outcome = CallOutcome.ABANDONED  # what end_call gives a record without an outcome
    return existing.model_copy(
        update={
            "ended_at": at,
            "ended_at_estimated": False,
            "hangup_cause": end.cause,
            "outcome": outcome,
            "tags": tags,
        }
    )
