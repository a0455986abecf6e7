"""After the seat: the seat hung up first and the caller is still there (Bridge()'s F option
sends them to hotline-after-seat). The ``after-seat`` FastAGI script runs the dialplan's
``after_seat`` entry (case number, satisfaction survey); a transferred caller, or a platform
without the entry, is released as before. Survey answers go to ``SurveySink``s (the /metrics
tally here; the case of the call once the app shell wires tickets to it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

import structlog

from calls.model import CallOutcome, CallRecord
from calls.tracker import CallTracker
from ivr.dialplan.loader import Dialplan
from ivr.dialplan.registry import DialplanRegistry
from ivr.dialplan.schema import QueueNode
from ivr.entry import started_version
from ivr.interpreter import IvrContext, IvrRun
from telephony.agi_server import AgiSession
from telephony.dialplan_names import IVR_DONE_VARIABLE
from webphone.watch import SEAT_LOST_TAG

log = structlog.get_logger(__name__)

AFTER_SEAT_TAG = "after_seat"  # on the record once the entry ran: it never runs twice for a call


class SurveySink(Protocol):
    """Told of every survey answer as it is recorded (``record`` already carries the score;
    ``record.case_id`` names the case when a seat registered one)."""

    async def survey_answered(self, record: CallRecord, score: int) -> None: ...


class SurveyTally:
    """Survey answers by (queue, score) since the controller started: /metrics' counter."""

    def __init__(self) -> None:
        self.answers: Counter[tuple[str, int]] = Counter()

    async def survey_answered(self, record: CallRecord, score: int) -> None:
        self.answers[(record.queue, score)] += 1


def skip_reason(record: CallRecord | None, entry: str | None) -> str:
    """Why the after-seat entry must not run for this caller ("" when it should). Pure."""
    if entry is None:
        return "no after_seat entry in the dialplan"
    if record is None:
        return "no live record of the call"
    if record.outcome is CallOutcome.TRANSFERRED:
        return "the seat transferred the caller"  # the other side hung up: the caller is done
    if record.seat_answered_at is None:
        return "no seat talked with the caller"
    if record.tags.get(AFTER_SEAT_TAG):
        return "the after_seat entry already ran"
    return ""


def after_seat_needed(record: CallRecord | None, plan: Dialplan | None, seat_phone_may_drop: bool) -> bool:
    """Whether the after-seat AGI must run for this caller should the seat hang up first: the
    seat's phone is a browser phone (lost mid-call, the AGI puts the caller back in the queue), or
    the caller's dialplan version has an after_seat entry. Pure. Unknown — no live record, or a
    record that names no version (the AGI would ask the channel) — is True: the AGI decides."""
    if seat_phone_may_drop or record is None or not record.dialplan_version or plan is None:
        return True
    return plan.spec.after_seat is not None


class AfterSeatNeed:
    """acd/agi.py's ``AfterSeat`` for the seat AGI, asked when a seat answers: the caller's record
    and dialplan version as the after-seat AGI would find them, and which seats have browser
    phones (config)."""

    def __init__(self, tracker: CallTracker, dialplans: DialplanRegistry, browser_seats: Iterable[str]) -> None:
        self._tracker = tracker
        self._dialplans = dialplans
        self._browser = frozenset(browser_seats)

    def needed(self, call_id: str, seat_id: str) -> bool:
        record = self._tracker.get_live(call_id)
        plan = self._dialplans.version(record.dialplan_version) if record and record.dialplan_version else None
        return after_seat_needed(record, plan, seat_id in self._browser)


def requeue_node(record: CallRecord | None, plan: Dialplan) -> str | None:
    """The queue node to put the caller back in when the seat's phone was lost mid-call
    (webphone/watch.py tags the record), or None. Pure."""
    if record is None or not record.tags.get(SEAT_LOST_TAG):
        return None
    queues = [n for n in record.ivr_path if n in plan.spec.nodes and isinstance(plan.node(n), QueueNode)]
    return queues[-1] if queues else None


class IvrAfterSeat:
    """Handles the ``after-seat`` FastAGI script."""

    def __init__(self, tracker: CallTracker, dialplans: DialplanRegistry, context: IvrContext) -> None:
        self._tracker = tracker
        self._dialplans = dialplans
        self._context = context

    async def __call__(self, session: AgiSession) -> None:
        call_id = session.env.get("uniqueid")
        with structlog.contextvars.bound_contextvars(call_id=call_id, channel=session.env.get("channel")):
            plan = await started_version(session, self._dialplans, self._tracker.get_live(call_id))
            requeue = requeue_node(self._tracker.get_live(call_id), plan)
            if requeue is not None:  # the seat's phone dropped, not the seat's choice: back in the queue
                log.info("ivr.seat_lost_requeued", node=requeue)
                await self._tracker.amend(call_id, {"tags": {SEAT_LOST_TAG: ""}})
                await IvrRun(session, plan, self._context, call_id).run(start=requeue)
                return
            entry = plan.spec.after_seat
            why = skip_reason(self._tracker.get_live(call_id), entry)
            if why or entry is None:
                log.info("ivr.after_seat_skipped", reason=why)
                await session.set_variable(IVR_DONE_VARIABLE, "1")
                await session.hangup()
                return
            log.info("ivr.after_seat", node=entry)
            await self._tracker.amend(call_id, {"tags": {AFTER_SEAT_TAG: entry}})
            await IvrRun(session, plan, self._context, call_id).run(start=entry)
