"""Hang-ups Asterisk writes down itself: one line per call, so no end is ever estimated.

The controller hears a call end from AMI's Hangup; if it is down (SIGKILLed, restarting) or the
event is lost between Asterisk's socket and the record writer, the record used to end at the
next start with an estimated time (``end_unseen_call``). So every context a caller's channel
can hang up in (the entry's IVR, the hold/ACD bridge, after the seat, a transfer, a route to
another platform; telephony/extensions_conf.py) writes, from its ``h`` extension, with Asterisk's
own ``FILE()`` (no shell; 0600 under Asterisk's umask, in the 0700 fallback folder)::

    <spool>/fallback/ce-<uniqueid>.end    e2|<uniqueid>|<end epoch with ms>|<Q.850 cause>|<caller>|end

``<caller>`` is the caller's number as Asterisk saw it, ``FILTER(0-9+)`` and at most 32
characters there; checked again here (only digits and ``+``, at most 32: else the line is
refused), and kept as the record's caller only if it is a number (``+`` first, if at all). The
first version, ``e1|<uniqueid>|<end>|<cause>|end`` (no caller), is still read: an Asterisk may
run the older dialplan through an upgrade.

Always, not only when the controller seems away: the dialplan cannot know whether the controller
heard the hang-up (an event still in a socket buffer when it died, the record writer's batch not
yet saved, a half-open AMI connection Asterisk still counts as logged in). The write is the last
thing a channel does after its caller is gone, so it never holds up a call; a full disk costs
the line only (logged by Asterisk), and the record then ends estimated as before.

A line whose call has no record anywhere (the controller was killed before its writer saved the
call's first step, within ~50 ms of its start) makes one (``orphan_record``): the start from the
uniqueid (``<systemname>-<epoch>.<seq>``, systemname = the platform id: asterisk.conf), to the
second; the end and cause from the line; the caller from an ``e2`` line; outcome ``lost_track``
(the controller lost it: what it did in the IVR is not known) and the tag ``end_written_by``.
It is saved below any record the controller made (revision 0): a record that lands meanwhile
wins, and the line is read again to end that one (calls/tracker.py).

Every field is Asterisk's own (the uniqueid, its clock, ``FILTER(0-9)`` on the cause) and checked
again here; a line whose call is not the one its file is named after, or is another platform's
call (the province's records share their keys; a uniqueid naming another systemname), is left
where it is and ends nothing. A line cut short (a full disk) is deleted after 2 minutes.
The fallback route's own line (calls/fallback_calls.py) covers calls on that route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from calls.model import CallOutcome, CallRecord, CallState, end_call

END_PREFIX = "ce-"
END_SUFFIX = ".end"
END_GLOB = "ce-*.end"
MAX_BYTES = 512
_NAME = re.compile(r"ce-(?P<uniqueid>[A-Za-z0-9_.-]{1,80})\.end")
_LINE = re.compile(
    r"e[12]\|(?P<uniqueid>[A-Za-z0-9_.-]{1,80})\|(?P<end>\d{9,11}(?:\.\d{1,6})?)"
    r"\|(?P<cause>\d{0,3})(?:\|(?P<caller>[0-9+]{0,32}))?\|end\n?"
)
# e1 has no caller field, e2 always one (checked below); the dialplan cuts the caller at 32
_NUMBER = re.compile(r"\+?[0-9]{1,31}|[0-9]{32}")
# Asterisk's own uniqueid of a channel: <systemname>-<epoch>.<sequence>
_UNIQUEID = re.compile(r"(?P<system>[A-Za-z0-9_.-]+)-(?P<epoch>\d{9,11})\.(?P<seq>\d{1,10})")
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


# A line makes a record of its own only once it is this old: on a loaded controller a short
# call's line can be scanned before its own AMI events are handled (the controller's record then
# wins anyway, but a false "recorded from its line" and a second run of the ended listeners are
# avoided). The scan (every 5 s) reads such a line again later; a restarted controller is well
# past it by the time it scans.
ORPHAN_MIN_AGE_S = 10.0


class NotYet(Exception):
    """The line may make its call's record, but not before ``ORPHAN_MIN_AGE_S``: kept, read again."""


class NotOurs(ValueError):
    """The line names a call of another platform (the province's records share their keys)."""


@dataclass(frozen=True)
class SeenEnd:
    """A call's hang-up, as Asterisk wrote it."""

    uniqueid: str
    ended_at: datetime
    cause: str
    caller: str = ""  # a number (digits, "+" first) or "" (an e1 line, a number withheld)


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
    if match is None or (match["caller"] is None) != text.startswith("e1|"):
        raise ValueError("not an end line")
    caller = match["caller"] or ""
    return SeenEnd(
        uniqueid=match["uniqueid"],
        ended_at=datetime.fromtimestamp(float(match["end"]), UTC),
        cause=cause_text(match["cause"]),
        caller=caller if _NUMBER.fullmatch(caller) else "",
    )


def orphan_record(end: SeenEnd, platform: str) -> CallRecord | None:
    """The record of a call only its hang-up line tells of (the controller was killed before it
    saved anything of it): NotOurs if its uniqueid names another platform's Asterisk; None if it
    is no uniqueid Asterisk gives a caller's channel (a channel the controller originated, named
    ``offer-…``, ``<job>.try<n>``: never a caller's call; the line then ends nothing, as before).

    Started when the uniqueid says (to the second), ended as the line says, ``lost_track``;
    revision 0: any record the controller made of the call is newer and wins (calls/store.py)."""
    match = _UNIQUEID.fullmatch(end.uniqueid)
    if match is None:
        return None
    if match["system"] != platform:
        raise NotOurs(f"{end.uniqueid} names no call of {platform}'s Asterisk")
    started = datetime.fromtimestamp(int(match["epoch"]), UTC)
    return CallRecord(
        call_id=end.uniqueid,
        platform=platform,
        caller=end.caller,
        state=CallState.ENDED,
        started_at=min(started, end.ended_at),
        ended_at=end.ended_at,
        outcome=CallOutcome.LOST_TRACK,
        hangup_cause=end.cause,
        tags={SOURCE_TAG: "asterisk", "record_from": "end_line"},
        revision=0,
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
