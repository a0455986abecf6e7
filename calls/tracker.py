"""The controller's live view of calls: applies events to records and persists them.

All calls run on one event loop, so the records in memory are changed without locks. A change
never waits for the store: the record goes into the dirty map and the writer (``run_flusher``)
saves the latest version of each dirty record in the background, at once when Redis answers
and again and again while it does not (down, restarting, hung) — no record is dropped, and no
caller hears dead air while Redis is slow. Listeners of ended records (the callback list) run
in the background too (calls/redis_budget.py), never on the AMI event path; counters of ended
records (the report roll-up) give their counts at once, and the writer sends them with the
record's save (``count_ended``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime

import structlog

from calls.end_lines import ORPHAN_MIN_AGE_S, NotOurs, NotYet, SeenEnd, merged_end, orphan_record
from calls.fallback_calls import FallbackCall, fallback_call_record, merged_fallback_call
from calls.model import (
    CallChanges,
    CallOutcome,
    CallRecord,
    CallState,
    IllegalTransition,
    end_call,
    end_unseen_call,
    transition,
    with_changes,
)
from calls.redis_budget import RedisBudget, refused_for_good
from calls.store import CallStore, CountOnce
from common.clock import Clock, system_clock
from common.privacy import mask_number

log = structlog.get_logger(__name__)

EndedListener = Callable[[CallRecord], Awaitable[None]]
EndedCounter = Callable[[CallRecord], CountOnce | None]
RecordWatcher = Callable[[CallRecord], None]
RECENTLY_ENDED = 2000  # ended records kept in memory: a late amendment needs no Redis read
RETRY_S = 1.0
COALESCE_S = 0.05  # a change waits this long for the writer, so that a step's changes go together
SAVE_BATCH = 100  # dirty records saved in one round trip (one MULTI) by the writer
# outcomes after which the dialplan hangs up at once: the record's end (AMI Hangup) is imminent
HANGUP_FOLLOWS = frozenset(
    {
        CallOutcome.IVR_COMPLETED,
        CallOutcome.VOICEMAIL,
        CallOutcome.VOICEMAIL_FAILED,
        CallOutcome.CALLBACK,
        CallOutcome.BLOCKED,
    }
)


class CallTracker:
    """Live call records keyed by call id (the caller channel's Asterisk uniqueid)."""

    def __init__(
        self, store: CallStore, platform: str, clock: Clock = system_clock, budget: RedisBudget | None = None
    ) -> None:
        self._store = store
        self._platform = platform
        self._clock = clock
        self._budget = budget or RedisBudget()
        self._live: dict[str, CallRecord] = {}
        self._dirty: dict[str, CallRecord] = {}
        self._ended: OrderedDict[str, CallRecord] = OrderedDict()
        # records made from a hang-up line alone, not saved yet (the very version: one the
        # controller made since is its own); and those a stored one refused
        self._orphans: dict[str, CallRecord] = {}
        self._refused: set[str] = set()
        self._ended_listeners: list[EndedListener] = []
        self._ended_counters: list[EndedCounter] = []
        self._counts: dict[str, list[CountOnce]] = {}  # call id → counts to send with its record
        self._watchers: list[RecordWatcher] = []
        self._seen: dict[str, int] = {}  # call id → order first seen (for reconcile)
        self._seen_count = 0
        self._wake = asyncio.Event()
        self._a_call_ended = asyncio.Event()
        self._flushing = asyncio.Lock()
        self.store_failures = 0

    def on_ended(self, listener: EndedListener) -> None:
        """Call ``listener`` with every record as it ends (callback list, exports)."""
        self._ended_listeners.append(listener)

    def count_ended(self, counter: EndedCounter) -> None:
        """Add ``counter(record)``'s counts (a report roll-up) once as each record ends, in the
        writer's round that saves the ended record (one round trip for many calls, not one
        each), retried with it while Redis fails. ``counter`` runs at once on the event path:
        pure computation, no I/O."""
        self._ended_counters.append(counter)

    def watch(self, watcher: RecordWatcher) -> None:
        """Call ``watcher`` with every version of every record as it is kept here (queued,
        answered, ended, amended after it ended, ended by a reconcile): at once, on the event
        path, so it must only count in memory (hotline/figures.py's rolling 24 h figures)."""
        self._watchers.append(watcher)

    def _notify_ended(self, record: CallRecord) -> None:
        """Listeners run in the background, in order, retried while Redis fails: the AMI event
        that ended the call never waits for them."""
        for listener in self._ended_listeners:
            self._budget.write(f"ended listener for {record.call_id}", _bind(listener, record))
        for counter in self._ended_counters:  # the record is dirty now: they go with its save
            try:
                count = counter(record)
            except Exception:  # a report gone wrong must not lose the call's record
                log.exception("calls.counter_failed", call_id=record.call_id)
                continue
            if count is not None:
                self._counts.setdefault(record.call_id, []).append(count)

    def _note_seen(self, call_id: str) -> None:
        if call_id not in self._seen:
            self._seen[call_id] = self._seen_count
            self._seen_count += 1

    def clock(self) -> datetime:
        return self._clock()

    @property
    def live_calls(self) -> int:
        return len(self._live)

    @property
    def unsaved(self) -> int:
        return len(self._dirty)

    def is_saved(self, call_id: str) -> bool:
        """No change of this call waits for the writer (the store has its latest version, or
        this tracker never changed it)."""
        return call_id not in self._dirty

    def get_live(self, call_id: str) -> CallRecord | None:
        return self._live.get(call_id)

    def live_dialplan_versions(self) -> set[str]:
        """The dialplan versions live calls run on (the registry keeps them while they do)."""
        return {record.dialplan_version for record in self._live.values() if record.dialplan_version}

    def hangups_pending(self) -> int:
        """Live calls the IVR has released (an outcome after which the dialplan hangs up) whose
        hang-up has not been seen yet: a draining controller waits for them, so that their
        records end with the real end and cause rather than an estimate at the next start."""
        return sum(1 for record in self._live.values() if record.outcome in HANGUP_FOLLOWS)

    async def await_hangups(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` until ``hangups_pending()`` is 0; returns what is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (pending := self.hangups_pending()) and (left := deadline - loop.time()) > 0:
            self._a_call_ended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._a_call_ended.wait(), left)
        return pending

    def live_records(self) -> list[CallRecord]:
        """Every call still going on, as known here."""
        return list(self._live.values())

    async def load_open(self) -> None:
        """Adopt the open records a previous controller left in the store (not the ones known
        here: a record that ended while Redis was away is still open in Redis until saved)."""
        for record in await self._store.open_records():
            if record.call_id in self._dirty or record.call_id in self._ended:
                continue
            self._live.setdefault(record.call_id, record)
            self._note_seen(record.call_id)
        log.info("calls.loaded_open", count=len(self._live))

    def _latest(self, call_id: str) -> CallRecord | None:
        """The newest version of the call kept here (the writer's, the live or the ended one)."""
        return self._dirty.get(call_id) or self._live.get(call_id) or self._ended.get(call_id)

    def _put(self, record: CallRecord) -> CallRecord:
        """Keep the change in memory and mark it for the writer; never waits for the store.
        The change gets the next revision of its call (after the one it was made from and any
        kept here), so the store can tell it from every older version however late they land."""
        return self._kept(with_changes(record, {"revision": self._next_revision(record)}))

    def _change(self, record: CallRecord, update: dict[str, object]) -> CallRecord:
        """``_put`` of ``record`` changed by ``update``: one copy, with its revision set in it
        (not a copy for the change and another for the revision)."""
        update["revision"] = self._next_revision(record)
        return self._kept(with_changes(record, update))

    def _next_revision(self, record: CallRecord) -> int:
        latest = self._latest(record.call_id)
        return max(record.revision, latest.revision if latest is not None else 0) + 1

    def _kept(self, record: CallRecord) -> CallRecord:
        self._keep(record)
        for watcher in self._watchers:
            try:
                watcher(record)
            except Exception:  # a figure gone wrong must not lose the call's record
                log.exception("calls.watcher_failed", call_id=record.call_id)
        return record

    def _keep(self, record: CallRecord) -> None:
        if record.is_open:
            self._note_seen(record.call_id)
            self._live[record.call_id] = record
        else:
            self._seen.pop(record.call_id, None)
            self._live.pop(record.call_id, None)
            self._ended[record.call_id] = record
            self._ended.move_to_end(record.call_id)
            self._a_call_ended.set()
            while len(self._ended) > RECENTLY_ENDED:
                self._ended.popitem(last=False)
        self._dirty[record.call_id] = record
        self._wake.set()

    async def flush_dirty(self) -> int:
        """Write every dirty record (the latest version of each, including changes made while
        writing); returns how many are still unsaved. Stops at the first failure: the store is
        down, the next round tries again."""
        async with self._flushing:
            while self._dirty:
                # the records changed since the last round go out together: one round trip
                batch = list(itertools.islice(self._dirty.items(), SAVE_BATCH))
                counts = [count for call_id, _ in batch for count in self._counts.get(call_id, ())]
                try:
                    stale = await self._store.save_many([record for _, record in batch], counts)
                except Exception as exc:  # Redis down, restarting or hung: keep them, retry later
                    if counts and refused_for_good(exc):
                        # a report key Redis refuses (wrong type …) must not hold the records
                        # back for ever: the counts are given up, the records go again alone
                        log.error("calls.counts_refused", calls=len(counts), error=str(exc))
                        self._counted((call_id for call_id, _ in batch), counts)
                        continue
                    self.store_failures += 1
                    error = str(exc) or type(exc).__name__
                    log.warning("calls.save_failed", call_id=batch[0][0], records=len(batch), error=error)
                    return len(self._dirty)
                if counts:
                    self._counted((call_id for call_id, _ in batch), counts)
                for call_id, record in batch:
                    if self._dirty.get(call_id) is not record:
                        continue  # changed meanwhile: the newer version is still to be written
                    orphan = self._orphans.pop(call_id, None) is record
                    if call_id in stale and orphan:
                        self._orphan_refused(call_id, stale[call_id])
                    elif call_id in stale:
                        self._rebase(record, stale[call_id])
                    else:
                        del self._dirty[call_id]
            return 0

    def _counted(self, call_ids: Iterable[str], sent: list[CountOnce]) -> None:
        """``sent`` (of the calls ``call_ids``) landed: forget them; counts added while the round
        was out stay."""
        done = {id(count) for count in sent}
        for call_id in call_ids:
            left = [count for count in self._counts.get(call_id, ()) if id(count) not in done]
            if left:
                self._counts[call_id] = left
            else:
                self._counts.pop(call_id, None)

    def _orphan_refused(self, call_id: str, stored_revision: int) -> None:
        """A record made from a hang-up line alone met a record the controller had saved after
        all (its write landed late): that one wins. Forgotten here, so the line is read again
        (``take_refused``) and ends the stored record as any line does."""
        log.info("calls.end_line_record_refused", call_id=call_id, stored=stored_revision)
        del self._dirty[call_id]
        self._ended.pop(call_id, None)
        self._refused.add(call_id)

    def take_refused(self, call_id: str) -> bool:
        """Whether the record a hang-up line made of this call was refused by a stored one (once:
        the line is then read again rather than deleted)."""
        if call_id in self._refused:
            self._refused.discard(call_id)
            return True
        return False

    def _rebase(self, record: CallRecord, stored_revision: int) -> None:
        """The store kept out this tracker's newest version of a call: it has a revision this
        tracker never made (another controller's, of a record this one did not adopt from the
        store). What this tracker knows is newer in time: it goes out again above that revision."""
        log.warning(
            "calls.revision_behind_store", call_id=record.call_id, revision=record.revision, stored=stored_revision
        )
        self._keep(record.model_copy(update={"revision": stored_revision + 1}))

    async def run_flusher(self, interval_s: float = RETRY_S, coalesce_s: float = COALESCE_S) -> None:
        """The writer (a task of the controller): saves dirty records ``coalesce_s`` after they
        change, and retries every ``interval_s`` while the store fails. The short wait lets the
        rest of an IVR step's changes (its node, its tags, its key: several versions within a few
        milliseconds) and other calls' join one write instead of one write each."""
        while True:
            if not self._dirty:
                await self._wake.wait()
            if coalesce_s > 0:
                await asyncio.sleep(coalesce_s)
            self._wake.clear()
            if await self.flush_dirty():
                await asyncio.sleep(interval_s)

    def _new(self, call_id: str, channel: str, caller: str, caller_name: str, called: str) -> CallRecord:
        return CallRecord(
            call_id=call_id,
            platform=self._platform,
            started_at=self._clock(),
            channel=channel,
            caller=caller,
            caller_name=caller_name,
            called=called,
        )

    async def channel_created(
        self, call_id: str, channel: str, caller: str, caller_name: str, called: str
    ) -> CallRecord:
        """A caller's channel appeared (AMI Newchannel or resync)."""
        record = self._live.get(call_id)
        if record is None:
            log.info("calls.arrived", call_id=call_id, caller=mask_number(caller), called=called)
            record = self._new(call_id, channel, caller, caller_name, called)
        else:
            return self._change(
                record,
                {
                    "channel": record.channel or channel,
                    "caller": record.caller or caller,
                    "caller_name": record.caller_name or caller_name,
                    "called": record.called or called,
                },
            )
        return self._put(record)

    async def answered(self, call_id: str) -> None:
        record = self._live.get(call_id)
        if record is not None and record.answered_at is None:
            self._change(record, {"answered_at": self._clock()})

    async def ivr_started(self, call_id: str, channel: str, caller: str, caller_name: str, called: str) -> CallRecord:
        """Our FastAGI took the call; creates the record if AMI has not told us yet."""
        record = self._live.get(call_id) or self._new(call_id, channel, caller, caller_name, called)
        if record.state is CallState.ARRIVED:
            record = transition(record, CallState.IN_IVR)
        return self._put(record)

    async def ivr_step(self, call_id: str, step: str) -> None:
        record = self._live.get(call_id)
        if record is not None:
            self._change(record, {"ivr_path": (*record.ivr_path, step)})

    async def set_outcome(self, call_id: str, outcome: CallOutcome) -> None:
        await self.amend(call_id, {"outcome": outcome})

    async def amend(self, call_id: str, changes: CallChanges) -> None:
        """Set IVR facts on a live record; tags merge into the existing ones."""
        record = self._live.get(call_id)
        if record is None:
            return
        self._change(record, _amended(record, changes))

    async def amend_stored(
        self, call_id: str, changes: CallChanges, then: EndedListener | None = None
    ) -> CallRecord | None:
        """Amend a record that may have ended already (a callback made after the call), then run
        ``then`` with it. A record no longer in memory is read from the store in the background
        (retried while Redis fails): the caller never waits on Redis, and gets None then."""
        record = self._live.get(call_id) or self._dirty.get(call_id) or self._ended.get(call_id)
        if record is None:
            self._budget.write(f"amend stored record {call_id}", lambda: self._amend_from_store(call_id, changes, then))
            return None
        amended = self._change(record, _amended(record, changes))
        if then is not None:
            self._budget.write(f"after amending {call_id}", _bind(then, amended))
        return amended

    async def _amend_from_store(self, call_id: str, changes: CallChanges, then: EndedListener | None) -> None:
        record = self._live.get(call_id) or self._dirty.get(call_id) or self._ended.get(call_id)
        record = record or await self._store.get(call_id)
        if record is None:
            log.warning("calls.amend_unknown_record", call_id=call_id)
            return
        amended = self._change(record, _amended(record, changes))
        if then is not None:
            await then(amended)

    async def ivr_digit(self, call_id: str, node_id: str, key: str) -> None:
        record = self._live.get(call_id)
        if record is not None:
            self._change(record, {"digits": (*record.digits, f"{node_id}={key}")})

    async def hung_up(self, call_id: str, cause: str) -> CallRecord | None:
        """The caller's channel is gone (AMI Hangup)."""
        record = self._live.get(call_id)
        if record is None:
            return None
        try:
            ended = end_call(record, self._clock(), cause)
        except IllegalTransition as exc:
            log.warning("calls.illegal_transition", error=str(exc))
            return None
        log.info("calls.ended", call_id=call_id, outcome=str(ended.outcome), cause=cause)
        saved = self._put(ended)
        self._notify_ended(saved)
        return saved

    def mark(self) -> int:
        """A point in the order this tracker has seen calls (taken before a channel snapshot)."""
        return self._seen_count

    async def reconcile(self, live_call_ids: Iterable[str], seen_before: int) -> int:
        """After a (re)connect: end every open record whose channel Asterisk no longer has.

        Only records this tracker knew before the snapshot was asked for (``mark()``) are
        judged, so a call that arrives while the snapshot is in flight is not ended by mistake.
        (An order, not timestamps: clocks of two controller runs need not agree.)
        """
        alive = set(live_call_ids)
        ended = 0
        for call_id, record in list(self._live.items()):
            if call_id in alive or self._seen.get(call_id, seen_before) >= seen_before:
                continue
            self._put(end_unseen_call(record, self._clock(), "channel gone while the controller was away"))
            ended += 1
        if ended:
            log.info("calls.reconciled", ended=ended, still_live=len(self._live))
        return ended

    async def record_fallback(self, record: CallRecord) -> bool:
        """A call Asterisk took through its fallback route (a message file in the spool).

        Merges into the live or stored record of that call, or creates an ended one for a call
        the controller never saw. Returns False when the call is already recorded as fallback.
        """
        update = {"outcome": CallOutcome.FALLBACK, "recording": record.recording}
        live = self._live.get(record.call_id)
        if live is not None:
            if live.outcome is CallOutcome.FALLBACK and live.recording:
                return False
            self._change(live, dict(update))
            return True
        known = self._dirty.get(record.call_id) or self._ended.get(record.call_id)
        existing = known or await self._store.get(record.call_id)
        if existing is None:
            self._put(record)
            return True
        if existing.outcome is CallOutcome.FALLBACK and existing.recording:
            return False
        merged = existing.model_copy(update=update)
        if merged.is_open:
            merged = end_call(merged, record.ended_at or self._clock(), "fallback route")
        self._put(merged)
        return True

    async def record_fallback_call(self, call: FallbackCall) -> bool:
        """A call that ended on Asterisk's fallback route (its ``.call`` line): creates the
        record of a call the controller never saw, finishes one it could not, and leaves one it
        ended itself. Returns whether a record was written (False again and again: idempotent);
        NotOurs for another platform's call (the province's platforms share the records' keys)."""
        record = self._live.get(call.uniqueid) or self._dirty.get(call.uniqueid) or self._ended.get(call.uniqueid)
        existing = record or await self._store.get(call.uniqueid)
        if existing is not None and existing.platform != self._platform:
            raise NotOurs(f"{call.uniqueid} is a call of {existing.platform}")
        if existing is None:
            saved = self._put(fallback_call_record(call, self._platform))
        else:
            merged = merged_fallback_call(existing, call)
            if merged is None:
                return False
            saved = self._put(merged)
        self._notify_ended(saved)
        return True

    async def record_seen_end(self, end: SeenEnd) -> bool:
        """A hang-up Asterisk wrote down (calls/end_lines.py): ends the record of a call whose
        end the controller missed, or corrects an estimated end. Returns whether a record was
        written (False again and again: idempotent); makes the record of a call no record knows
        (``orphan_record``); NotOurs for another platform's call."""
        existing = self._latest(end.uniqueid) or await self._store.get(end.uniqueid)
        # the call's own events may have been handled while Redis answered (a loaded controller's
        # AMI backlog: a short call's Newchannel after its line): the controller's record wins,
        # and a live one is left to its Hangup, which follows (the scan keeps the line meanwhile)
        existing = self._latest(end.uniqueid) or existing
        if existing is not None and existing.is_open and end.uniqueid in self._live:
            return False
        if existing is None:
            # the controller was killed before its writer saved anything of the call: the line
            # makes its record (NotOurs for a uniqueid of another platform's Asterisk; NotYet for
            # a line too young to tell a lost call from one whose events are still on their way)
            orphan = orphan_record(end, self._platform)
            if orphan is None:
                return False  # a channel the controller originated (an offer's, an outbound leg's)
            if (self._clock() - end.ended_at).total_seconds() < ORPHAN_MIN_AGE_S:
                raise NotYet(end.uniqueid)
            log.info(
                "calls.recorded_from_end_line",
                call_id=end.uniqueid,
                caller=mask_number(orphan.caller),
                cause=end.cause,
                outcome=str(orphan.outcome),
            )
            saved = self._kept(orphan)  # revision 0: whatever the controller saved of it wins
            self._orphans[end.uniqueid] = saved
            self._notify_ended(saved)
            return True
        if existing.platform != self._platform:  # the province's platforms share the records' keys
            raise NotOurs(f"{end.uniqueid} is a call of {existing.platform}")
        merged = merged_end(existing, end)
        if merged is None:
            return False
        log.info("calls.ended", call_id=end.uniqueid, outcome=str(merged.outcome), cause=end.cause, seen_by="asterisk")
        saved = self._put(merged)
        self._notify_ended(saved)
        return True


def _amended(record: CallRecord, changes: CallChanges) -> dict[str, object]:
    """The update that sets ``changes`` on ``record`` (tags merged into its own)."""
    update: dict[str, object] = dict(changes)
    if "tags" in changes:
        update["tags"] = {**record.tags, **changes["tags"]}
    return update


def _bind(listener: EndedListener, record: CallRecord) -> Callable[[], Awaitable[None]]:
    return lambda: listener(record)
