"""The FastAGI entry point for 12345 calls: open the call record, run the platform's dialplan."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Protocol

import structlog

from calls.handoff import token_hint
from calls.model import CallRecord
from calls.tracker import CallTracker
from common.privacy import mask_number
from ivr.dialplan.loader import Dialplan
from ivr.dialplan.registry import DialplanRegistry
from ivr.interpreter import IvrContext, IvrRun
from ivr.transfer_events import TransferEvents, TransferState, publish_transfer
from telephony.agi_server import AgiHangup, AgiSession
from telephony.dialplan_names import (
    ANSWERED_ARGUMENT,
    DIALPLAN_VARIABLE,
    HANDOFF_HEADER,
    HOLD_VARIABLE,
    LEFT_VARIABLE,
    OVERFLOW_VARIABLE,
    TRANSFER_STATUS_VARIABLE,
)

log = structlog.get_logger(__name__)

HANDOFF_TOKEN = re.compile(r"[0-9A-Za-z]{1,64}")  # as the dialplan passes it (FILTER, :0:64)


class IvrEntry:
    """Handles the ``ivr`` FastAGI script."""

    def __init__(self, tracker: CallTracker, dialplans: DialplanRegistry, context: IvrContext) -> None:
        self._tracker = tracker
        self._dialplans = dialplans
        self._context = context

    async def __call__(self, session: AgiSession) -> None:
        env = session.env
        call_id = env.get("uniqueid")
        with structlog.contextvars.bound_contextvars(call_id=call_id, channel=env.get("channel")):
            await self._tracker.ivr_started(
                call_id,
                channel=env.get("channel"),
                caller=env.get("callerid"),
                caller_name=env.get("calleridname"),
                called=env.get("dnid"),
            )
            # this call keeps this version, whatever reloads happen: its record names it at once
            # (the registry keeps what live records name), and the scripts that take the caller
            # back later (overflow, transfer-failed, after-seat) read it there: no SET VARIABLE
            # round trip on every call (channels of older controllers carry it; still read)
            plan = self._dialplans.current
            await self._tracker.amend(call_id, {"dialplan_version": plan.version})
            try:
                start = await self._picked_up(session, call_id, plan.spec.handoff_start)
                if session.env.arguments.get("arg2") != ANSWERED_ARGUMENT:  # a dialplan rendered before it answered
                    await session.answer()
                await self._tracker.answered(call_id)
                await IvrRun(session, plan, self._context, call_id).run(start=start)
            except AgiHangup:
                raise  # the server logs it (agi.hangup, with the call id): one line a call, not two
            except Exception:
                # the dialplan's fallback route takes the call; the record says where it broke
                await self._tracker.ivr_step(call_id, "error")
                raise

    async def _picked_up(self, session: AgiSession, call_id: str, handoff_start: str | None) -> str | None:
        """A call another platform handed over carries a token (SIP header): link this leg to the
        case and start where the dialplan wants handed-over calls (e.g. straight at a queue)."""
        handoffs = self._context.handoffs
        if handoffs is None:
            return None
        # the rendered dialplan passes the header as the AGI's argument (letters and digits only);
        # a session from an older dialplan without it asks for the header
        if "arg1" in session.env.arguments:
            token = session.env.arguments["arg1"]
        else:
            token = await session.get_variable(f"PJSIP_HEADER(read,{HANDOFF_HEADER})") or ""
        if not token:
            return None
        if not HANDOFF_TOKEN.fullmatch(token):  # ours are hex; a Redis key is made of it
            log.warning("ivr.handoff_malformed", length=len(token))
            return None
        with self._context.budget.step():
            found = await handoffs.picked_up_on_call_path(token, self._context.platform, call_id, self._context.clock())
        if found is None:
            # Redis is slow: the caller was handed over all the same (the header says so) and is
            # not sent through the menu again; the pick-up is recorded when Redis answers
            log.warning("ivr.handoff_unconfirmed", token=token_hint(token))
            await self._tracker.amend(call_id, {"tags": {"handoff": token, "handoff_from": "unconfirmed"}})
            return handoff_start
        handoff = found[0]
        if handoff is None:
            log.warning("ivr.handoff_unknown", token=token_hint(token))
            return None
        log.info("ivr.handoff_picked_up", token=token_hint(token), from_platform=handoff.from_platform)
        await self._tracker.amend(
            call_id,
            {
                "tags": {
                    "handoff": token,
                    "handoff_from": f"{handoff.from_platform}:{handoff.from_call_id}",
                    **({"category": handoff.tags["category"]} if "category" in handoff.tags else {}),
                }
            },
        )
        return handoff_start


class CallLeavingQueue(Protocol):
    async def leave(self, call_id: str, reason: str) -> object: ...


class IvrOverflow:
    """Handles the ``overflow`` FastAGI script: max wait is over, no seat took the caller; the
    walk goes on at the queue node's ``next`` (voicemail, transfer to the province …)."""

    def __init__(
        self, tracker: CallTracker, dialplans: DialplanRegistry, context: IvrContext, acd: CallLeavingQueue
    ) -> None:
        self._tracker = tracker
        self._dialplans = dialplans
        self._context = context
        self._acd = acd

    async def __call__(self, session: AgiSession) -> None:
        call_id = session.env.get("uniqueid")
        with structlog.contextvars.bound_contextvars(call_id=call_id, channel=session.env.get("channel")):
            await self._acd.leave(call_id, "max wait")
            arguments = session.env.arguments
            if "arg1" in arguments:  # the rendered dialplan passes them, and cleared the hold flag
                node_id, status = arguments["arg1"], arguments.get("arg2", "") or "timeout"
                passed = arguments.get("arg3", "")  # the channel's version: set by older controllers only
                plan = await started_version(session, self._dialplans, self._tracker.get_live(call_id), passed)
            else:  # a session from an older dialplan asks for each
                node_id = await session.get_variable(OVERFLOW_VARIABLE) or ""
                await session.set_variable(HOLD_VARIABLE, "")
                status = await session.get_variable(LEFT_VARIABLE) or "timeout"
                plan = await started_version(session, self._dialplans, self._tracker.get_live(call_id))
            await self._tracker.amend(call_id, {"tags": {"queue_status": status}})
            if node_id not in plan.spec.nodes:
                # a reload removed it: the fallback route still takes the caller's message
                raise LookupError(f"overflow node {node_id!r} is not in dialplan {plan.version}")
            log.info("ivr.queue_overflow", node=node_id)
            await IvrRun(session, plan, self._context, call_id).run(start=node_id)


