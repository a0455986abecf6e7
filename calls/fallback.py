"""Calls Asterisk handled on its own (controller unreachable): found as message files.

The fallback route in extensions.conf records the caller's message to
``<spool>/fallback/fb2-<epoch>-<uniqueid>.wav`` and, just before, writes the caller's number
(digits only) beside it, to ``fb2-<epoch>-<uniqueid>.caller``, with Asterisk's own ``FILE()``
function (no shell). The number is never in the name: names are logged, listed and shown in
timelines. Files of the first format, ``fb-<epoch>-<caller digits>-<uniqueid>.wav``, may still be
on disk: they are read as before, and every display masks their number
(``common.privacy.mask_fallback_names``).

The route also leaves one ``fc-<epoch>-<uniqueid>.call`` line per call (calls/fallback_calls.py):
answered by a seat in the fallback queue, hung up in the greeting, or a message.

Every call also leaves a ``ce-<uniqueid>.end`` line at its hang-up (calls/end_lines.py), so a
call whose end the controller missed ends with its real time, never an estimate, and a call
whose record never reached Redis (the controller killed at its start) is recorded from it.

The controller scans that folder on start and every few seconds, so a call it never saw still
gets a call record (linking its message, if any). A line file (``.call``, ``.end``) is deleted
once the record it made (or found already right) is saved — never before: a crash between the
save and the delete leaves the line, and reading it again writes nothing (every merge is
idempotent), so the folder holds only lines not yet ingested. Messages (``.wav``) and the
numbers beside them are evidence: never moved or deleted here.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog

from calls.end_lines import END_GLOB, END_PREFIX, END_SUFFIX, NotOurs, NotYet, SeenEnd, is_end_file, parse_end_line
from calls.end_lines import MAX_BYTES as END_MAX_BYTES
from calls.end_lines import Incomplete as EndIncomplete
from calls.fallback_calls import (
    CALL_GLOB,
    MAX_BYTES,
    FallbackCall,
    Incomplete,
    cut_short_call,
    is_call_file,
    parse_call_line,
)
from calls.model import CallOutcome, CallRecord, CallState
from calls.tracker import CallTracker

log = structlog.get_logger(__name__)

CALLER_SUFFIX = ".caller"
# a call line still not whole this long after its last write never will be (a full disk cut it):
# the call is recorded from its name (outcome lost_track) rather than not at all
CUT_SHORT_AFTER_S = 120.0
_UNIQUEID = r"(?P<uniqueid>[A-Za-z0-9_.-]{1,80})"
_NAME = re.compile(rf"^fb2-(?P<epoch>\d{{9,11}})-{_UNIQUEID}\.wav$")
_OLD_NAME = re.compile(rf"^fb-(?P<epoch>\d{{9,11}})-(?P<caller>\d{{0,32}})-{_UNIQUEID}\.wav$")
_CALLER = re.compile(r"^\d{0,32}$")


def parse_fallback_name(name: str, platform: str, ended_at: datetime, caller: str = "") -> CallRecord | None:
    """The call record a fallback file name describes, or None if the name is not ours.

    ``caller``: the number kept beside a message (``read_fallback_caller``); a name of the first
    format carries its own."""
    match = _NAME.fullmatch(name) or _OLD_NAME.fullmatch(name)
    if match is None:
        return None
    started = datetime.fromtimestamp(int(match.group("epoch")), UTC)
    return CallRecord(
        call_id=match.group("uniqueid"),
        platform=platform,
        caller=match.groupdict().get("caller") or caller,
        called="12345",
        state=CallState.ENDED,
        started_at=started,
        answered_at=started,
        ended_at=max(started, ended_at),
        ivr_path=("fallback",),
        outcome=CallOutcome.FALLBACK,
        hangup_cause="fallback route",
        recording=f"fallback/{name}",
    )


def read_fallback_caller(wav: Path) -> str:
    """The caller's number the fallback route kept beside ``wav``; "" when there is none (a
    name of the first format, a number withheld) or it is not a number."""
    try:
        text = _read_line(wav.with_suffix(CALLER_SUFFIX), 64).strip()  # a regular file only
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("fallback.caller_unreadable", file=wav.name, error=type(exc).__name__)
        return ""
    if not _CALLER.match(text):
        log.warning("fallback.caller_not_a_number", file=wav.name)
        return ""
    return text


class FallbackIngester:
    """Turns fallback message files into call records, once each."""

    def __init__(self, spool_dir: Path, tracker: CallTracker, platform: str) -> None:
        self._dir = spool_dir / "fallback"
        self._tracker = tracker
        self._platform = platform
        self._done: set[str] = set()  # messages recorded, and files not ours (left where they are)
        self._incomplete: set[str] = set()  # logged once each
        self._retiring: dict[str, str] = {}  # line file → its call: deleted once that record is saved
        self._scanned = False

    async def scan(self) -> int:
        """Record every file not seen yet; returns how many new records were written."""
        if not self._dir.is_dir():
            return 0
        written = 0
        for path in sorted(self._dir.glob("fb*.wav")):
            if path.name in self._done:
                continue
            try:
                mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except OSError:
                continue
            record = parse_fallback_name(path.name, self._platform, mtime, read_fallback_caller(path))
            if record is None:
                log.warning("fallback.unrecognised_file", file=path.name)
                self._done.add(path.name)
                continue
            if await self._tracker.record_fallback(record):
                written += 1
                log.info("fallback.recorded", call_id=record.call_id, recording=record.recording)
            self._done.add(path.name)
        written += await self._scan_calls()
        written += await self._scan_ends()
        self.retire_saved()
        if not self._scanned:  # what the spool held at start is recorded (tests wait for this)
            self._scanned = True
            log.info("fallback.first_scan", written=written)
        return written

    async def _scan_calls(self) -> int:
        """Record every fallback call line not seen yet (a store failure raises: tried again at
        the next scan, nothing marked done)."""
        written = 0
        for path in sorted(self._dir.glob(CALL_GLOB)):
            if path.name in self._done or path.name in self._retiring:
                continue
            if not is_call_file(path.name):
                log.warning("fallback.unrecognised_file", file=path.name)
                self._done.add(path.name)
                continue
            call: FallbackCall | None
            try:
                call = _read_call(path)
            except (Incomplete, OSError):
                call = self._cut_short(path)
            except (UnicodeDecodeError, ValueError) as exc:
                log.warning("fallback.call_line_unreadable", file=path.name, error=type(exc).__name__)
                self._done.add(path.name)
                continue
            if call is None:
                continue
            try:
                if await self._tracker.record_fallback_call(call):
                    written += 1
                    log.info("fallback.call_recorded", call_id=call.uniqueid, outcome=str(call.outcome))
            except NotOurs as exc:  # left where it is, read once
                log.warning("fallback.call_line_not_ours", file=path.name, error=str(exc))
                self._done.add(path.name)
                continue
            self._retiring[path.name] = call.uniqueid
        return written

    async def _scan_ends(self) -> int:
        """End every record whose hang-up line says more than the record knows (a store failure
        raises: tried again at the next scan)."""
        written = 0
        for path in sorted(self._dir.glob(END_GLOB)):
            if path.name in self._done or path.name in self._retiring:
                continue
            if not is_end_file(path.name):
                log.warning("fallback.unrecognised_file", file=path.name)
                self._done.add(path.name)
                continue
            try:
                end = _read_end(path)
                if path.name != f"{END_PREFIX}{end.uniqueid}{END_SUFFIX}":  # Asterisk names it by its line's call
                    raise ValueError("the line names another call than its file")
            except (EndIncomplete, OSError):
                self._drop_cut_short(path)  # still being written; a line never finished is only a lost line
                continue
            except (UnicodeDecodeError, ValueError) as exc:
                log.warning("fallback.end_line_unreadable", file=path.name, error=type(exc).__name__)
                self._done.add(path.name)
                continue
            if self._tracker.get_live(end.uniqueid) is not None:
                # its AMI Hangup follows the line at once; if that is missed, the resync after
                # the next AMI login ends the record (estimated) and the line then corrects it.
                # A line never ends a call this controller still holds live: a masqueraded
                # channel's remains must not end a caller who talks on
                continue
            try:
                if await self._tracker.record_seen_end(end):
                    written += 1
            except NotOurs as exc:  # left where it is, read once
                log.warning("fallback.end_line_not_ours", file=path.name, error=str(exc))
                self._done.add(path.name)
                continue
            except NotYet:  # its record is made at a later scan, unless its own events come first
                continue
            if self._tracker.get_live(end.uniqueid) is not None:
                continue  # its Newchannel was handled while Redis answered: kept, as above
            self._retiring[path.name] = end.uniqueid
        return written

    def retire_saved(self) -> int:
        """Delete the line files whose records are saved; returns how many are still waiting."""
        for name, call_id in list(self._retiring.items()):
            if not self._tracker.is_saved(call_id):
                continue
            if self._tracker.take_refused(call_id):  # a stored record won: read the line again for it
                del self._retiring[name]
                continue
            try:
                (self._dir / name).unlink(missing_ok=True)
            except OSError as exc:  # tried again at the next scan
                log.warning("fallback.line_not_deleted", file=name, error=type(exc).__name__)
                continue
            del self._retiring[name]
            self._incomplete.discard(name)
        return len(self._retiring)

    def _drop_cut_short(self, path: Path) -> None:
        """Delete an end line cut short long ago (a full disk): it tells nothing, and would be
        read again at every scan for ever."""
        try:
            if time.time() - path.stat().st_mtime < CUT_SHORT_AFTER_S:
                return
            path.unlink()
        except OSError:
            return
        log.warning("fallback.end_line_cut_short", file=path.name)

    def _cut_short(self, path: Path) -> FallbackCall | None:
        """A line not whole: still being written (None: try again later), or cut short long
        ago by a full disk (the call as its name tells it)."""
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if time.time() - mtime < CUT_SHORT_AFTER_S:  # file times are the host's: so is this age
            if path.name not in self._incomplete:
                self._incomplete.add(path.name)
                log.info("fallback.call_line_incomplete", file=path.name)
            return None
        log.warning("fallback.call_line_cut_short", file=path.name)
        return cut_short_call(path.name, datetime.fromtimestamp(mtime, UTC))


def _read_line(path: Path, limit: int) -> str:
    """A line file's text (ValueError if longer than ``limit`` bytes). Only a regular file:
    Asterisk's FILE() writes nothing else, and an open() of a FIFO blocks the event loop until a
    writer comes (O_NONBLOCK), a symlink would make a record of the file it points at
    (O_NOFOLLOW): ValueError, left where it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError("a symlink, not a line file") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise ValueError("too long")
    return raw.decode("ascii")


def _read_end(path: Path) -> SeenEnd:
    return parse_end_line(_read_line(path, END_MAX_BYTES))


def _read_call(path: Path) -> FallbackCall:
    return parse_call_line(_read_line(path, MAX_BYTES))