class IvrTransferFailed:
    """Handles the ``transfer-failed`` FastAGI script: a seat's transfer was not answered; the
    caller stays here and goes on at the dialplan's ``transfer_failed`` node (the case, with
    its hand-off token, stays on the record and so on any ticket a message makes)."""

    def __init__(
        self,
        tracker: CallTracker,
        dialplans: DialplanRegistry,
        context: IvrContext,
        events: TransferEvents | None = None,
    ) -> None:
        self._tracker = tracker
        self._dialplans = dialplans
        self._context = context
        self._events = events  # the seat that handed the caller on hears it failed (transfer.state)

    async def __call__(self, session: AgiSession) -> None:
        call_id = session.env.get("uniqueid")
        with structlog.contextvars.bound_contextvars(call_id=call_id, channel=session.env.get("channel")):
            why = await session.get_variable(TRANSFER_STATUS_VARIABLE) or await session.get_variable("DIALSTATUS")
            status = (why or "unknown").lower()
            await self._tracker.amend(call_id, {"tags": {"transfer_status": status}})
            await settle_handoff(self._tracker, self._context, call_id)
            await tell_seat_transfer_failed(self._events, self._tracker, self._context.clock(), call_id, status)
            plan = await started_version(session, self._dialplans, self._tracker.get_live(call_id))
            log.warning("ivr.seat_transfer_failed", status=status, next=plan.spec.transfer_failed or "fallback")
            if plan.spec.transfer_failed is None:
                return  # the fallback route keeps the caller's message
            await IvrRun(session, plan, self._context, call_id).run(start=plan.spec.transfer_failed)


async def tell_seat_transfer_failed(
    events: TransferEvents | None, tracker: CallTracker, at: datetime, call_id: str, status: str
) -> None:
    """The seat that handed the caller on blind hears that nobody answered (transfer.state
    ``failed``, with the dial status): the caller is not back with it but in the dialplan's
    ``transfer_failed`` path, and may be queued to it again."""
    record = tracker.get_live(call_id)
    if record is None:
        return
    await publish_transfer(
        events, at, call_id=call_id, seat=record.tags.get("transfer_by", ""),
        to=record.transfer_to.split(":")[0], mode=record.tags.get("transfer_mode", "blind"),
        state=TransferState.FAILED, caller=mask_number(record.caller), status=status,
    )  # fmt: skip


async def started_version(
    session: AgiSession, dialplans: DialplanRegistry, record: CallRecord | None, passed: str | None = None
) -> Dialplan:
    """The dialplan version the caller started with: the one their record names (the entry names
    it at once). A call without it (its record not live here) or a channel an older controller
    marked gives the channel's ``HOTLINE_DIALPLAN`` (``passed``, when the dialplan passed it as an
    argument: an empty one means "not set", and nothing is asked); none: the current one."""
    if record is not None and record.dialplan_version:
        return dialplans.version(record.dialplan_version)
    if passed is None:
        passed = await session.get_variable(DIALPLAN_VARIABLE) or ""
    return dialplans.version(passed)


async def settle_handoff(tracker: CallTracker, context: IvrContext, call_id: str) -> None:
    """The transfer failed and the caller stays here: the case stays with this call (its
    record, and any ticket its message makes), so the hand-off must not expire into a second."""
    record = tracker.get_live(call_id)
    token = record.tags.get("handoff") if record else None
    if token and context.handoffs is not None:
        context.handoffs.settle_later(token)
